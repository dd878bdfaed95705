"""descgen.loss: the hand-written objective equals torch / transformers, on random tensors and tiny random models."""
import copy, math, tempfile
import pytest
import torch
import torch.nn.functional as F
from descgen.loss import (IGNORE_INDEX, shift_labels, causal_shift, count_target_tokens, token_log_probs,
                          masked_token_loss, batch_token_loss, perplexity, bits_per_token, bits_per_char, logit_grad,
                          accumulated_loss, grads_of, trainer_compute_loss)

V = 37


def _labels(B=3, T=9, n_prompt=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, (B, T), generator=g)
    labels = ids.clone()
    labels[:, :n_prompt] = IGNORE_INDEX
    for i in range(B): labels[i, T - i:] = IGNORE_INDEX  # right padding of varied length
    return ids, labels


@pytest.fixture(scope='module')
def gpt():
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=V, n_positions=32, n_embd=16, n_layer=1, n_head=2,
                                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))


@pytest.fixture(scope='module')
def t5():
    from transformers import T5Config, T5ForConditionalGeneration
    torch.manual_seed(0)
    return T5ForConditionalGeneration(T5Config(vocab_size=V, d_model=16, d_kv=8, d_ff=32, num_layers=1,
                                               num_decoder_layers=1, num_heads=2, dropout_rate=0.0,
                                               decoder_start_token_id=0, pad_token_id=0, eos_token_id=1))


def test_shift():
    lab = torch.tensor([[-100, 4, 5, 6]])
    assert shift_labels(lab).tolist() == [[4, 5, 6, -100]]
    lg = torch.randn(1, 4, V)
    a, b = causal_shift(lg, lab)
    assert a.shape == (1, 3, V) and b.tolist() == [[4, 5, 6]]


def test_hand_loss_equals_cross_entropy():
    _, labels = _labels()
    logits = torch.randn(3, 9, V)
    ref = F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1))
    assert torch.allclose(masked_token_loss(logits, labels), ref, atol=1e-5)
    # by hand, independent of the library function
    lp = torch.log_softmax(logits[:, :-1], -1)
    t = labels[:, 1:]
    keep = t != -100
    hand = -(lp.gather(-1, t.clamp(min=0)[..., None])[..., 0] * keep).sum() / keep.sum()
    assert torch.allclose(hand, ref, atol=1e-5)
    tlp, m = token_log_probs(logits, labels)
    assert torch.allclose(-tlp.sum() / m.sum(), ref, atol=1e-5)
    n = count_target_tokens(labels)
    assert n == int(keep.sum())
    assert torch.allclose(masked_token_loss(logits, labels, reduction='sum'), ref * n, atol=1e-4)
    assert torch.allclose(masked_token_loss(logits, labels, num_items=2 * n), ref / 2, atol=1e-5)
    # unshifted (encoder-decoder)
    ref2 = F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1))
    assert torch.allclose(masked_token_loss(logits, labels, shift=False), ref2, atol=1e-5)
    assert count_target_tokens(labels, shift=False) == int((labels != -100).sum())


def test_reductions_and_errors():
    _, labels = _labels()
    logits = torch.randn(3, 9, V)
    none = masked_token_loss(logits, labels, reduction='none')
    assert none.shape == (3, 8)
    assert (none[labels[:, 1:] == -100] == 0).all()
    seq = masked_token_loss(logits, labels, reduction='sequence')
    n = (labels[:, 1:] != -100).sum(-1)
    assert torch.allclose((seq * n).sum() / n.sum(), masked_token_loss(logits, labels), atol=1e-6)
    with pytest.raises(ValueError, match='reduction'): masked_token_loss(logits, labels, reduction='avg')
    with pytest.raises(ValueError, match='line up'): masked_token_loss(logits, labels[:, :-1])
    with pytest.raises(ValueError, match='label_smoothing'): masked_token_loss(logits, labels, label_smoothing=1.0)


@pytest.mark.parametrize('eps', [0.05, 0.1, 0.3])
@pytest.mark.parametrize('shift', [True, False])
def test_label_smoothing_equals_torch(eps, shift):
    _, labels = _labels(seed=1)
    logits = torch.randn(3, 9, V) * 3
    lg, lb = (logits[:, :-1], labels[:, 1:]) if shift else (logits, labels)
    ref = F.cross_entropy(lg.reshape(-1, V), lb.reshape(-1), label_smoothing=eps)
    assert torch.allclose(masked_token_loss(logits, labels, shift=shift, label_smoothing=eps), ref, atol=1e-5)


@pytest.mark.parametrize('eps', [0.0, 0.1])
@pytest.mark.parametrize('shift', [True, False])
def test_analytic_gradient(eps, shift):
    _, labels = _labels(seed=2)
    z = torch.randn(3, 9, V, requires_grad=True)
    masked_token_loss(z, labels, shift=shift, label_smoothing=eps).backward()
    assert torch.allclose(z.grad, logit_grad(z.detach(), labels, shift=shift, label_smoothing=eps), atol=1e-6)


def test_perplexity_bits():
    assert math.isclose(perplexity(math.log(V)), V, rel_tol=1e-9)
    assert math.isclose(bits_per_token(math.log(8)), 3.0, rel_tol=1e-9)
    assert math.isclose(bits_per_char(math.log(2), 4, 8), 0.5, rel_tol=1e-9)
    uniform = torch.zeros(2, 5, V)
    _, labels = _labels(B=2, T=5, n_prompt=1)
    assert math.isclose(float(masked_token_loss(uniform, labels)), math.log(V), rel_tol=1e-6)


def test_model_loss_matches_outputs_loss(gpt, t5):
    ids, labels = _labels()
    mask = (labels != -100) | (torch.arange(9) < 3)
    with torch.no_grad():
        out = gpt(input_ids=ids, attention_mask=mask.long(), labels=labels)
        assert torch.allclose(batch_token_loss(gpt, dict(input_ids=ids, attention_mask=mask.long(), labels=labels)),
                              out.loss, atol=1e-5)
        assert torch.allclose(masked_token_loss(out.logits, labels), out.loss, atol=1e-5)
        src = torch.randint(2, V, (3, 6))
        _, tl = _labels(B=3, T=5, n_prompt=0, seed=3)
        o5 = t5(input_ids=src, attention_mask=torch.ones_like(src), labels=tl)
        assert torch.allclose(masked_token_loss(o5.logits, tl, shift=False), o5.loss, atol=1e-5)
        assert torch.allclose(batch_token_loss(t5, dict(input_ids=src, attention_mask=torch.ones_like(src), labels=tl)),
                              o5.loss, atol=1e-5)


def _pad(rows):
    out = {}
    for k in rows[0]:
        T = max(len(r[k]) for r in rows)
        fill = -100 if k == 'labels' else 0
        out[k] = torch.tensor([r[k] + [fill] * (T - len(r[k])) for r in rows])
    return out


def _rows(lengths, seed=0, seq2seq=False):
    g = torch.Generator().manual_seed(seed)
    rows = []
    for n in lengths:
        if seq2seq:
            src = torch.randint(2, V, (5,), generator=g).tolist()
            rows.append(dict(input_ids=src, attention_mask=[1] * 5, labels=torch.randint(2, V, (n,), generator=g).tolist()))
        else:
            ids = torch.randint(0, V, (3 + n,), generator=g).tolist()
            rows.append(dict(input_ids=ids, attention_mask=[1] * len(ids), labels=[-100] * 3 + ids[3:]))
    return rows


def _rel(a, b):
    a, b = torch.cat([a[k].flatten() for k in b]), torch.cat([b[k].flatten() for k in b])
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize('kind', ['causal', 'seq2seq'])
def test_accumulation_normalises_by_tokens(gpt, t5, kind):
    model = gpt if kind == 'causal' else t5
    rows = _rows([1, 2, 12, 15], seq2seq=kind == 'seq2seq')
    micro = [_pad(rows[:2]), _pad(rows[2:])]
    model.zero_grad(); full = batch_token_loss(model, _pad(rows)); full.backward(); g_full = grads_of(model)
    model.zero_grad(); right = accumulated_loss(model, micro, normalize='tokens'); g_right = grads_of(model)
    model.zero_grad(); accumulated_loss(model, micro, normalize='mean'); g_wrong = grads_of(model)
    model.zero_grad()
    assert math.isclose(right, full.item(), rel_tol=1e-5)
    assert _rel(g_right, g_full) < 1e-5
    assert _rel(g_wrong, g_full) > 0.05
    with pytest.raises(ValueError, match='normalize'): accumulated_loss(model, micro, normalize='seq')


@pytest.mark.parametrize('kind', ['causal', 'seq2seq'])
def test_trainer_compute_loss_with_accumulation(gpt, t5, kind):
    "One SGD(lr=1) Trainer step with gradient accumulation 2 applies the full-batch gradient."
    from transformers import Trainer, TrainingArguments
    model = gpt if kind == 'causal' else t5

    class TokenLossTrainer(Trainer):
        loss_is_scaled_for_ga = True
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            return trainer_compute_loss(model, inputs, num_items_in_batch, return_outputs=return_outputs)

    rows = _rows([1, 2, 12, 15], seed=4, seq2seq=kind == 'seq2seq')
    model.zero_grad(); batch_token_loss(model, _pad(rows)).backward(); g_full = grads_of(model); model.zero_grad()
    m = copy.deepcopy(model)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    with tempfile.TemporaryDirectory() as d:
        args = TrainingArguments(output_dir=d, per_device_train_batch_size=2, gradient_accumulation_steps=2, max_steps=1,
                                 learning_rate=1.0, lr_scheduler_type='constant', max_grad_norm=0, weight_decay=0.0,
                                 use_cpu=True, report_to='none', save_strategy='no', logging_strategy='no', disable_tqdm=True)
        TokenLossTrainer(model=m, args=args, train_dataset=rows, data_collator=_pad,
                         optimizers=(torch.optim.SGD(m.parameters(), lr=1.0), None)).train()
    delta = {n: before[n] - p.detach() for n, p in m.named_parameters()}
    assert _rel(delta, g_full) < 1e-5
    # without a token count (evaluation) it is the plain token mean
    b = _pad(rows)
    with torch.no_grad():
        assert torch.allclose(trainer_compute_loss(model, b), batch_token_loss(model, b), atol=1e-6)


class _Tok:
    "A stand-in tokenizer: token id i decodes to '<i>'."
    def decode(self, ids): return ''.join(f'<{i}>' for i in ids)


@pytest.mark.parametrize('kind', ['causal', 'seq2seq'])
def test_token_losses_align_with_loss(gpt, t5, kind):
    from descgen.loss import token_losses
    model = gpt if kind == 'causal' else t5
    if kind == 'causal':
        ids = torch.randint(0, V, (10,)).tolist()
        ex = dict(input_ids=ids, attention_mask=[1] * 10, labels=[-100] * 4 + ids[4:])
        targets = ids[4:]
    else:
        ex = dict(input_ids=torch.randint(2, V, (6,)).tolist(), attention_mask=[1] * 6, labels=torch.randint(2, V, (5,)).tolist())
        targets = ex['labels']
    t = token_losses(model, _Tok(), ex)
    assert t['token_id'].tolist() == targets
    assert ''.join(t['token']) == _Tok().decode(targets)
    b = {k: torch.tensor([v]) for k, v in ex.items()}
    with torch.no_grad():
        assert math.isclose(t['loss'].mean(), float(batch_token_loss(model, b)), rel_tol=1e-5)
    assert ((t['prob'] - (-t['loss']).map(math.exp)).abs() < 1e-6).all()
    with pytest.raises(ValueError, match='labels'): token_losses(model, _Tok(), {'input_ids': ex['input_ids']})


def test_value_token_mask_and_plot():
    import matplotlib; matplotlib.use('Agg')
    import pandas as pd
    from descgen.loss import value_token_mask, plot_token_losses
    t = pd.DataFrame({'token': [' Vero', ' costs', ' Rs', '.', ' 2', ',', '499', '.', '</s>'], 'loss': [5., 1, 4, 3, 6, 2, 6, .5, .1]})
    assert value_token_mask(t, [('brand', 'vero'), ('price', 'Rs. 2,499')]) == [True, False, True, True, True, True, True, False, False]
    fig = plot_token_losses({'a': t, 'b': t.assign(loss=t['loss'] / 2)}, width=20)
    assert len(fig.axes) == 3  # two panels and the colour bar
    assert sum(len(ax.texts) for ax in fig.axes[:2]) == 2 * len(t)


@pytest.mark.parametrize('kind', ['causal', 'seq2seq'])
def test_kit_trainer_applies_full_batch_gradient(gpt, t5, kind):
    "descgen.train's Trainer, gradient accumulation 2, label smoothing 0.1: one SGD(lr=1) step = the full-batch gradient."
    import descgen.train as train
    from transformers import Seq2SeqTrainingArguments
    model = gpt if kind == 'causal' else t5
    rows = _rows([2, 1, 14, 9], seed=5, seq2seq=kind == 'seq2seq')
    model.zero_grad(); batch_token_loss(model, _pad(rows), label_smoothing=0.1).backward(); g_full = grads_of(model); model.zero_grad()
    m = copy.deepcopy(model)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    with tempfile.TemporaryDirectory() as d:
        args = Seq2SeqTrainingArguments(output_dir=d, per_device_train_batch_size=2, gradient_accumulation_steps=2, max_steps=1,
                                        learning_rate=1.0, lr_scheduler_type='constant', max_grad_norm=0, weight_decay=0.0,
                                        use_cpu=True, report_to='none', save_strategy='no', logging_strategy='no', disable_tqdm=True)
        train.make_trainer_class(kind, label_smoothing=0.1)(model=m, args=args, train_dataset=rows, data_collator=_pad,
                                                            optimizers=(torch.optim.SGD(m.parameters(), lr=1.0), None)).train()
    delta = {n: before[n] - p.detach() for n, p in m.named_parameters()}
    assert _rel(delta, g_full) < 1e-5
