"""JupyterLab in the environment the README builds: a headless server on 127.0.0.1 (free port, token),
`nbs/` listed and a notebook opened through the REST API, the project's `descgen` kernel (registered
by the Makefile's venv rule) started by the server and one cell run over the kernel's websocket channel.
Only loopback traffic; every wait is bounded; the server is shut down (and killed if it will not)."""
import json, os, secrets, shutil, socket, subprocess, sys, time, urllib.error, urllib.request, uuid
from pathlib import Path
import pytest

REPO = Path(__file__).resolve().parents[1]
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never via $http_proxy

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

class _Server:
    def __init__(self, port, token): self.base, self.token = f'http://127.0.0.1:{port}', token
    def api(self, method, path, body=None, timeout=10):
        req = urllib.request.Request(self.base + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={'Authorization': f'token {self.token}', 'Content-Type': 'application/json'})
        with DIRECT.open(req, timeout=timeout) as r:
            data = r.read()
            return r.status, (json.loads(data) if data else None)

@pytest.fixture
def lab_server(tmp_path):
    "`jupyter lab` (so the lab extension itself must load) on a free loopback port, rooted at the repository."
    pytest.importorskip('jupyterlab', reason='jupyterlab is not installed: run `make venv` (settings.ini dev_requirements)')
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path/'config'), JUPYTER_RUNTIME_DIR=str(tmp_path/'runtime'),
               JUPYTER_DATA_DIR=str(tmp_path/'data'),  # user-level kernels hidden: the venv's own must be found
               JUPYTER_PLATFORM_DIRS='1', PYTHONUNBUFFERED='1')
    log = open(tmp_path/'server.log', 'w')
    cmd = [sys.executable, '-m', 'jupyter', 'lab', '--no-browser', '--ServerApp.ip=127.0.0.1',
           f'--ServerApp.port={port}', '--ServerApp.port_retries=0', f'--IdentityProvider.token={token}',
           f'--ServerApp.root_dir={REPO}', '--ServerApp.allow_remote_access=False',
           '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate', '--LabApp.extension_manager=readonly']
    if hasattr(os, 'geteuid') and os.geteuid() == 0: cmd.append('--allow-root')  # CI containers run as root
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    srv = _Server(port, token)
    srv.log = tmp_path/'server.log'
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f'jupyter lab exited with {proc.returncode}:\n{srv.log.read_text()[-3000:]}')
            try:
                if srv.api('GET', '/api/status', timeout=2)[0] == 200: break
            except (urllib.error.URLError, ConnectionError, OSError): pass
            if time.monotonic() > deadline: pytest.fail(f'jupyter lab not up after 30 s:\n{srv.log.read_text()[-3000:]}')
            time.sleep(0.2)
        yield srv
        try: srv.api('POST', '/api/shutdown', timeout=5)
        except Exception: pass
        proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try: proc.wait(10)
            except subprocess.TimeoutExpired: proc.kill(); proc.wait()
        log.close()

def _execute(srv, kernel_id, code, timeout=60):
    "Run `code` on the server's kernel over its websocket channel; returns (stdout, reply content)."
    import websocket  # websocket-client, a dependency of jupyter_server
    ws = websocket.create_connection(f'ws://127.0.0.1:{srv.base.rsplit(":", 1)[1]}/api/kernels/{kernel_id}/channels',
                                     header=[f'Authorization: token {srv.token}'], timeout=timeout)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({'header': {'msg_id': msg_id, 'username': 'test', 'session': uuid.uuid4().hex,
                                       'msg_type': 'execute_request', 'version': '5.3', 'date': ''},
                            'parent_header': {}, 'metadata': {}, 'channel': 'shell', 'buffers': [],
                            'content': {'code': code, 'silent': False, 'store_history': False,
                                        'user_expressions': {}, 'allow_stdin': False, 'stop_on_error': True}}))
        out, reply, idle, deadline = [], None, False, time.monotonic() + timeout
        while not (reply and idle):
            if time.monotonic() > deadline: raise TimeoutError(f'no reply in {timeout} s; stdout so far: {out}')
            msg = json.loads(ws.recv())
            if msg.get('parent_header', {}).get('msg_id') != msg_id: continue
            t = msg['msg_type']
            if t == 'stream': out.append(msg['content']['text'])
            elif t == 'error': out.append('\n'.join(msg['content']['traceback']))
            elif t == 'execute_reply': reply = msg['content']
            elif t == 'status' and msg['content']['execution_state'] == 'idle': idle = True
        return ''.join(out), reply
    finally: ws.close()

def test_lab_lists_nbs_and_runs_descgen_kernel(lab_server):
    srv, t0 = lab_server, time.monotonic()
    # nbs/ through the contents API, and one notebook opened
    st, nbs = srv.api('GET', '/api/contents/nbs?content=1')
    assert st == 200 and nbs['type'] == 'directory'
    listed = {c['name'] for c in nbs['content'] if c['type'] == 'notebook'}
    assert listed == {p.name for p in (REPO/'nbs').glob('*.ipynb')}, listed
    st, nb = srv.api('GET', '/api/contents/nbs/index.ipynb?content=1')
    assert st == 200 and nb['type'] == 'notebook' and nb['content']['cells']
    # the project's kernel, registered by the venv rule, seen by the server
    st, specs = srv.api('GET', '/api/kernelspecs')
    assert 'descgen' in specs['kernelspecs'], (
        f"no `descgen` kernel (found {sorted(specs['kernelspecs'])}): run `make venv`, which registers it with "
        "`python -m ipykernel install --sys-prefix --name descgen`")
    assert specs['kernelspecs']['descgen']['spec']['display_name'] == 'descgen (.venv)'
    st, kernel = srv.api('POST', '/api/kernels', {'name': 'descgen', 'path': 'nbs'})
    assert st == 201 and kernel['name'] == 'descgen'
    try:
        out, reply = _execute(srv, kernel['id'], 'import sys, descgen\nprint("descgen", descgen.__version__, sys.prefix)')
        assert reply['status'] == 'ok', out
        import descgen
        assert out.split() == ['descgen', descgen.__version__, sys.prefix], out
    finally:
        st, _ = srv.api('DELETE', f"/api/kernels/{kernel['id']}")
    assert st == 204
    assert srv.api('GET', '/api/kernels')[1] == []
    print(f'lab check: {time.monotonic() - t0:.1f} s after the server was up')
