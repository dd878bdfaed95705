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
