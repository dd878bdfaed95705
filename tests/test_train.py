"""Fine-tuning (descgen.train) on tiny sizes: loss falls, LoRA keeps the base bit-identical, adapter size, resume after
SIGKILL, every method on GPT-2 and T5, token-normalised gradient accumulation, packing isolation, CLI."""
import json, math, os, subprocess, sys, textwrap
from pathlib import Path
import pytest

torch = pytest.importorskip('torch')
from descgen.core import DescgenError, read_jsonl, param_summary, set_threads
set_threads(1)   # tiny models: one thread is faster and keeps results independent of the machine's load
from descgen.train import (METHODS, PEFT_METHODS, TrainConfig, apply_method, check_packing, finetune,
                           load_trained, merge_adapter, train_cli)

TINY = dict(max_source_len=48, max_target_len=32, max_eval_examples=8, progress=False)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory, tiny_base):
    from descgen.data import prepare
    root = tmp_path_factory.mktemp('train')
    data = prepare('synthetic', out=root/'data', n=240)
    return {'root': root, 'data': data, 'gpt2': tiny_base(root/'gpt2', data, 'gpt2'), 't5': tiny_base(root/'t5', data, 't5')}


def _metrics(run):
    return json.loads((Path(run)/'metrics.json').read_text())


@pytest.fixture(scope='module')
def full_and_lora(tiny):
    "30-step full and LoRA runs (shared by several tests); the LoRA model is kept as it is at the end of training."
    from transformers import TrainerCallback
    class Keep(TrainerCallback):
        def on_train_end(self, args, state, control, model=None, **kw): self.model = model
    keep = Keep()
    kw = dict(max_steps=30, eval_steps=10, logging_steps=5, batch_size=8, **TINY)
    full = finetune(tiny['data'], tiny['gpt2'], 'full', out=tiny['root']/'full', lr=3e-3, **kw)
    lora = finetune(tiny['data'], tiny['gpt2'], 'lora', out=tiny['root']/'lora', lr=1e-2, callbacks=[keep], **kw)
    return full, lora, keep.model


def test_loss_falls_over_30_steps_full_and_lora(full_and_lora):
    for run in full_and_lora[:2]:
        m = _metrics(run)
        assert m['steps'] == 30
        train = [r['loss'] for r in read_jsonl(run/'train_log.jsonl') if 'loss' in r]
        assert train[-1] < train[0] - 0.1, (m['method'], train)
        curve = [v for _, v in m['val_loss_curve']]
        assert curve[-1] < curve[0], (m['method'], curve)
        assert m['val_loss'] == m['best_val_loss']


def test_lora_leaves_every_base_weight_bit_identical(tiny, full_and_lora):
    from descgen.models import load_model
    trained = full_and_lora[2].get_base_model().state_dict()
    trained = {k.replace('.base_layer', ''): v for k, v in trained.items() if 'lora_' not in k}
    base = load_model(tiny['gpt2'])[0].state_dict()
    assert set(trained) == set(base)
    changed = [k for k in base if not torch.equal(trained[k], base[k])]
    assert not changed, changed
    # and the adapter did move
    lora_params = {k: v for k, v in full_and_lora[2].named_parameters() if 'lora_B' in k}
    assert lora_params and any(v.abs().sum() > 0 for v in lora_params.values())


def test_adapter_is_under_5_percent_of_full_checkpoint(full_and_lora):
    full, lora, _ = full_and_lora
    a = (lora/'model'/'adapter_model.safetensors').stat().st_size
    f = (full/'model'/'model.safetensors').stat().st_size
    assert a < 0.05 * f, (a, f)
    assert not list((lora/'model').glob('model*.safetensors'))   # adapter only
    for ck in (lora/'checkpoints').glob('checkpoint-*'):          # checkpoints hold the adapter only, too
        assert (ck/'adapter_model.safetensors').exists() and not (ck/'model.safetensors').exists()


def test_run_directory_contents(full_and_lora):
    full, lora, _ = full_and_lora
    for run in (full, lora):
        for f in ['config.json', 'config.yaml', 'data_card.json', 'train_log.jsonl', 'trainer_state.json', 'metrics.json']:
            assert (run/f).exists(), f
        assert list((run/'tensorboard').glob('events.out.tfevents.*'))
        m = _metrics(run)
        for k in ['trainable_params', 'total_params', 'train_loss', 'val_loss', 'tokens_per_s', 'wall_time_s', 'peak_rss_mb',
                  'model_bytes', 'checkpoint_bytes', 'useful_tokens']:
            assert m[k] is not None, k
        assert m['model_bytes'] > 0 and all(v > 0 for v in m['checkpoint_bytes'].values())
        cfg = json.loads((run/'config.json').read_text())
        assert set(TrainConfig().to_dict()) == set(cfg['train'])   # every option is recorded
        log = read_jsonl(run/'train_log.jsonl')
        assert all({'step', 'loss', 'learning_rate', 'tokens_per_s'} <= set(r) for r in log if 'loss' in r)
        assert any('eval_loss' in r for r in log)
    assert _metrics(full)['trainable_params'] == _metrics(full)['total_params']
    ml = _metrics(lora)
    assert ml['trainable_params'] + ml['base_params'] == ml['total_params']


def test_load_trained_and_merge(tiny, full_and_lora):
    from descgen.models import load_model
    full, lora, _ = full_and_lora
    m, tok = load_trained(lora)
    merged = merge_adapter(lora, tiny['root']/'merged')
    mm, _ = load_model(merged)
    x = torch.tensor([tok('product_type : mug | colour : red')['input_ids']])
    with torch.no_grad():
        assert torch.allclose(m(input_ids=x).logits, mm(input_ids=x).logits, atol=1e-4)
    fm, _ = load_trained(full)
    assert type(fm).__name__ == 'GPT2LMHeadModel' and not fm.training
    with pytest.raises(DescgenError, match='no adapter'): merge_adapter(full, tiny['root']/'m2')


def test_finished_run_is_reused_and_other_config_refused(tiny, full_and_lora):
    full = full_and_lora[0]
    before = (full/'metrics.json').stat().st_mtime_ns
    again = finetune(tiny['data'], tiny['gpt2'], 'full', out=full, lr=3e-3, max_steps=30, eval_steps=10, logging_steps=5,
                     batch_size=8, **TINY)
    assert again == full and (full/'metrics.json').stat().st_mtime_ns == before
    with pytest.raises(DescgenError, match='another configuration'):
        finetune(tiny['data'], tiny['gpt2'], 'full', out=full, lr=1e-3, max_steps=30, **TINY)


KILL_SCRIPT = textwrap.dedent('''
    import os, signal, sys, torch
    torch.set_num_threads(1)
    from transformers import TrainerCallback
    from descgen.train import finetune
    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == int(sys.argv[3]): os.kill(os.getpid(), signal.SIGKILL)
    data, base, kill, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    finetune(data, base, sys.argv[5], out=out, callbacks=[Kill()] if kill else [], **{OPTS})
''')


@pytest.mark.parametrize('method', ['full', 'lora'])
def test_resume_after_sigkill_matches_uninterrupted_run(tiny, method, tmp_path):
    # 192 training rows / 8 = 24 steps per epoch; checkpoint every 6 steps; killed at step 9 (mid-epoch, after checkpoint-6)
    opts = dict(max_steps=18, eval_steps=6, logging_steps=3, batch_size=8, lr=5e-3, dropout=0.1, **TINY)
    script = tmp_path/'run.py'
    script.write_text(KILL_SCRIPT.replace('{OPTS}', repr(opts)))
    ref = finetune(tiny['data'], tiny['gpt2'], method, out=tmp_path/'ref', **opts)
    run = tmp_path/'killed'
    args = [sys.executable, str(script), str(tiny['data']), str(tiny['gpt2'])]
    r = subprocess.run(args + ['9', str(run), method], capture_output=True, text=True, timeout=300)
    assert r.returncode == -9, r.stderr[-2000:]          # really killed by SIGKILL
    assert not (run/'metrics.json').exists()
    assert sorted(p.name for p in (run/'checkpoints').glob('checkpoint-*')) == ['checkpoint-6']
    r = subprocess.run(args + ['0', str(run), method], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = _metrics(ref), _metrics(run)
    assert b['resumed_from'] == 'checkpoint-6' and a['resumed_from'] is None
    for k in ['steps', 'train_loss', 'val_loss', 'best_val_loss', 'best_checkpoint', 'val_loss_curve', 'trainable_params']:
        assert a[k] == b[k], (k, a[k], b[k])
    strip = lambda rows: [{k: v for k, v in r.items() if k in ('step', 'loss', 'eval_loss', 'grad_norm', 'learning_rate')}
                          for r in rows if 'train_runtime' not in r]
    assert strip(read_jsonl(ref/'train_log.jsonl')) == strip(read_jsonl(run/'train_log.jsonl'))


@pytest.mark.parametrize('arch', ['gpt2', 't5'])
@pytest.mark.parametrize('method', METHODS)
def test_each_method_builds_and_takes_a_step(tiny, arch, method, tmp_path):
    from descgen.models import load_model
    from peft import PeftModel
    from transformers import TrainerCallback
    class Keep(TrainerCallback):
        def on_train_end(self, args, state, control, model=None, **kw): self.model = model
    keep = Keep()
    run = finetune(tiny['data'], tiny[arch], method, out=tmp_path/'run', max_steps=2, eval_steps=2, batch_size=4,
                   max_train_examples=16, freeze_top_k=1, callbacks=[keep], **TINY)
    m = _metrics(run)
    assert m['steps'] == 2 and math.isfinite(m['val_loss']) and math.isfinite(m['train_loss'])
    assert 0 < m['trainable_params'] <= m['total_params']
    if method == 'full': assert m['trainable_params'] == m['total_params']
    else: assert m['trainable_params'] < m['total_params']
    model, tok = load_trained(run)
    assert isinstance(model, PeftModel) == (method in PEFT_METHODS)
    # the reloaded model (base + adapter for peft) computes exactly what the trained model computed
    x = torch.tensor([tok('product_type : mug | colour : red')['input_ids']])
    kw = {'decoder_input_ids': torch.zeros((1, 1), dtype=torch.long)} if arch == 't5' else {}
    keep.model.eval()
    with torch.no_grad():
        assert torch.equal(model(input_ids=x, **kw).logits, keep.model(input_ids=x, **kw).logits)
    assert m['val_token_loss'] == pytest.approx(m['val_loss'], rel=0.05)


@pytest.mark.parametrize('arch', ['gpt2', 't5'])
def test_param_counts_exact_and_agree_with_peft(tiny, arch):
    from descgen.models import load_model
    kind = 'seq2seq' if arch == 't5' else 'causal'
    n_base = param_summary(load_model(tiny[arch])[0])['total_params']
    for method in PEFT_METHODS:
        net, info = apply_method(load_model(tiny[arch])[0], TrainConfig(method=method), kind, total_steps=50)
        c = param_summary(net)
        assert net.get_nb_trainable_parameters() == (c['trainable_params'], c['total_params'])
        by_hand = sum(p.numel() for n, p in net.named_parameters() if p.requires_grad)
        assert by_hand == c['trainable_params']
        if method == 'lora':
            assert info['target_modules'] == (['c_attn'] if arch == 'gpt2' else ['q', 'v'])
            assert c['total_params'] == n_base + c['trainable_params']
    net, info = apply_method(load_model(tiny[arch])[0], TrainConfig(method='freeze', freeze_top_k=1), kind)
    assert info['trained_blocks'] == 1
    top, below = (net.transformer.h[-1], net.transformer.h[:-1]) if arch == 'gpt2' else (net.decoder.block[-1], net.encoder.block)
    assert all(p.requires_grad for p in top.parameters())
    assert len(below) and not any(p.requires_grad for p in below.parameters())
    assert not net.get_input_embeddings().weight.requires_grad


@pytest.mark.parametrize('arch', ['gpt2', 't5'])
def test_grad_accum_is_normalised_by_target_tokens(tiny, arch, tmp_path):
    # one step over 8 rows: a batch of 8 versus 4 micro-batches of 2 (unequal target counts) give the same loss and gradient
    one = dict(max_steps=1, eval_steps=1, logging_steps=1, sampler='sequential', dropout=0.0, lr=1e-3, early_stopping_patience=None,
               max_train_examples=8, max_source_len=48, max_target_len=128, max_eval_examples=2, progress=False)
    r1 = finetune(tiny['data'], tiny[arch], 'full', out=tmp_path/'ga1', batch_size=8, grad_accum=1, **one)
    r4 = finetune(tiny['data'], tiny[arch], 'full', out=tmp_path/'ga4', batch_size=2, grad_accum=4, **one)
    l1, l4 = (read_jsonl(r/'train_log.jsonl')[0] for r in (r1, r4))
    assert l1['loss'] == pytest.approx(l4['loss'], rel=1e-5)
    assert l1['grad_norm'] == pytest.approx(l4['grad_norm'], rel=1e-4)
    # the micro-batches really differ in target tokens (otherwise a per-micro-batch mean would pass too)
    from descgen.data import load_split, tokenize_products, make_collator
    from descgen.loss import count_target_tokens
    from descgen.models import load_model
    tok = load_model(tiny[arch])[1]
    kind = 'seq2seq' if arch == 't5' else 'causal'
    rows = tokenize_products(load_split(tiny['data'], 'train')[:8], tok, kind=kind, max_source_len=48, max_target_len=128)
    coll = make_collator(tok, kind)
    counts = [count_target_tokens(coll([rows[i] for i in range(j, j + 2)])['labels'], shift=kind == 'causal') for j in range(0, 8, 2)]
    assert len(set(counts)) > 1, counts


def test_packing_keeps_examples_apart(tiny, tmp_path):
    from transformers import DataCollatorWithFlattening
    from descgen.data import load_split, tokenize_products, make_collator
    from descgen.loss import batch_token_loss
    from descgen.models import load_model
    model, tok = load_model(tiny['gpt2'])
    model.eval(); model.config.use_cache = False   # as the Trainer trains
    check_packing(model)
    rows = tokenize_products(load_split(tiny['data'], 'train')[:6], tok, kind='causal', max_source_len=48, max_target_len=64)
    feats = [rows[i] for i in range(6)]
    padded, packed = make_collator(tok, 'causal')(feats), DataCollatorWithFlattening(return_position_ids=True)(feats)
    assert packed['input_ids'].shape[0] == 1 and 'attention_mask' not in packed
    with torch.no_grad():
        assert batch_token_loss(model, packed).item() == pytest.approx(batch_token_loss(model, padded).item(), rel=1e-5)
    run = finetune(tiny['data'], tiny['gpt2'], 'full', out=tmp_path/'pack', pack=True, max_steps=2, eval_steps=2,
                   batch_size=4, max_train_examples=16, **TINY)
    assert _metrics(run)['steps'] == 2
    with pytest.raises(DescgenError, match='only for causal'):
        finetune(tiny['data'], tiny['t5'], 'full', out=tmp_path/'pack-t5', pack=True, max_steps=1, **TINY)
    with pytest.raises(DescgenError, match='pack'):
        finetune(tiny['data'], tiny['gpt2'], 'prefix', out=tmp_path/'pack-prefix', pack=True, max_steps=1, **TINY)


def test_early_stopping_keeps_the_best_checkpoint(tiny, tmp_path):
    run = finetune(tiny['data'], tiny['gpt2'], 'full', out=tmp_path/'es', max_steps=40, eval_steps=2, batch_size=4,
                   early_stopping_patience=2, early_stopping_threshold=100.0, **TINY)
    m = _metrics(run)
    assert m['early_stopped'] and m['steps'] == 6, m['steps']   # evals at 2 (best), 4, 6: two without improvement
    step, loss = min(m['val_loss_curve'], key=lambda sl: sl[1])
    assert m['best_checkpoint'] == f'checkpoint-{step}' and m['val_loss'] == loss


def test_config_errors():
    with pytest.raises(DescgenError, match='unknown method'): TrainConfig(method='bitfit')
    with pytest.raises(DescgenError, match='unknown training option'): TrainConfig.from_dict({'lora_rank': 4})
    with pytest.raises(DescgenError, match='batch_size must be'): TrainConfig(batch_size=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU refusal of bf16/fp16')
def test_no_half_precision_on_cpu():
    from descgen.train import _precision
    assert _precision(TrainConfig()) is None      # auto on CPU: fp32, never bf16 autocast
    with pytest.raises(DescgenError, match='needs a GPU'): _precision(TrainConfig(precision='bf16'))


def test_cli_config_file_and_flags(tiny, tmp_path, capsys):
    cfg = tmp_path/'c.yaml'
    cfg.write_text(f"data: {tiny['data']}\nmodel: {tiny['gpt2']}\nmethod: lora\nmax_steps: 2\neval_steps: 2\nbatch_size: 4\n"
                   "max_source_len: 48\nmax_target_len: 32\nmax_eval_examples: 8\nmax_train_examples: 16\n")
    assert train_cli(['--config', str(cfg), '--lora-r', '4', '--target-modules', 'c_attn,c_proj', '--out', str(tmp_path/'r'),
                      '--no-progress']) == 0
    out = capsys.readouterr().out
    assert 'run:' in out and 'val loss' in out
    c = json.loads((tmp_path/'r'/'config.json').read_text())
    assert c['train']['lora_r'] == 4 and c['train']['max_steps'] == 2
    assert c['method_info']['target_modules'] == ['c_attn', 'c_proj']
    cli = [sys.executable, '-c', 'import sys; from descgen.cli import main; sys.exit(main(sys.argv[1:]))', 'train']
    r = subprocess.run(cli + ['--help'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and '--lora-alpha' in r.stdout and '--grad-accum' in r.stdout
    assert 'LoRA rank (AdaLoRA: target average rank) (default: 8)' in r.stdout   # TrainConfig's comment, via docments
    r = subprocess.run(cli + ['--model', 'x'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and 'needs --data' in r.stderr


def test_label_smoothing_changes_the_objective(tiny, tmp_path):
    # step-1 loss (before any update) with smoothing eps is (1-eps)*NLL + eps*mean_v(-log p_v): not the plain NLL
    one = dict(max_steps=1, eval_steps=1, logging_steps=1, sampler='sequential', dropout=0.0, early_stopping_patience=None,
               max_train_examples=8, batch_size=8, **TINY)
    l0 = read_jsonl(finetune(tiny['data'], tiny['gpt2'], 'full', out=tmp_path/'ls0', **one)/'train_log.jsonl')[0]['loss']
    l1 = read_jsonl(finetune(tiny['data'], tiny['gpt2'], 'full', out=tmp_path/'ls1', label_smoothing=0.1, **one)/'train_log.jsonl')[0]['loss']
    assert l1 != l0 and math.isfinite(l1)


def test_two_processes_ddp_match_one_process(tiny, tmp_path):
    "The multi-process path on CPU (torchrun, gloo): 2 processes x 2 micro-batches of 2 rows == 1 process x 8 rows."
    import shutil
    if not torch.distributed.is_available(): pytest.skip('torch.distributed is not available in this build')
    descgen = shutil.which('descgen')
    if descgen is None: pytest.skip('the descgen console script is not installed')
    opts = ['--data', str(tiny['data']), '--model', str(tiny['gpt2']), '--method', 'full', '--max-steps', '1', '--eval-steps', '1',
            '--logging-steps', '1', '--sampler', 'sequential', '--dropout', '0', '--max-source-len', '48', '--max-target-len', '128',
            '--max-eval-examples', '4', '--max-train-examples', '8', '--threads', '1', '--no-progress']
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', '29517', descgen,
                        'train', *opts, '--batch-size', '2', '--grad-accum', '2', '--out', str(tmp_path/'ddp')],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count('run:') == 1          # only the first process reports
    one = finetune(tiny['data'], tiny['gpt2'], 'full', out=tmp_path/'one', max_steps=1, eval_steps=1, logging_steps=1,
                   sampler='sequential', dropout=0.0, max_source_len=48, max_target_len=128, max_eval_examples=4,
                   max_train_examples=8, batch_size=8, progress=False)
    a, b = read_jsonl(one/'train_log.jsonl')[0], read_jsonl(tmp_path/'ddp'/'train_log.jsonl')[0]
    assert a['loss'] == pytest.approx(b['loss'], rel=1e-5)
    assert a['grad_norm'] == pytest.approx(b['grad_norm'], rel=1e-4)
    assert json.loads((tmp_path/'ddp'/'trainer_state.json').read_text())['train_batch_size'] == 2

def test_kit_base_is_pretrained_on_the_prepared_folder(tmp_path, monkeypatch):
    "`--model kit:SIZE` pretrains on the folder being fine-tuned on (e.g. delexicalised), the same base the sweep builds."
    import descgen.train
    from descgen.train import resolve_base
    calls = []
    monkeypatch.setattr(descgen.train, 'build_base', lambda ds, **kw: calls.append((ds, kw)) or tmp_path)
    folder = tmp_path/'prepared'; folder.mkdir(); (folder/'train.jsonl').write_text('')
    assert resolve_base('kit:tiny', folder) == str(tmp_path.resolve())
    assert calls[-1] == (str(folder), {'size': 'tiny', 'arch': 'gpt2'})
    resolve_base('kit:small-t5')
    assert calls[-1] == ('synthetic', {'size': 'small', 'arch': 't5'})
