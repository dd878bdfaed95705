"""descgen.data: product record, synthetic recipe, prepare/cache, splits, linearisation, delexicalisation,
tokenisation + collator, the real-data recipes (with the `data_dir` fixture) and the `descgen prepare` CLI."""
import json, subprocess, sys
from collections import Counter
from pathlib import Path
import pytest
from descgen.core import DescgenError
from descgen import data as D
from descgen.recipes import _norm_desc


def toy_tokenizer(texts, seq2seq=False):
    from tokenizers import Tokenizer, models, trainers, pre_tokenizers, decoders, processors
    from transformers import PreTrainedTokenizerFast
    t = Tokenizer(models.BPE()); t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False); t.decoder = decoders.ByteLevel()
    sp = ['</s>', '<pad>'] if seq2seq else ['<|endoftext|>']
    t.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, special_tokens=sp, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if seq2seq:
        t.post_processor = processors.TemplateProcessing(single='$A </s>', special_tokens=[('</s>', t.token_to_id('</s>'))])
        return PreTrainedTokenizerFast(tokenizer_object=t, eos_token='</s>', pad_token='<pad>')
    return PreTrainedTokenizerFast(tokenizer_object=t, eos_token='<|endoftext|>')


@pytest.fixture(scope='module')
def syn_dir(tmp_path_factory):
    return D.prepare('synthetic', tmp_path_factory.mktemp('syn'), n=300, seed=0)


def test_product_roundtrip():
    p = D.Product('a', [('colour', 'red'), ('colour', 'blue')], ['Red and blue.'], category='apparel', meta={'x': 1})
    d = json.loads(json.dumps(p.to_dict()))
    assert d['attributes'] == [['colour', 'red'], ['colour', 'blue']]
    assert D.Product.from_dict(d) == p


def test_synthetic_deterministic_and_rich():
    a, b = D.synthetic_products(200, seed=3), D.synthetic_products(200, seed=3)
    assert [p.to_dict() for p in a] == [p.to_dict() for p in b]
    assert [p.references for p in D.synthetic_products(50, seed=4)] != [p.references for p in a[:50]]
    schema = D.synthetic_schema()
    assert len([k for k in schema if k != 'category']) >= 40
    assert {'apparel', 'footwear', 'electronics', 'home', 'beauty', 'sports'} <= {p.category for p in a}
    for p in a:
        for k, v in p.attributes:
            assert v in schema[k]
            assert v.lower() in p.references[0].lower()
    # optional attributes: products of one category differ in their key sets
    keysets = {frozenset(k for k, _ in p.attributes) for p in a if p.category == 'apparel'}
    assert len(keysets) > 5


def test_prepare_writes_everything_and_caches(syn_dir, tmp_path):
    for f in ['train.jsonl', 'validation.jsonl', 'test.jsonl', 'data_card.json', 'data_card.md', 'config.json']:
        assert (syn_dir/f).exists(), f
    card = D.load_card(syn_dir)
    assert card['rows_in'] == 300 == card['rows_out'] and card['rows_dropped'] == 0
    assert card['splits']['train']['products'] == 240
    sp = {s: D.load_split(syn_dir, s) for s in D.SPLITS}
    keys = {s: {D.input_key(p) for p in v} for s, v in sp.items()}
    assert not keys['train'] & keys['validation'] and not keys['train'] & keys['test'] and not keys['validation'] & keys['test']
    # default output is cached by the option hash; the same options reuse it
    d1 = D.prepare('synthetic', n=60); d2 = D.prepare('synthetic', n=60)
    assert d1 == d2 and d1.parent.name == 'data'
    assert D.prepare('synthetic', n=60, seed=1) != d1 and D.prepare('synthetic', n=61) != d1
    assert D.prepare('synthetic', n=60, n_refs=1) == d1  # a default given explicitly hashes the same


def test_linearize_formats_and_orders():
    a = [('name', 'Aromi'), ('eatType', 'coffee shop'), ('area', 'riverside')]
    assert D.linearize(a) == 'name : Aromi | eatType : coffee shop | area : riverside'
    assert D.linearize(a, 'nl') == 'Name is Aromi; eat type is coffee shop; area is riverside.'
    assert D.linearize(a, order='canonical').startswith('area : riverside')
    assert D.linearize(a, order='shuffle', seed=1) == D.linearize(a, order='shuffle', seed=1)
    assert D.make_prompt(D.Product('x', a, ['r'])).endswith('\nDescription:')
    with pytest.raises(DescgenError): D.linearize(a, order='random')


def test_delex_roundtrip_on_synthetic():
    ps = D.synthetic_products(100, seed=0)
    for p in ps:
        d = D.delexicalize(p, ('brand', 'model'))
        assert p.get('brand') not in ' '.join(d.references)
        assert [D.relexicalize(r, d.meta['delex']) for r in d.references] == p.references
        assert all(v.startswith('__') for k, v in d.attributes if k in ('brand', 'model'))


@pytest.mark.parametrize('kind', ['causal', 'seq2seq'])
def test_tokenize_and_collate(syn_dir, kind):
    ps = D.load_split(syn_dir, 'train')[:30]
    tok = toy_tokenizer([D.make_prompt(p) for p in ps] + [r for p in ps for r in p.references], seq2seq=kind == 'seq2seq')
    ds = D.tokenize_products(ps, tok, kind)
    assert len(ds) == 30 and set(ds.column_names) == {'input_ids', 'attention_mask', 'labels'}
    row = ds[0]
    if kind == 'causal':
        n = len(tok(D.make_prompt(ps[0]))['input_ids'])
        assert row['labels'][:n] == [-100] * n and row['labels'][n:] == row['input_ids'][n:]
        assert row['input_ids'][-1] == tok.eos_token_id
    else:
        assert tok.decode(row['labels'], skip_special_tokens=True).strip() == ps[0].references[0]
    batch = D.make_collator(tok, kind)([ds[i] for i in range(5)])
    lens = [len(ds[i]['input_ids']) for i in range(5)]
    assert batch['input_ids'].shape[1] == max(lens)  # dynamic padding: to the batch's longest row only
    i = lens.index(min(lens))
    if kind == 'causal':
        assert (batch['labels'][i, min(lens):] == -100).all()
    assert (batch['attention_mask'][i, min(lens):] == 0).all()


def test_all_references_rows():
    p = D.Product('m', [('a', 'b')], ['one.', 'two.', 'three.'])
    tok = toy_tokenizer(['a : b one two three Description'] * 3)
    assert len(D.tokenize_products([p], tok, 'causal')) == 3
    assert len(D.tokenize_products([p], tok, 'causal', all_references=False)) == 1


def test_e2e_counts(data_dir, tmp_path):
    d = D.prepare('e2e', tmp_path/'e2e')
    c = D.load_card(d)
    n = c['notes']
    assert (n['dev_mrs'], n['test_mrs'], n['test_references'], n['dev_references']) == (547, 630, 4693, 4672)
    assert (n['test_references_per_mr']['min'], n['test_references_per_mr']['max']) == (1, 45)
    assert (n['test_names'], n['test_names_unseen_in_dev']) == (18, 9)
    assert c['splits']['train']['products'] + c['splits']['validation']['products'] == 547
    assert c['splits']['test'] == {'products': 630, 'references': 4693, 'inputs': 630}
    assert c['rows_in'] == c['rows_out'] == 4672 + 4693
    train, val, test = (D.load_split(d, s) for s in D.SPLITS)
    assert not {D.input_key(p) for p in train} & {D.input_key(p) for p in val}
    assert all(p.source == 'e2e/test' for p in test) and all(p.source == 'e2e/dev' for p in train + val)
    p = test[0]
    assert p.attributes[0][0] == 'name' and p.meta['mr'].startswith('name[')
    assert D.make_prompt(p).startswith('name : ')
    # a different seed moves MRs between train and validation, never the test set
    d2 = D.prepare('e2e', tmp_path/'e2e2', seed=1)
    assert {q.id for q in D.load_split(d2, 'validation')} != {q.id for q in val}
    assert [q.to_dict() for q in D.load_split(d2, 'test')] == [q.to_dict() for q in test]


def test_e2e_delex(data_dir, tmp_path):
    d = D.prepare('e2e', tmp_path/'e2e', delex=True)
    plain = {p.id: p for p in D.load_split(D.prepare('e2e', tmp_path/'plain'), 'test')}
    c = D.load_card(d)
    assert c['delex'] == ['name', 'near']
    steps = {s['step']: s['count'] for s in c['steps']}
    assert steps['delex_replaced'] > 8000
    n_ok = n_left = 0
    for p in D.load_split(d, 'test'):
        assert p.get('name') == '__NAME__' and set(p.meta['delex']) >= {'__NAME__'}
        orig = plain[p.id]
        assert D.original_references(p) == orig.references
        for r, o in zip(p.references, orig.references):
            n_left += p.meta['delex']['__NAME__'] in r  # only where the name is glued to other letters ('The Cricketerss')
            n_ok += D.relexicalize(r, p.meta['delex']) == o
    assert n_left < 20, n_left
    assert n_ok > 0.9 * 4693  # the rest differ only in the case of a replaced value
    assert steps['delex_value_not_in_reference'] > 0  # paraphrased names are counted, not hidden


def test_myntra_card_counts_every_cleaning_action(data_dir, tmp_path):
    d = D.prepare('myntra', tmp_path/'my')
    c = D.load_card(d)
    steps = {s['step']: s for s in c['steps']}
    for k in ['nbsp', 'unicode_nfkc', 'html_tags', 'html_entities', 'whitespace', 'run_together', 'space_after_punct', 'boilerplate',
              'duplicate_exact', 'duplicate_description', 'too_short', 'too_long', 'empty_description']:
        assert k in steps, k
        assert f"| {k} |" in (d/'data_card.md').read_text()
    assert c['rows_in'] == 12491 and c['rows_in'] - c['rows_dropped'] == c['rows_out']
    assert steps['run_together']['count'] > 4000 and steps['nbsp']['count'] > 500
    assert steps['duplicate_exact']['count'] + steps['duplicate_description']['count'] > 1800
    assert steps['boilerplate']['count'] > 1000
    ex = steps['run_together']['examples'][0]
    assert ex['line'] == 2 and 'lock. One handle' in ex['after']
    ps = [p for s in D.SPLITS for p in D.load_split(d, s)]
    assert len(ps) == c['rows_out']
    assert not any('Warranty provided by' in p.references[0] for p in ps)
    assert len({_norm_desc(p.references[0]) for p in ps}) == len(ps)  # no duplicated descriptions left
    p = next(p for p in ps if p.id == 'myntra-10017413')
    assert ('brand', 'DKNY') in p.attributes and ('product_type', 'Trolley Bag') in p.attributes and p.category == 'accessories'
    assert 'TSA lock. One handle' in p.references[0]


def test_generic_loader_three_attribute_forms():
    from descgen.core import project_root
    s = project_root()/'data'/'samples'
    dirs = [D.prepare(s/'catalog_json.jsonl'), D.prepare(s/'catalog_kv.csv'), D.prepare(s/'catalog_json.parquet'),
            D.prepare(s/'catalog_columns.csv', mapping=s/'catalog_columns.mapping.json')]
    prods = [{p.id: p for sp in D.SPLITS for p in D.load_split(d, sp)} for d in dirs]
    assert all(len(p) == 20 for p in prods)
    assert prods[0]['sku-001'].attributes == prods[1]['sku-001'].attributes == prods[2]['sku-001'].attributes
    assert prods[3]['sku-001'].attributes == prods[0]['sku-001'].attributes  # via rename item_type -> product_type
    assert prods[3]['sku-001'].category == 'apparel'


def test_cli_prepare(tmp_path, capsys):
    from descgen.cli import main
    assert main(['prepare', '--dataset', 'synthetic', '--n', '50', '--out', str(tmp_path/'s'), '--delex']) == 0
    out = capsys.readouterr().out
    assert 'rows in 50' in out and str(tmp_path/'s') in out
    c = D.load_card(tmp_path/'s')
    assert c['delex'] == ['brand', 'model'] and c['options']['n'] == 50
    assert main(['prepare', '--dataset', 'synthetic', '--opt', 'nope=1']) == 2
    assert 'unknown option' in capsys.readouterr().err


def test_token_stats_in_card(syn_dir):
    ps = D.load_split(syn_dir, 'train')[:30]
    tok = toy_tokenizer([D.make_prompt(p) for p in ps] + [r for p in ps for r in p.references])
    st = D.add_token_stats(syn_dir, tok, 'causal', name='toy')
    c = D.load_card(syn_dir)
    assert c['token_lengths']['toy']['train']['rows'] == 240
    t = st['train']
    assert abs(t['total_tokens']['mean'] - t['source_tokens']['mean'] - t['target_tokens']['mean']) < 0.02  # causal: prompt + target
    assert t['target_tokens']['min'] >= 2 and t['source_truncated'] == 0
    assert '## Token lengths (toy)' in (syn_dir/'data_card.md').read_text()


@pytest.mark.parametrize('kind', ['causal', 'seq2seq'])
def test_batches_feed_a_model(syn_dir, kind):
    "A collated batch goes straight into a (tiny, randomly initialised) GPT-2 or T5 and gives a finite loss."
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration
    ps = D.load_split(syn_dir, 'train')[:8]
    tok = toy_tokenizer([D.make_prompt(p) for p in ps] + [r for p in ps for r in p.references], seq2seq=kind == 'seq2seq')
    if kind == 'causal':
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=512, n_embd=32, n_layer=1, n_head=2))
    else:
        model = T5ForConditionalGeneration(T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=2,
                                                    pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                                                    decoder_start_token_id=tok.pad_token_id))
    ds = D.tokenize_products(ps, tok, kind)
    batch = D.make_collator(tok, kind, model=model)([ds[i] for i in range(len(ds))])
    if kind == 'seq2seq': assert 'decoder_input_ids' in batch
    with torch.no_grad(): out = model(**batch)
    assert torch.isfinite(out.loss) and out.loss.item() > 0


@pytest.mark.parametrize('kind', ['causal', 'seq2seq'])
def test_limits_from_the_data_and_what_they_cut(syn_dir, kind):
    "Issue #16: limits None cut nothing and raise no length warning; choose_lengths: the longest prompt, p99 of targets."
    import io, logging
    ps = D.load_split(syn_dir, 'train')[:60]
    tok = toy_tokenizer([D.make_prompt(p) for p in ps] + [r for p in ps for r in p.references], seq2seq=kind == 'seq2seq')
    tok.model_max_length = 16   # shorter than every row: the tokenizer's own warning would fire
    cap = io.StringIO()
    handler = logging.StreamHandler(cap)
    logging.getLogger('transformers').addHandler(handler)
    try: free = D.tokenize_products(ps, tok, kind, max_source_len=None, max_target_len=None, cache=False)
    finally: logging.getLogger('transformers').removeHandler(handler)
    assert 'Token indices sequence length' not in cap.getvalue()
    assert D.truncation_counts(free) == {'rows': 60, 'source_truncated': 0, 'source_truncated_pct': 0.0,
                                         'target_truncated': 0, 'target_truncated_pct': 0.0}
    src, tgt = D.token_lengths(free, kind)
    assert min(src) > 16 and len(tgt) == 60
    ch = D.choose_lengths(src, tgt)
    assert ch['max_source_len'] == max(src) and ch['max_target_len'] == sorted(tgt)[59]   # p99 of 60 rows: the 60th
    assert D.choose_lengths(src, list(range(1, 201)))['max_target_len'] == 198           # of 200: the 198th
    cut = D.truncation_counts(D.tokenize_products(ps, tok, kind, max_source_len=ch['max_source_len'],
                                                  max_target_len=ch['max_target_len'], cache=False))
    assert cut['source_truncated'] == 0 and cut['target_truncated'] == sum(t > ch['max_target_len'] for t in tgt) <= 1
    # a causal LM with fewer positions than prompt + description: both fit, the prompt keeps its length up to half
    small = D.choose_lengths(src, tgt, context=max(src) + 10)
    assert small['max_source_len'] + small['max_target_len'] == max(src) + 10
    assert 'cut to fit' in small['how']['target'] and small['max_source_len'] == min(max(src), (max(src) + 10) // 2)
