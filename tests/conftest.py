"""Shared pytest fixtures. Tests that need the real datasets take the `data_dir`
fixture: it skips, with the reason shown by `pytest -rs`, when they are absent."""
import os
from pathlib import Path
import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
os.environ.setdefault('MPLBACKEND', 'Agg')

@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    "Each test session gets its own cache, so tests never reuse a user's prepared data or models."
    monkeypatch.setenv('DESCGEN_CACHE', str(tmp_path_factory.getbasetemp()/'cache'))

@pytest.fixture
def data_dir() -> Path:
    from descgen.core import data_root
    p = data_root()
    if p is None:
        pytest.skip('real datasets not found: set DESCGEN_DATA (CI sets it to ../shared/datasets)')
    return p


def _tiny_base(out: Path, data_dir: Path, arch: str = 'gpt2') -> Path:
    "A random-initialised 2-layer GPT-2 or T5 with a BPE tokenizer trained on the prepared data (for training tests)."
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM
    from descgen.core import set_seed
    from descgen.data import load_split, make_prompt
    from descgen.models import model_config, train_tokenizer
    texts = [make_prompt(p) + ' ' + r for p in load_split(data_dir, 'train') for r in p.references]
    tok = train_tokenizer(texts, vocab_size=1000, arch=arch)
    cfg = model_config(arch, 'tiny', vocab_size=len(tok), d_model=64, n_layer=2, n_head=2, d_ff=128, dropout=0.1)
    set_seed(0)
    (AutoModelForSeq2SeqLM if arch == 't5' else AutoModelForCausalLM).from_config(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope='session')
def tiny_base():
    "The builder of tiny random bases shared by the training and resumption tests."
    return _tiny_base


@pytest.fixture(scope='module')
def one_thread():
    """One torch thread for a test module (`pytestmark = pytest.mark.usefixtures('one_thread')`): tiny models run
    faster on one thread, much faster when the machine is shared, and float results do not depend on the thread count;
    the previous count is restored afterwards."""
    import torch
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
