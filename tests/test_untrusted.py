"""Untrusted model folders (issue #15, item 2): code in a folder runs only when the caller passes trust_remote_code /
--trust-remote-code, never because the folder's config.json or a run's recorded settings ask for it."""
import json, os, subprocess, sys
from pathlib import Path
import pytest
from descgen.core import DescgenError, write_jsonl
from descgen.generate import generate_file, load_for_generation


def untrusted(d: Path, marker: Path, run: bool = False) -> Path:
    "A checkpoint folder (or a run folder around one) that asks for remote code; importing its Python writes `marker`."
    m = d/'model' if run else d
    m.mkdir(parents=True, exist_ok=True)
    (m/'config.json').write_text(json.dumps({
        'model_type': 'evil_net', 'trust_remote_code': True,
        'auto_map': {'AutoConfig': 'evil.EvilConfig', 'AutoModelForCausalLM': 'evil.EvilModel',
                     'AutoTokenizer': ['evil.EvilTokenizer', None]}}))
    (m/'evil.py').write_text(f'import pathlib\npathlib.Path({str(marker)!r}).write_text("ran")\n'
                             'from transformers import PretrainedConfig\n'
                             'class EvilConfig(PretrainedConfig): model_type = "evil_net"\n')
    (m/'tokenizer_config.json').write_text(json.dumps({'auto_map': {'AutoTokenizer': ['evil.EvilTokenizer', None]},
                                                       'trust_remote_code': True}))
    if run:  # a descgen run folder whose recorded training settings say trust_remote_code
        (d/'config.json').write_text(json.dumps({'train': {'method': 'full', 'fmt': 'kv', 'trust_remote_code': True},
                                                 'base_model': str(m)}))
    return d


def catalog(tmp_path: Path) -> Path:
    f = tmp_path/'cat.jsonl'
    write_jsonl(f, [{'id': 'a', 'brand': 'Acme', 'colour': 'red'}])
    return f


@pytest.mark.parametrize('run', [False, True], ids=['checkpoint', 'run_folder'])
def test_python_api_does_not_run_folder_code(tmp_path, run):
    d, marker = untrusted(tmp_path/'m', tmp_path/'MARKER', run), tmp_path/'MARKER'
    with pytest.raises(DescgenError, match=r'(needs|asks to run) its own Python code.*--trust-remote-code'):
        load_for_generation(d, device='cpu')
    with pytest.raises(DescgenError, match='--trust-remote-code'):
        generate_file(d, catalog(tmp_path), tmp_path/'p.jsonl', progress=False, device='cpu')
    assert not marker.exists() and not (tmp_path/'p.jsonl').exists()


@pytest.mark.parametrize('run', [False, True], ids=['checkpoint', 'run_folder'])
def test_cli_does_not_run_folder_code(tmp_path, run, capsys):
    from descgen.cli import main
    d, marker = untrusted(tmp_path/'m', tmp_path/'MARKER', run), tmp_path/'MARKER'
    rc = main(['generate', '--model', str(d), '--input', str(catalog(tmp_path)), '--output', str(tmp_path/'p.jsonl'),
               '--no-progress', '--device', 'cpu'])
    err = capsys.readouterr().err
    assert rc == 2 and '--trust-remote-code' in err and 'Traceback' not in err
    assert not marker.exists()


def test_load_model_ignores_the_folders_own_trust_setting(tmp_path):
    from descgen.loading import load_model
    d, marker = untrusted(tmp_path/'m', tmp_path/'MARKER'), tmp_path/'MARKER'
    with pytest.raises(DescgenError, match='runs only when the caller passes trust_remote_code=True'):
        load_model(d)
    assert not marker.exists()


def test_the_folder_code_does_run_when_the_caller_trusts_it(tmp_path):
    "The fixture is real: with --trust-remote-code the folder's Python is imported (and writes the marker)."
    d, marker = untrusted(tmp_path/'m', tmp_path/'MARKER'), tmp_path/'MARKER'
    code = ('from descgen.cli import main\nimport sys\n'
            f'sys.exit(main(["generate", "--model", {str(d)!r}, "--input", {str(catalog(tmp_path))!r}, "--output", '
            f'{str(tmp_path/"p.jsonl")!r}, "--no-progress", "--device", "cpu", "--trust-remote-code"]))')
    env = {**os.environ, 'HF_MODULES_CACHE': str(tmp_path/'hf_modules'), 'HF_HUB_OFFLINE': '1'}
    subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=300)
    assert marker.exists()   # (the load fails after that: the folder holds no real model)


def test_load_trained_and_merge_adapter_ignore_the_runs_recorded_trust_setting(tmp_path):
    "`descgen.train.load_trained` (used by the experiment and merge_adapter) follows the caller's flag only."
    from descgen.train import load_trained
    d, marker = untrusted(tmp_path/'m', tmp_path/'MARKER', run=True), tmp_path/'MARKER'
    with pytest.raises(DescgenError, match='runs only when the caller passes trust_remote_code=True'):
        load_trained(d)
    assert not marker.exists()
