"""The decoding levers of issue #17 on a tiny random Llama (SmolLM2's architecture: rotary positions, grouped-query
attention), fast on CPU: batched == one at a time, cached shared prefix == none, packed weights == plain ones, the own
greedy loop (ended rows dropped) == `generate`, beams prefilled once == `generate` running every beam's prompt."""
import collections
import pytest
import torch

from descgen.data import make_prompt, synthetic_products
from descgen.decoding import (_cache_name, _cut_at, _greedy, _plain_greedy, _prefill, _prefix_kv, encode_prompts,
                              generate_ids, generation_config, pad_batch, packed_linears)
from descgen.models import train_tokenizer


pytestmark = pytest.mark.usefixtures('one_thread')   # conftest: one torch thread for this module

@pytest.fixture(scope='module')
def llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    tok = train_tokenizer([make_prompt(p) + ' ' + p.references[0] for p in synthetic_products(200, seed=0)],
                          vocab_size=500, arch='gpt2')
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      initializer_range=0.3, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)   # large weights: the output depends strongly on the input (and on any position mistake)
    return LlamaForCausalLM(cfg).eval(), tok

@pytest.fixture(scope='module')
def enc(llama):
    _, tok = llama
    e = encode_prompts(tok, [make_prompt(p) for p in synthetic_products(12, seed=3)])
    assert len(set(map(len, e))) > 5, 'prompts of different lengths, so batches are padded'
    return e

@pytest.fixture(scope='module')
def fewshot(llama, enc):
    "The prompts after the same 60-token example (a few-shot prefix all of them share)."
    _, tok = llama
    ex = tok(' '.join(p.references[0] for p in synthetic_products(3, seed=9)))['input_ids'][:60]
    return [ex + e for e in enc]

def _g(tok, **kw):
    kw = {'max_new_tokens': 16, **kw}
    return generation_config(eos_token_id=[tok.eos_token_id], pad_token_id=tok.pad_token_id, **kw)


@pytest.mark.parametrize('kw', [{}, dict(num_beams=3, num_return_sequences=2)])
def test_batched_equals_one_at_a_time(llama, enc, kw):
    model, tok = llama
    batched = generate_ids(model, enc, _g(tok, **kw), batch_size=5)
    assert batched == [generate_ids(model, [e], _g(tok, **kw), batch_size=1)[0] for e in enc]
    assert len({tuple(x[0]) for x in batched}) > len(enc) // 2   # not a degenerate model

@pytest.mark.parametrize('kw', [{}, dict(num_beams=3, num_return_sequences=2),
                                dict(do_sample=True, num_return_sequences=2, top_p=0.9)])
def test_cached_prefix_equals_none(llama, fewshot, kw):
    "The shared examples' keys/values computed once give the tokens of recomputing them in every row (rotary positions)"
    model, tok = llama
    ref = generate_ids(model, fewshot, _g(tok, **kw), batch_size=5, shared_prefix=False, packed=False)
    assert generate_ids(model, fewshot, _g(tok, **kw), batch_size=5) == ref
    assert generate_ids(model, fewshot, _g(tok, **kw), batch_size=5, packed=False) == ref

def test_prefilled_cache_then_generate_equals_generate(llama, enc):
    "For beams, the prompt is run once and its cache repeated per beam; generate alone runs every beam's copy."
    model, tok = llama
    ids, mask = pad_batch(enc[:6], tok.pad_token_id)
    pre = enc[0][:5]
    ids_s = torch.cat([torch.tensor([pre] * 6), ids], 1)
    mask_s = torch.cat([torch.ones(6, len(pre), dtype=torch.long), mask], 1)
    for beams in (1, 4):
        g = _g(tok, num_beams=beams)
        with torch.inference_mode():
            for i, m, kv in ((ids, mask, None), (ids_s, mask_s, _prefix_kv(model, pre))):
                ref = model.generate(input_ids=i, attention_mask=m, generation_config=g)
                c = _prefill(model, i, m, kv, copies=beams, growing=beams == 1)
                assert c.layers[0].keys.shape[0] == 6 * beams and c.get_seq_length() == i.shape[1] - 1
                got = model.generate(input_ids=i, attention_mask=m, generation_config=g, **{_cache_name(model): c})
                assert torch.equal(got, ref)

def test_own_greedy_equals_generate_with_rows_ending_apart(llama, enc):
    "Frequent tokens taken as EOS end rows at many different steps; dropping them from the batch changes no token."
    model, tok = llama
    ids, mask = pad_batch(enc, tok.pad_token_id)
    with torch.inference_mode():
        first = model.generate(input_ids=ids, attention_mask=mask, generation_config=_g(tok))[:, ids.shape[1]:]
        stops = [t for t, _ in collections.Counter(first.flatten().tolist()).most_common(3)][1:]
        g = generation_config(max_new_tokens=16, eos_token_id=stops, pad_token_id=tok.pad_token_id)
        ref = [_cut_at(r, stops) for r in
               model.generate(input_ids=ids, attention_mask=mask, generation_config=g)[:, ids.shape[1]:].tolist()]
        assert len({len(r) for r in ref}) > 4
        for drop in (None, 0.125, 1e-9):
            got = _greedy(model, ids, mask, _prefill(model, ids, mask), g, stops, drop)
            assert [_cut_at(r, stops) for r in got] == ref
    assert [x[0] for x in generate_ids(model, enc, g, batch_size=12)] == ref

def test_settings_greedy_cannot_follow_go_through_generate(llama, enc):
    "A checkpoint's repetition penalty (left unset by the caller) is applied: decoded by generate, not the own loop."
    model, tok = llama
    g = _g(tok)
    assert _plain_greedy(model, g) and not _plain_greedy(model, _g(tok, no_repeat_ngram_size=2))
    plain = generate_ids(model, enc[:4], g)
    model.generation_config.repetition_penalty = 5.0
    try:
        assert not _plain_greedy(model, g)
        ids, mask = pad_batch(enc[:4], tok.pad_token_id)
        with torch.inference_mode():
            ref = model.generate(input_ids=ids, attention_mask=mask, generation_config=g)[:, ids.shape[1]:].tolist()
        got = generate_ids(model, enc[:4], g, batch_size=4)
        assert [x[0] for x in got] == [_cut_at(r, [tok.eos_token_id]) for r in ref] and got != plain
    finally: model.generation_config.repetition_penalty = None

def test_packed_linears_same_logits_restored_and_repacked(llama, enc):
    model, tok = llama
    x = torch.tensor([enc[0]])
    with torch.inference_mode():
        ref = model(input_ids=x).logits
        with packed_linears(model) as n: got = model(input_ids=x).logits
    assert n == 7 * 2 + 1 and torch.allclose(got, ref, atol=1e-4 * float(ref.abs().max()))
    assert all('forward' not in m.__dict__ for m in model.modules())
    lin = model.lm_head
    with torch.no_grad(): lin.weight.mul_(-1)   # a changed weight (an optimiser step) is packed again
    try:
        with torch.inference_mode(), packed_linears(model):
            x1 = torch.ones(1, 64)
            assert torch.allclose(lin(x1), torch.nn.functional.linear(x1, lin.weight), atol=1e-3)
    finally:
        with torch.no_grad(): lin.weight.mul_(-1)
    with packed_linears(model, enabled=False) as n: assert n == 0
