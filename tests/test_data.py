"""descgen.data: product record, synthetic recipe, prepare/cache, splits, linearisation, delexicalisation,
tokenisation + collator, the real-data recipes (with the `data_dir` fixture) and the `descgen prepare` CLI."""
import json, subprocess, sys
from collections import Counter
from pathlib import Path
import pytest
from descgen.core import DescgenError
from descgen import data as D


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
