"""Tests of descgen.generate on tiny random models (fast, CPU): batched == one-at-a-time, determinism, n-best,
reranking, relexicalisation, adapters, catalog files and the CLI."""
import json, re, warnings
import pytest
import torch

from descgen.core import DescgenError, read_jsonl, write_jsonl
from descgen.data import Product, delexicalize, make_prompt, synthetic_products
from descgen.generate import (attribute_reranker, decode_candidates, encode_prompts, generate, generate_cli, generate_file,
                              generate_ids, generation_config, load_for_generation, pad_batch, read_catalog, rerank)
from descgen.decoding import _cut_at, _special_ids
from descgen.models import model_config, train_tokenizer


pytestmark = pytest.mark.usefixtures('one_thread')   # conftest: one torch thread for this module

def _tiny(arch, seed=0, **overrides):
    from transformers import GPT2LMHeadModel, T5ForConditionalGeneration
    texts = [make_prompt(p) + ' ' + p.references[0] for p in synthetic_products(200, seed=0)]
    tok = train_tokenizer(texts, vocab_size=500, arch=arch)
    cfg = model_config(arch, 'tiny', vocab_size=len(tok), n_layer=2, d_model=64, d_ff=128, **overrides)
    if arch == 'gpt2': cfg.initializer_range = 0.3   # large weights: output depends strongly on the input
    else: cfg.initializer_factor = 8.0
    torch.manual_seed(seed)
    return (GPT2LMHeadModel if arch == 'gpt2' else T5ForConditionalGeneration)(cfg).eval(), tok

@pytest.fixture(scope='module')
def gpt2(): return _tiny('gpt2')

@pytest.fixture(scope='module')
def t5(): return _tiny('t5')

@pytest.fixture(scope='module')
def products():
    ps = synthetic_products(20, seed=3)
    lens = {len(make_prompt(p)) for p in ps}
    assert len(lens) > 5, 'the test needs prompts of different lengths, so batches are padded'
    return ps

@pytest.mark.parametrize('batch_size', [4, 7])
def test_batched_greedy_equals_one_at_a_time_gpt2(gpt2, products, batch_size):
    model, tok = gpt2
    batched = generate(model, tok, products, max_new_tokens=20, batch_size=batch_size)
    single = [generate(model, tok, [p], max_new_tokens=20)[0] for p in products]
    assert batched == single
    assert len(set(batched)) > len(products) // 2   # not a degenerate model writing the same text everywhere

def test_batched_greedy_equals_one_at_a_time_t5(t5, products):
    model, tok = t5
    batched = generate(model, tok, products, max_new_tokens=20, batch_size=6)
    assert batched == [generate(model, tok, [p], max_new_tokens=20)[0] for p in products]
    assert len(set(batched)) > len(products) // 2

def test_batched_beam_search_equals_one_at_a_time(gpt2, products):
    model, tok = gpt2
    kw = dict(num_beams=3, num_return_sequences=2, max_new_tokens=10, no_repeat_ngram_size=2, length_penalty=0.8)
    assert generate(model, tok, products[:8], batch_size=8, **kw) == [generate(model, tok, [p], **kw)[0] for p in products[:8]]

def test_the_equality_test_catches_padding_mistakes(gpt2, products):
    "Right padding or positions counted from the padded first column change the greedy output: the tests above have teeth."
    model, tok = gpt2
    enc = encode_prompts(tok, [make_prompt(p) for p in products])
    eos, pad = _special_ids(model, tok)
    g = generation_config(max_new_tokens=12, eos_token_id=eos, pad_token_id=pad)
    ok = [x[0] for x in generate_ids(model, enc, g, batch_size=1)]
    for side, own_positions in [('right', False), ('left', True)]:
        ids, mask = pad_batch(enc, pad, side)
        kw = dict(position_ids=torch.arange(ids.shape[1]).expand_as(ids)) if own_positions else {}
        with torch.no_grad(): out = model.generate(input_ids=ids, attention_mask=mask, generation_config=g, **kw)
        bad = [_cut_at(r, eos) for r in out[:, ids.shape[1]:].tolist()]
        assert sum(a != b for a, b in zip(bad, ok)) > len(ok) // 2, side

def test_tokenizer_left_as_it_was(gpt2, products):
    model, tok = gpt2
    before = tok.padding_side
    out = generate(model, tok, products[:5], max_new_tokens=8, batch_size=5)
    assert tok.padding_side == before
    tok.padding_side = 'left' if before == 'right' else 'right'
    try: assert generate(model, tok, products[:5], max_new_tokens=8, batch_size=5) == out   # the caller's setting does not matter
    finally: tok.padding_side = before

def test_prompt_encoding_matches_training(gpt2, t5, products):
    from descgen.data import tokenize_products
    for (model, tok), kind in [(gpt2, 'causal'), (t5, 'seq2seq')]:
        rows = tokenize_products(products[:4], tok, kind=kind, cache=False)
        enc = encode_prompts(tok, [make_prompt(p) for p in products[:4]], kind)
        for row, e in zip(rows, enc):
            src = [i for i, l in zip(row['input_ids'], row['labels']) if l == -100] if kind == 'causal' else row['input_ids']
            assert e == src

def test_sampling_is_deterministic_with_a_seed(gpt2, products):
    model, tok = gpt2
    kw = dict(do_sample=True, temperature=0.9, top_p=0.9, max_new_tokens=12, batch_size=4)
    state = torch.random.get_rng_state()
    a = generate(model, tok, products[:8], seed=5, **kw)
    assert torch.equal(state, torch.random.get_rng_state())   # the caller's random state is untouched
    assert a == generate(model, tok, products[:8], seed=5, **kw)
    assert a != generate(model, tok, products[:8], seed=6, **kw)
    samples = generate(model, tok, products[:3], seed=5, num_return_sequences=4, **kw)
    assert [len(s) for s in samples] == [4, 4, 4] and all(len(set(s)) > 1 for s in samples)

def test_greedy_is_deterministic_for_a_model_in_training_mode(products):
    "A model straight from training has dropout on; generate switches it off for the call and restores the mode."
    model, tok = _tiny('gpt2', dropout=0.5)
    model.train()
    a = generate(model, tok, products[:6], max_new_tokens=10)
    assert model.training
    assert a == generate(model, tok, products[:6], max_new_tokens=10)

def test_nbest_order_and_rerankers(gpt2, products):
    model, tok = gpt2
    kw = dict(num_beams=4, num_return_sequences=3, max_new_tokens=10)
    nbest = generate(model, tok, products[:5], **kw)
    assert [len(c) for c in nbest] == [3] * 5
    assert [c[0] for c in nbest] == generate(model, tok, products[:5], num_beams=4, max_new_tokens=10)
    assert generate(model, tok, products[:5], reranker=lambda p, c: 2, **kw) == [c[2] for c in nbest]
    by_len = generate(model, tok, products[:5], reranker=lambda p, c: [len(x) for x in c], **kw)
    assert by_len == [max(c, key=len) for c in nbest]
    assert rerank(products[:1], [['a', 'b', 'c']], lambda p, c: [1, 5, 5]) == [1]   # ties go to the earlier (better) beam
    with pytest.raises(DescgenError, match='2 scores for 3'): rerank(products[:1], [['a', 'b', 'c']], lambda p, c: [1, 2])
    with pytest.raises(DescgenError, match='chose candidate 7'): rerank(products[:1], [['a', 'b', 'c']], lambda p, c: 7)

def test_attribute_reranker_prefers_the_faithful_candidate(products):
    from descgen.data import synthetic_schema
    p = products[0]
    other = next(q for q in products if q.get('brand') != p.get('brand'))
    faithful, invented = p.references[0], p.references[0].replace(p.get('brand'), other.get('brand'))
    assert rerank([p], [[invented, faithful]], attribute_reranker(synthetic_schema())) == [1]

def test_relexicalisation(gpt2, products):
    _, tok = gpt2
    p = products[0]
    d = delexicalize(p, keys=('brand',))
    ids = tok([' Made by __BRAND__.'], add_special_tokens=False)['input_ids']
    assert decode_candidates(tok, d, ids) == [f"Made by {p.get('brand')}."]
    assert decode_candidates(tok, p, ids) == ['Made by __BRAND__.']

def test_inputs_and_settings_errors(gpt2, products):
    model, tok = gpt2
    assert generate(model, tok, []) == []
    assert generate(model, tok, products[0].to_dict(), max_new_tokens=5) == generate(model, tok, [products[0]], max_new_tokens=5)
    with pytest.raises(DescgenError, match='num_beams >= 2'): generate(model, tok, products[:1], num_return_sequences=2)
    with pytest.raises(DescgenError, match='max_new_tokens'): generate(model, tok, products[:1], max_new_tokens=0)
    with pytest.raises(DescgenError, match='item 1'): generate(model, tok, [products[0], 42])
    long = Product('long', [('k', 'word ' * 400)], [])
    with pytest.raises(DescgenError, match="product 'long'.*attends to at most 256"): generate(model, tok, [long])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        out = generate(model, tok, products[:1], max_new_tokens=400)
    assert any('lowered' in str(x.message) for x in w) and isinstance(out[0], str)

def test_adapter_saved_and_loaded_on_its_base(gpt2, products, tmp_path):
    from peft import LoraConfig, get_peft_model
    model, tok = gpt2
    model.save_pretrained(tmp_path/'base'); tok.save_pretrained(tmp_path/'base')
    base_file = (tmp_path/'base'/'model.safetensors').read_bytes()
    base, _ = load_for_generation(tmp_path/'base', device='cpu')
    torch.manual_seed(1)
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=32, target_modules=['c_attn'], init_lora_weights=False,
                                           task_type='CAUSAL_LM'))
    lora.save_pretrained(tmp_path/'adapter')
    assert (tmp_path/'adapter'/'adapter_model.safetensors').exists()
    expected = generate(lora, tok, products[:6], max_new_tokens=10, batch_size=3)
    loaded, ltok = load_for_generation(tmp_path/'adapter', device='cpu')
    assert type(loaded).__name__ == 'PeftModelForCausalLM'
    assert generate(loaded, ltok, products[:6], max_new_tokens=10, batch_size=3) == expected
    assert expected != generate(model, tok, products[:6], max_new_tokens=10)
    assert [generate(loaded, ltok, [p], max_new_tokens=10)[0] for p in products[:6]] == expected   # batched == single, peft too
    assert (tmp_path/'base'/'model.safetensors').read_bytes() == base_file

def test_read_catalog_reports_bad_rows(tmp_path):
    (tmp_path/'c.csv').write_text('id,brand,colour\na1,Acme,red\na2,,\n,,\na4,Zeta,blue\n', encoding='utf-8')
    ps, probs = read_catalog(tmp_path/'c.csv')
    assert [p.id for p in ps] == ['a1', 'a4'] and ps[0].attributes == [('brand', 'Acme'), ('colour', 'red')]
    assert [(pr['line'], pr['id'], pr['reason']) for pr in probs] == [(3, 'a2', 'no attribute with a value'), (4, None, 'blank row')]
    with pytest.raises(DescgenError, match=r'c\.csv, line 3: no attribute with a value \(--strict'):
        read_catalog(tmp_path/'c.csv', strict=True)
    (tmp_path/'c.jsonl').write_text('{"id": "x", "attributes": "brand: Acme | type: mug"}\n{"id": "y", "attributes": [["a"]]}\n'
                                    '{"id": "z", "mr": "name[Bad"}\n', encoding='utf-8')
    ps, probs = read_catalog(tmp_path/'c.jsonl')
    assert [p.attributes for p in ps] == [[('brand', 'Acme'), ('type', 'mug')]]
    assert [pr['line'] for pr in probs] == [2, 3] and 'pairs' in probs[0]['reason']
    # file problems stop, as they stop prepare (issue #15, item 11): a broken line, a non-object, too many fields
    for name, text, msg in [('b.jsonl', '{"id": "x", "a": "1"}\n{broken\n', r'b\.jsonl, line 2, column 2: not valid JSON'),
                            ('o.jsonl', '{"id": "x", "a": "1"}\n[1, 2]\n', r'o\.jsonl, line 2: expected a JSON object'),
                            ('f.csv', 'id,brand\na1,Acme\na3,Zeta,extra\n', r'f\.csv, line 3: 3 fields where the header has 2')]:
        (tmp_path/name).write_text(text, encoding='utf-8')
        with pytest.raises(DescgenError, match=msg): read_catalog(tmp_path/name)
    (tmp_path/'d.jsonl').write_text('{"id": "x", "a": "1"}\n{"id": "x", "a": "2"}\n', encoding='utf-8')
    with pytest.raises(DescgenError, match=r"d\.jsonl, line 2: product ids are not unique: 'x' is also at line 1"):
        read_catalog(tmp_path/'d.jsonl')
    (tmp_path/'c.xml').write_text('<x/>')
    with pytest.raises(DescgenError, match='unsupported'): read_catalog(tmp_path/'c.xml')
    with pytest.raises(DescgenError, match='no such file'): read_catalog(tmp_path/'missing.csv')

def test_read_catalog_e2e_rows_merged(data_dir):
    ps, probs = read_catalog(data_dir/'e2e'/'testset_w_refs.csv')
    assert (len(ps), probs) == (630, [])    # 4,693 rows over 630 MRs (shared/datasets/README.md)
    assert sum(len(p.references) for p in ps) == 4693

def _catalog_error(f, tmp_path, capsys, *extra):
    "The exit status and stderr of `descgen generate` on catalog `f` (the model is never loaded: the file is read first)."
    from descgen.cli import main
    capsys.readouterr()
    rc = main(['generate', '--model', str(tmp_path/'m'), '--input', str(f), '--output', str(tmp_path/'o.jsonl'),
               '--no-progress', *extra])
    return rc, capsys.readouterr().err

def test_generate_stops_on_malformed_catalogs_as_prepare_does(gpt2, tmp_path, capsys):
    "Issue #15, items 1, 8, 11: file problems stop generate (exit 2, one line naming file and line), as they stop prepare."
    from descgen import data as D
    model, tok = gpt2
    model.save_pretrained(tmp_path/'m'); tok.save_pretrained(tmp_path/'m')
    rows = ''.join(f'p{i},Brand {i},A mug number {i}.\n' for i in range(100))
    quote = tmp_path/'quote.csv'   # a stray quote: before, 5 predictions for 100 products, exit 0
    quote.write_text('id,brand,description\np-1,Acme,"A mug with a stray quote.\n' + rows, encoding='utf-8')
    broken = tmp_path/'broken.jsonl'  # before: the line was skipped and the run went on
    broken.write_text('{"id": "a", "brand": "Acme"}\n{"id": "b", "brand": "Zeta"\n{"id": "c", "brand": "Orb"}\n')
    latin = tmp_path/'latin.csv'   # before: a UnicodeDecodeError traceback
    latin.write_bytes('id,brand,description\n1,Acme,A mug.\n2,Caf\xe9,A caf\xe9 mug.\n'.encode('latin-1'))
    obj = tmp_path/'obj.json'
    obj.write_text('{"id": "a", "brand": "Acme"}\n', encoding='utf-8')
    cases = [(quote, r'quote\.csv, line 2: one record spans \d+ lines'),
             (broken, r'broken\.jsonl, line 2, column \d+: not valid JSON'),
             (latin, r'latin\.csv, line 3, column 6: not valid utf-8 \(byte 0xe9\)'),
             (obj, r'obj\.json: expected a JSON list of records'),
             (tmp_path/'missing.jsonl', 'no such file')]
    for f, msg in cases:
        for strict in ([], ['--strict']):
            rc, err = _catalog_error(f, tmp_path, capsys, *strict)
            assert rc == 2 and re.search(msg, err) and 'Traceback' not in err, (f, err)
            assert not (tmp_path/'o.jsonl').exists()
    for f in (quote, broken, latin):   # the same message as prepare
        with pytest.raises(DescgenError) as e: D.prepare(f, tmp_path/'prep')
        assert str(e.value) in _catalog_error(f, tmp_path, capsys)[1]
    # an output path that is a folder, or under a file: refused before the model is loaded
    for out, msg in [(tmp_path, 'is a folder'), (latin/'p.jsonl', 'latin.csv is a file, not a folder')]:
        capsys.readouterr()
        from descgen.cli import main
        rc = main(['generate', '--model', str(tmp_path/'m'), '--input', str(latin), '--output', str(out), '--encoding', 'latin-1'])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and 'Traceback' not in err, err
    # --encoding reads it
    rc, _ = _catalog_error(latin, tmp_path, capsys, '--encoding', 'latin-1', '--max-new-tokens', '4')
    assert rc == 0 and [r['id'] for r in read_jsonl(tmp_path/'o.jsonl')] == ['1', '2']

def test_generate_rows_in_equal_predictions_plus_counted_skips(gpt2, tmp_path, capsys):
    "Every row of the file is a prediction, a counted skip (line, reason), a reference merged into an MR, or past --limit."
    model, tok = gpt2
    f = tmp_path/'e2e.csv'
    f.write_text('mr,ref\n"name[Mill], food[Thai]",The Mill serves Thai food.\n"name[Mill], food[Thai]",Thai at the Mill.\n'
                 ',\n"name[Oops",x\n"name[Orb], food[Pie]",Pie at the Orb.\n"name[Cup], food[Tea]",Tea at the Cup.\n',
                 encoding='utf-8')
    for limit in (None, 1):
        s = generate_file(None, f, tmp_path/'p.jsonl', model=model, tokenizer=tok, max_new_tokens=4, limit=limit,
                          progress=False)
        n_out = len(read_jsonl(tmp_path/'p.jsonl'))
        assert s['inputs_read'] == 6 == n_out + s['skipped'] + s['rows_merged'] + s['not_described_past_limit']
        assert (n_out, s['skipped'], s['rows_merged']) == (3 if limit is None else 1, 2, 1)
        assert [(p['line'], p['reason'][:9]) for p in s['problems']] == [(4, 'blank row'), (5, 'mr: canno')]
    with pytest.raises(DescgenError, match=r'e2e\.csv, line 4: blank row \(--strict'):
        generate_file(None, f, tmp_path/'q.jsonl', model=model, tokenizer=tok, strict=True, progress=False)
    assert not (tmp_path/'q.jsonl').exists()

def test_generate_file_and_cli(gpt2, products, tmp_path):
    from descgen.cli import main
    model, tok = gpt2
    model.save_pretrained(tmp_path/'m'); tok.save_pretrained(tmp_path/'m')
    rows = [p.to_dict() for p in products[:5]] + [{'id': 'bad', 'attributes': []}, {'id': 'long', 'k': 'word ' * 400}]
    write_jsonl(tmp_path/'in.jsonl', rows)
    s = generate_file(tmp_path/'m', tmp_path/'in.jsonl', tmp_path/'out'/'preds.jsonl', num_beams=3, num_return_sequences=2,
                      max_new_tokens=8, batch_size=2, progress=False)
    out = read_jsonl(tmp_path/'out'/'preds.jsonl')
    assert [r['id'] for r in out] == [p.id for p in products[:5]]
    assert [r['candidates'] for r in out] == generate(model, tok, products[:5], num_beams=3, num_return_sequences=2, max_new_tokens=8)
    assert all(r['prediction'] == r['candidates'][0] and r['prompt'] == make_prompt(p) and r['references'] == p.references
               for r, p in zip(out, products))
    assert (s['generated'], s['skipped'], s['inputs_read']) == (5, 2, 7)
    meta = json.loads((tmp_path/'out'/'preds.meta.json').read_text())
    assert {pr['id'] for pr in meta['problems']} == {'bad', 'long'} and meta['decoding']['num_beams'] == 3
    # the command line, through the dispatcher; --strict makes skipped rows an error (exit 2)
    args = ['generate', '--model', str(tmp_path/'m'), '--input', str(tmp_path/'in.jsonl'), '--output', str(tmp_path/'cli.jsonl'),
            '--max-new-tokens', '8', '--no-progress']
    assert main(args) == 0
    assert [r['prediction'] for r in read_jsonl(tmp_path/'cli.jsonl')] == generate(model, tok, products[:5], max_new_tokens=8)
    assert main(args + ['--strict']) == 2
    assert main(args + ['--num-return-sequences', '2']) == 2   # greedy cannot give 2 candidates: a clear error, not a traceback
    assert main(args[:4] + ['missing.csv'] + args[5:]) == 2
    (tmp_path/'prepared').mkdir(); write_jsonl(tmp_path/'prepared'/'validation.jsonl', [p.to_dict() for p in products[:2]])
    assert main(args[:4] + [str(tmp_path/'prepared'), '--split', 'validation'] + args[5:]) == 0   # a prepared dataset folder
    assert [r['id'] for r in read_jsonl(tmp_path/'cli.jsonl')] == [p.id for p in products[:2]]
    assert main(args[:4] + [str(tmp_path/'prepared')] + args[5:]) == 2   # no test.jsonl there

def _greedy_by_forward(model, tok, prompt_ids, n):
    "Greedy decoding with the model's own forward pass (the training path), no cache, no generate."
    ids, out = torch.tensor([prompt_ids]), []
    with torch.no_grad():
        for _ in range(n):
            t = int(model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, -1].argmax())
            if t == tok.eos_token_id: break
            out.append(t); ids = torch.cat([ids, torch.tensor([[t]])], 1)
    return out

def test_prefix_tuning_generates_what_the_adapter_was_trained_on(products):
    """Prefix tuning: batched generation (with padding) equals greedy decoding with the adapter's forward pass.
    PeftModel.generate with transformers 5 drops the first num_virtual_tokens prompt tokens; generate_ids avoids it."""
    from peft import PrefixTuningConfig, get_peft_model
    from descgen.generate import encode_prompts, generation_config, generate_ids
    from descgen.data import make_prompt
    model, tok = _tiny('gpt2')
    torch.manual_seed(0)
    pm = get_peft_model(model, PrefixTuningConfig(task_type='CAUSAL_LM', num_virtual_tokens=8))
    with torch.no_grad():
        for p in pm.prompt_encoder.parameters(): p.normal_(0, 1.0)   # a prefix that changes the output
    pm.eval()
    enc = encode_prompts(tok, [make_prompt(p) for p in products[:6]], 'causal')
    assert len(set(map(len, enc))) > 1   # prompts of different lengths: the batch is padded
    g = generation_config(max_new_tokens=10, eos_token_id=[tok.eos_token_id], pad_token_id=tok.pad_token_id)
    got = generate_ids(pm, enc, g, batch_size=6)
    assert [x[0] for x in got] == [_greedy_by_forward(pm, tok, e, 10) for e in enc]
    batched = generate(pm, tok, products[:12], max_new_tokens=12, batch_size=6)
    assert batched == [generate(pm, tok, [p], max_new_tokens=12)[0] for p in products[:12]]
    assert batched != generate(pm.get_base_model(), tok, products[:12], max_new_tokens=12)
    # beam search and several samples per product run too (the prefix cache is copied per beam / sample)
    assert len(generate(pm, tok, products[:3], num_beams=3, num_return_sequences=2, max_new_tokens=6)[0]) == 2
    assert len(generate(pm, tok, products[:3], do_sample=True, num_return_sequences=3, max_new_tokens=6)[0]) == 3

def test_generate_file_delexicalises_like_the_training_data(gpt2, products, tmp_path):
    model, tok = gpt2
    model.save_pretrained(tmp_path/'m'); tok.save_pretrained(tmp_path/'m')
    write_jsonl(tmp_path/'in.jsonl', [p.to_dict() for p in products[:3]])
    s = generate_file(tmp_path/'m', tmp_path/'in.jsonl', tmp_path/'p.jsonl', delex=['brand'], fmt='nl', max_new_tokens=6, progress=False)
    rows = read_jsonl(tmp_path/'p.jsonl')
    assert (s['fmt'], s['delex']) == ('nl', ['brand'])
    for r, p in zip(rows, products):
        assert r['prompt'] == make_prompt(delexicalize(p, keys=['brand']), fmt='nl') and '__BRAND__' in r['prompt']
        assert r['references'] == p.references and r['attributes'] == [list(a) for a in p.attributes]   # the originals

def test_run_settings_follow_the_run_directory(tmp_path):
    from descgen.generate import run_settings
    run = tmp_path/'run'; (run/'model').mkdir(parents=True)
    (run/'config.json').write_text(json.dumps({'train': {'fmt': 'nl', 'method': 'lora'}}))
    (run/'data_card.json').write_text(json.dumps({'delex': ['brand', 'model']}))
    assert run_settings(run) == {'fmt': 'nl', 'delex': ['brand', 'model']}
    assert run_settings(tmp_path) == {}

def test_help_is_quick_and_lists_the_decoding_options():
    import subprocess, sys
    code = ('import sys, contextlib, io\nfrom descgen.cli import main\nout = io.StringIO()\n'
            'with contextlib.redirect_stdout(out):\n    try: main(["generate", "--help"])\n    except SystemExit: pass\n'
            'h = " ".join(out.getvalue().split())\n'
            'print("torch" in sys.modules, "--num_beams" in h and "--rerank" in h and "stops with file, line and field" in h '
            'and "--strict makes it an error" in h)')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert r.stdout.split()[-2:] == ['False', 'True'], r.stderr

def test_generate_with_the_mapping_prepare_took(gpt2, tmp_path):
    "`--mapping`: the raw catalog a model was trained on is described as prepare read it (issue #16)."
    from descgen.cli import main
    from descgen.data import prepare, load_split
    model, tok = gpt2
    model.save_pretrained(tmp_path/'m'); tok.save_pretrained(tmp_path/'m')
    lines = ['sku,item_type,colour,text,image_url']
    for i, c in enumerate(['red', 'blue', 'green', 'black', 'white', 'grey', 'pink', 'navy', 'teal', 'olive']):
        lines.append(f'k{i},shirt,{c},A {c} shirt number {i}.,https://cdn.example/{i}.jpg')
    (tmp_path/'raw.csv').write_text('\n'.join(lines) + '\n', encoding='utf-8')
    m = {'id': 'sku', 'description': 'text', 'attributes': ['item_type', 'colour'], 'rename': {'item_type': 'type'}}
    (tmp_path/'m.json').write_text(json.dumps(m))
    d = prepare(tmp_path/'raw.csv', tmp_path/'prep', mapping=m)
    trained = {p.id: p.attributes for s in ('train', 'validation', 'test') for p in load_split(d, s)}
    ps, probs = read_catalog(tmp_path/'raw.csv', mapping=tmp_path/'m.json')
    assert probs == [] and {p.id: p.attributes for p in ps} == trained   # the same attributes as in training
    assert ps[0].references == ['A red shirt number 0.']
    args = ['generate', '--model', str(tmp_path/'m'), '--input', str(tmp_path/'raw.csv'), '--output',
            str(tmp_path/'p.jsonl'), '--max-new-tokens', '4', '--no-progress', '--mapping', str(tmp_path/'m.json')]
    assert main(args) == 0
    out = read_jsonl(tmp_path/'p.jsonl')
    assert [r['id'] for r in out] == [f'k{i}' for i in range(10)]
    assert all('text' not in r['prompt'] and 'image_url' not in r['prompt'] for r in out)
    assert out[0]['prompt'] == make_prompt(ps[0]) and out[0]['references'] == ['A red shirt number 0.']
    unmapped = read_catalog(tmp_path/'raw.csv')[0][0]
    assert 'image_url' in dict(unmapped.attributes)   # without it every column is an attribute
