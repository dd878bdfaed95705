import subprocess, sys

def test_python_dash_m_runs_the_cli():
    r = subprocess.run([sys.executable, '-m', 'descgen.cli', '--help'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and 'prepare' in r.stdout

def test_help_lists_commands():
    r = subprocess.run(['descgen', '--help'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    for cmd in ['prepare', 'pretrain', 'train', 'generate', 'evaluate', 'sweep', 'report']:
        assert cmd in r.stdout

def test_unknown_command_exits_2():
    r = subprocess.run(['descgen', 'frobnicate'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and 'unknown command' in r.stderr

def test_help_does_not_import_torch():
    code = 'import sys, descgen.cli; descgen.cli.main(["--help"]); print("torch" in sys.modules)'
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip().endswith('False')
