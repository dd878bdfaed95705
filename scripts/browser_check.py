#!/usr/bin/env python
"""Open an HTML page in headless chromium (Debian's package) and report what a reader would get.

    python scripts/browser_check.py reports/demo/report.html [--screenshot reports/demo/screenshot.png]

Chromium is driven through the DevTools protocol (a websocket on 127.0.0.1; `websocket-client`, already
a dependency of jupyter_server). The check collects every request the page makes (Network domain), the
tables and images after the load event (an image counts as loaded when naturalWidth > 0) and JS errors,
and exits 1 when a table or image is missing/broken or anything outside the file itself and `data:` URLs
was requested. Chromium runs with a dead proxy and every host name unresolvable, so even a bad page
cannot reach the network. `check_page` is imported by tests/test_browser.py."""
import argparse, base64, json, os, shutil, signal, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

CANDIDATES = ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable')

def find_chromium():
    "Path of a chromium binary ($CHROMIUM overrides), or None."
    if os.environ.get('CHROMIUM'): return shutil.which(os.environ['CHROMIUM'])
    for name in CANDIDATES:
        if p := shutil.which(name): return p
    return None

_JS = r"""(() => {
  const vis = e => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
  return JSON.stringify({
    title: document.title,
    tables: [...document.querySelectorAll('table')].map(t => ({
      headers: [...t.querySelectorAll('thead th')].map(th => th.textContent.trim()),
      rows: t.querySelectorAll('tbody tr').length, visible: vis(t)})),
    images: [...document.images].map(i => ({
      src: i.getAttribute('src').slice(0, 80), alt: i.alt, complete: i.complete,
      naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight, visible: vis(i)})),
    scrollHeight: document.documentElement.scrollHeight});
})()"""

class _CDP:
    "Minimal DevTools-protocol client over one page target's websocket."
    def __init__(self, ws_url, timeout):
        import websocket  # websocket-client
        self.ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        self.n, self.events = 0, []
    def send(self, method, **params):
        self.n += 1; i = self.n
        self.ws.send(json.dumps({'id': i, 'method': method, 'params': params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get('id') == i:
                if 'error' in msg: raise RuntimeError(f'{method}: {msg["error"]}')
                return msg.get('result', {})
            if 'method' in msg: self.events.append(msg)
    def wait_event(self, method, deadline):
        while time.monotonic() < deadline:
            for e in self.events:
                if e['method'] == method: return e
            self.ws.settimeout(max(0.05, deadline - time.monotonic()))
            try: msg = json.loads(self.ws.recv())
            except Exception: break
            if 'method' in msg: self.events.append(msg)
        raise TimeoutError(f'no {method} before the deadline')
    def drain(self, seconds):
        "Collect events for `seconds` more (late requests: fonts, lazy images)."
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.ws.settimeout(left)
            try: msg = json.loads(self.ws.recv())
            except Exception: break
            if 'method' in msg: self.events.append(msg)
    def close(self): self.ws.close()

def _stop_group(proc):
    "Terminate a process and every process of its session, then wait for it (kill after 10 s)."
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try: os.killpg(proc.pid, sig)
        except ProcessLookupError: return
        try:
            proc.wait(10)
            return
        except subprocess.TimeoutExpired: continue


def check_page(html, screenshot=None, width=1280, height=900, timeout=30, chromium=None):
    """Load `html` (a local file) in headless chromium; returns a dict with `requests` (every URL the page
    asked for), `offending` (those other than the file itself and data:/about:/blob: URLs), `failed`,
    `errors` (JS exceptions, console errors), `tables`, `images`, `broken_images`, `seconds`.
    With `screenshot`, writes a PNG of the first screen (width x height CSS pixels)."""
    t0 = time.monotonic()
    chromium = chromium or find_chromium()
    if chromium is None: raise FileNotFoundError('chromium not found (apt-get install chromium)')
    html = Path(html).resolve()
    url = html.as_uri()
    # ignore_cleanup_errors: a chromium helper process may still be writing its profile while the folder goes
    with tempfile.TemporaryDirectory(prefix='descgen-chromium-', ignore_cleanup_errors=True) as prof:
        cmd = [chromium, '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
               '--remote-debugging-address=127.0.0.1', '--remote-debugging-port=0', f'--user-data-dir={prof}',
               '--no-first-run', '--no-default-browser-check', '--disable-background-networking',
               '--disable-component-update', '--disable-sync', '--disable-extensions', '--mute-audio',
               '--hide-scrollbars', '--proxy-server=http://127.0.0.1:9', '--proxy-bypass-list=<-loopback>',
               '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
               f'--window-size={width},{height}', 'about:blank']
        err = open(Path(prof)/'chromium.log', 'wb')  # a file, not a pipe: chromium's logging cannot block it
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        cdp = None
        try:
            deadline = time.monotonic() + timeout
            port_file = Path(prof)/'DevToolsActivePort'
            while not (port_file.exists() and port_file.read_text().count('\n') >= 1):
                if proc.poll() is not None:
                    raise RuntimeError(f'chromium exited ({proc.returncode}): '
                                       f'{(Path(prof)/"chromium.log").read_text(errors="replace")[-2000:]}')
                if time.monotonic() > deadline: raise TimeoutError('chromium did not open its DevTools port')
                time.sleep(0.05)
            port = int(port_file.read_text().split()[0])
            direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never via $http_proxy
            with direct.open(f'http://127.0.0.1:{port}/json/list', timeout=10) as r:
                page = next(t for t in json.load(r) if t['type'] == 'page')
            cdp = _CDP(page['webSocketDebuggerUrl'], timeout)
            for dom in ('Page', 'Network', 'Runtime', 'Log'): cdp.send(f'{dom}.enable')
            cdp.send('Emulation.setDeviceMetricsOverride', width=width, height=height, deviceScaleFactor=1, mobile=False)
            cdp.events.clear()
            nav = cdp.send('Page.navigate', url=url)
            if nav.get('errorText'): raise RuntimeError(f'navigation failed: {nav["errorText"]}')
            cdp.wait_event('Page.loadEventFired', deadline)
            cdp.drain(0.5)
            info = json.loads(cdp.send('Runtime.evaluate', expression=_JS, returnByValue=True)['result']['value'])
            if screenshot:
                shot = cdp.send('Page.captureScreenshot', format='png', captureBeyondViewport=False)
                Path(screenshot).write_bytes(base64.b64decode(shot['data']))
        finally:
            if cdp: cdp.close()
            _stop_group(proc)   # chromium and its helper processes (its own session: start_new_session)
            err.close()
    ev = cdp.events
    requests = [e['params']['request']['url'] for e in ev if e['method'] == 'Network.requestWillBeSent']
    ok = lambda u: u == url or u.split(':', 1)[0] in ('data', 'about', 'blob')
    failed = [e['params'].get('errorText') for e in ev if e['method'] == 'Network.loadingFailed']
    errors = [e['params']['exceptionDetails'].get('text', '') + ' ' +
              str(e['params']['exceptionDetails'].get('exception', {}).get('description', ''))
              for e in ev if e['method'] == 'Runtime.exceptionThrown']
    errors += [e['params']['entry']['text'] for e in ev
               if e['method'] == 'Log.entryAdded' and e['params']['entry']['level'] == 'error']
    requests = [u if len(u) <= 200 else u[:200] + '...' for u in requests]
    return dict(url=url, title=info['title'], requests=requests, offending=[u for u in requests if not ok(u)],
                failed=failed, errors=errors, tables=info['tables'], images=info['images'],
                broken_images=[i for i in info['images'] if not (i['complete'] and i['naturalWidth'] > 0)],
                scroll_height=info['scrollHeight'], seconds=round(time.monotonic() - t0, 2))

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('html'); ap.add_argument('--screenshot'); ap.add_argument('--json', action='store_true')
    ap.add_argument('--width', type=int, default=1280); ap.add_argument('--height', type=int, default=900)
    a = ap.parse_args(argv)
    r = check_page(a.html, a.screenshot, a.width, a.height)
    if a.json: print(json.dumps(r, indent=1))
    print(f'{a.html}: {len(r["tables"])} tables, {len(r["images"])} images ({len(r["broken_images"])} broken), '
          f'{len(r["requests"])} requests ({len(r["offending"])} off the page), {len(r["errors"])} JS errors, {r["seconds"]} s')
    for u in r['offending']: print('  requested:', u[:200])
    for i in r['broken_images']: print('  broken image:', i['src'])
    for e in r['errors']: print('  error:', e[:200])
    bad = r['offending'] or r['broken_images'] or r['errors'] or not r['tables'] or not r['images']
    return 1 if bad else 0

if __name__ == '__main__': sys.exit(main())
