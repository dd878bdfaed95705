"""Tests of descgen.models on tiny configurations: tokenizer round trip, save/load, cache, offline errors, CLI."""
import json, os, subprocess, sys, time
from pathlib import Path
import pytest

from descgen.core import DescgenError

TEXTS = [f'This {c} {it} is made of soft {m} and comes in a {f}. Pair it with sneakers for a casual look.'
         for c in ['black', 'navy blue', 'white', 'olive green', 'maroon', 'grey']
         for it, m in [('t-shirt', 'cotton'), ('shirt', 'linen'), ('kurta', 'rayon'), ('jeans', 'denim'), ('jacket', 'polyester')]
         for f in ['slim fit', 'regular fit', 'relaxed fit']]
TEXTS += ['纯棉圆领T恤，修身版型，柔软透气。', '夏季新款连衣裙，雪纺面料。', 'Summer sale 🔥 linen shirt ✨ breathable and light.']

ROUND_TRIP = ['Slim fit cotton T-shirt , 100% organic!', '  two  spaces,\ttab and\nnewline ',
              '纯棉圆领T恤，修身版型', '从未见过的汉字：龘靐齉', 'Sale 🔥👕 ✨ 🇮🇳 ❤️‍🔥 👩🏽‍💻', 'crème brûlée — Ünïcødé ß 𝔘']


@pytest.fixture(scope='module')
def tiny_gpt2(tmp_path_factory):
    "A tiny GPT-2 built once for the module, in its own cache."
    from descgen.models import build_base
    old = os.environ.get('DESCGEN_CACHE')
    os.environ['DESCGEN_CACHE'] = str(tmp_path_factory.getbasetemp()/'cache')  # the cache conftest gives every test
    try: return build_base(corpus=TEXTS, size='tiny', max_steps=6, progress=False)
    finally:
        if old is None: del os.environ['DESCGEN_CACHE']
        else: os.environ['DESCGEN_CACHE'] = old


@pytest.mark.parametrize('arch', ['gpt2', 't5'])
def test_tokenizer_round_trip(tmp_path, arch):
    from transformers import AutoTokenizer
    from descgen.models import train_tokenizer
    tok = train_tokenizer(TEXTS, vocab_size=500, arch=arch, out=tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)  # offline: HF_HUB_OFFLINE=1 (conftest)
    for t in (tok, loaded):
        assert (t.pad_token_id, t.bos_token_id, t.eos_token_id) == (0, 1, 2)
        for s in ROUND_TRIP:
            ids = t(s)['input_ids']
            assert t.unk_token_id not in ids
            assert t.decode(ids, skip_special_tokens=True) == s
            if arch == 'gpt2': assert t.decode(ids) == s        # GPT-2 style: no special tokens added
            else: assert ids[-1] == t.eos_token_id               # T5 style: </s> appended
    assert loaded('black kurta')['input_ids'] == tok('black kurta')['input_ids']
    assert len(tok.tokenize('This navy blue kurta')) < len('This navy blue kurta'.encode())  # merges were learnt


def test_saved_model_gives_identical_logits(tiny_gpt2, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer
    from descgen.core import count_parameters
    from descgen.models import load_model, model_config, pretrain_info
    path = tiny_gpt2
    assert {'config.json', 'model.safetensors', 'tokenizer.json', 'README.md', 'pretrain.json'} <= {p.name for p in path.iterdir()}
    assert not any(p.suffix in ('.bin', '.pt', '.pth') for p in path.iterdir())
    m1 = AutoModelForCausalLM.from_pretrained(path); t1 = AutoTokenizer.from_pretrained(path)
    m2, t2 = load_model(path)
    x = t1(['This grey kurta is made of soft rayon.', '纯棉 🔥'], return_tensors='pt', padding=True)
    with torch.no_grad(): assert torch.equal(m1(**x).logits, m2(**x).logits)
    info = pretrain_info(path)
    assert info['params'] == count_parameters(m2) and info['tokens_seen'] > 0 and info['steps'] == 6
    card = (path/'README.md').read_text()
    assert f"{info['params']:,}" in card and 'held-out perplexity' in card and 'tokens seen' in card
    # an in-memory model, saved and loaded again, for both architectures
    for arch, cls in [('gpt2', AutoModelForCausalLM), ('t5', AutoModelForSeq2SeqLM)]:
        torch.manual_seed(0)
        m = cls.from_config(model_config(arch, 'tiny', vocab_size=len(t1))).eval()
        m.save_pretrained(tmp_path/arch); t1.save_pretrained(tmp_path/arch)
        assert (tmp_path/arch/'model.safetensors').exists()
        m3, _ = load_model(tmp_path/arch)
        kw = dict(x) if arch == 'gpt2' else dict(x, decoder_input_ids=x['input_ids'][:, :4])
        with torch.no_grad(): assert torch.equal(m(**kw).logits, m3(**kw).logits)


def test_auto_classes_load_offline_in_a_fresh_process(tiny_gpt2):
    code = ('import sys; from transformers import AutoModelForCausalLM, AutoTokenizer; '
            'm = AutoModelForCausalLM.from_pretrained(sys.argv[1]); t = AutoTokenizer.from_pretrained(sys.argv[1]); '
            'print(type(m).__name__, t.decode(t("纯棉 🔥")["input_ids"]))')
    env = {**os.environ, 'HF_HUB_OFFLINE': '1'}
    r = subprocess.run([sys.executable, '-c', code, str(tiny_gpt2)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == 'GPT2LMHeadModel 纯棉 🔥'


def test_cache_is_reused(tiny_gpt2, monkeypatch, tmp_path):
    import descgen.models as M
    def no_training(*a, **k): raise AssertionError('trained again instead of using the cache')
    monkeypatch.setattr(M, '_pretrain', no_training)
    mtime = (tiny_gpt2/'model.safetensors').stat().st_mtime_ns
    assert M.build_base(corpus=TEXTS, size='tiny', max_steps=6, progress=False) == tiny_gpt2
    assert (tiny_gpt2/'model.safetensors').stat().st_mtime_ns == mtime
    out = M.build_base(corpus=TEXTS, size='tiny', max_steps=6, progress=False, out=tmp_path/'copy')  # copied, not trained
    assert (out/'model.safetensors').read_bytes() == (tiny_gpt2/'model.safetensors').read_bytes()
    with pytest.raises(AssertionError, match='trained again'):   # another seed is another model
        M.build_base(corpus=TEXTS, size='tiny', max_steps=6, progress=False, seed=1)
    assert not any(p.name.startswith('.tmp-') for p in tiny_gpt2.parent.iterdir())  # the failed run left nothing


def test_offline_hub_id_fails_fast_with_advice():
    code = ('import time; from descgen.models import load_model\nt = time.time()\n'
            'try: load_model("some-org/not-a-cached-model")\n'
            'except Exception as e: print(type(e).__name__, "|", e, "|", round(time.time() - t, 1))')
    env = {**os.environ, 'HF_HUB_OFFLINE': '1'}
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, timeout=120)
    kind, msg, secs = r.stdout.strip().split(' | ')
    assert kind == 'DescgenError'
    assert msg.startswith("'some-org/not-a-cached-model' is not in the local cache; pass a local path or build a base model with `descgen pretrain`")
    assert float(secs) < 20   # no network retries (huggingface_hub would retry for most of a minute)


def test_bad_names_and_settings(tmp_path):
    from descgen.models import load_model, build_base
    with pytest.raises(DescgenError, match='No such checkpoint folder'): load_model(tmp_path/'missing')
    (tmp_path/'empty').mkdir()
    with pytest.raises(DescgenError, match='no config.json'): load_model(tmp_path/'empty')
    with pytest.raises(DescgenError, match='Unknown size'): build_base(corpus=TEXTS, size='huge')
    with pytest.raises(DescgenError, match='Unknown architecture'): build_base(corpus=TEXTS, arch='bert')
    with pytest.raises(DescgenError, match='Unknown setting'): build_base(corpus=TEXTS, size='tiny', layers=2)
    with pytest.raises(DescgenError, match='Corpus file not found'): build_base(corpus=[str(tmp_path/'nope.txt')], size='tiny')
    bad = tmp_path/'bad.jsonl'; bad.write_text('{"text": "ok"}\n{"title": "no text"}\n')
    with pytest.raises(DescgenError, match=r'bad.jsonl, line 2'): build_base(corpus=[bad], size='tiny')


def test_t5_denoiser_and_synthetic_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv('DESCGEN_CACHE', str(tmp_path))
    from descgen.models import build_base, load_model, model_kind, pretrain_info, sample_unconditioned
    p = build_base('synthetic', size='tiny', arch='t5', max_steps=4, progress=False)
    info = pretrain_info(p)
    assert p.name.startswith('t5-tiny-') and info['kind'] == 'seq2seq' and info['corpus']['source'] == 'dataset:synthetic'
    assert info['corpus']['n_train'] > 1000 and info['corpus']['n_heldout'] > 100
    m, t = load_model(p)
    assert model_kind(m) == 'seq2seq' and t('kurta')['input_ids'][-1] == t.eos_token_id
    assert len(sample_unconditioned(m, t, n=2, max_new_tokens=8)) == 2


def test_cli_final_line(tmp_path):
    corpus = tmp_path/'c.txt'; corpus.write_text('\n'.join(TEXTS), encoding='utf-8')
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'DESCGEN_CACHE': str(tmp_path/'cache')}
    r = subprocess.run(['descgen', 'pretrain', '--corpus', str(corpus), '--size', 'tiny', '--max-steps', '4',
                        '--out', str(tmp_path/'m')], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith('params ') and 'tokens seen' in last and 'wall time' in last and 'held-out perplexity' in last
    assert (tmp_path/'m'/'model.safetensors').exists()
    r = subprocess.run(['descgen', 'pretrain', '--size', 'tiny', '--arch', 'bert'], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and 'invalid choice' in r.stderr
