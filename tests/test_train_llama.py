"""The fine-tuning levers of issue #17 on a tiny random Llama (SmolLM2's architecture): packed rows give the padded
batch's loss, the output layer at labelled positions only gives the every-position loss and gradients, and LoRA on the
top k blocks stops the backward pass there. One thread, so that float comparisons do not depend on the thread count."""
import pytest
import torch

from descgen.data import make_collator, make_prompt, synthetic_products, tokenize_products
from descgen.loss import batch_token_loss, labelled_token_loss, grads_of
from descgen.methods import TrainConfig, apply_method, check_packing
from descgen.models import train_tokenizer


pytestmark = pytest.mark.usefixtures('one_thread')   # conftest: one torch thread for this module

@pytest.fixture(scope='module')
def llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    prods = synthetic_products(60, seed=0)
    tok = train_tokenizer([make_prompt(p) + ' ' + p.references[0] for p in prods], vocab_size=400, arch='gpt2')
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, use_cache=False)
    torch.manual_seed(0)
    rows = tokenize_products(prods[:6], tok, kind='causal', cache=False)
    return LlamaForCausalLM(cfg), tok, [rows[i] for i in range(6)]

def test_packed_rows_give_the_padded_loss(llama):
    from transformers import DataCollatorWithFlattening
    model, tok, feats = llama
    model.eval()
    check_packing(model)
    padded = make_collator(tok, 'causal')(feats)
    packed = DataCollatorWithFlattening(return_position_ids=True)(
        [{k: f[k] for k in ('input_ids', 'labels')} for f in feats])
    assert packed['input_ids'].shape[0] == 1 and padded['attention_mask'].eq(0).any()   # the padded batch pads
    with torch.no_grad():
        assert batch_token_loss(model, packed).item() == pytest.approx(batch_token_loss(model, padded).item(), abs=1e-5)

def test_logits_at_labels_only_same_loss_and_gradients(llama):
    model, tok, feats = llama
    model.train()
    batch = make_collator(tok, 'causal')(feats)
    model.zero_grad(); every = batch_token_loss(model, batch); every.backward(); g_every = grads_of(model)
    model.zero_grad(); lab = labelled_token_loss(model, batch); lab.backward(); g_lab = grads_of(model)
    assert lab.item() == pytest.approx(every.item(), abs=1e-5)
    assert set(g_lab) == set(g_every)
    for n in g_every: torch.testing.assert_close(g_lab[n], g_every[n], atol=1e-5, rtol=1e-4)

def test_lora_top_k_stops_the_backward_pass(llama):
    import copy
    model, tok, feats = llama
    batch = make_collator(tok, 'causal')(feats)
    cfg = TrainConfig(method='lora', lora_top_k=1, target_modules=['all-linear'], lora_dropout=0.0)
    net, info = apply_method(copy.deepcopy(model), cfg, 'causal')
    layers = net.base_model.model.model.layers
    assert (info['trained_blocks'], info['num_blocks']) == (1, 4)
    adapted = {n.split('.layers.')[1].split('.')[0] for n, _ in net.named_parameters() if 'lora_A' in n}
    assert adapted == {'3'} and len([n for n, _ in net.named_parameters() if 'lora_A' in n]) == 7
    needs = []
    hooks = [b.register_forward_hook(lambda m, a, out: needs.append(out[0].requires_grad if isinstance(out, tuple)
                                                                       else out.requires_grad)) for b in layers]
    labelled_token_loss(net, batch).backward()
    for h in hooks: h.remove()
    assert needs == [False, False, False, True]   # blocks 0-2 need no gradient: autograd never goes below block 3
