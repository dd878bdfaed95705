"""The committed demo report opened in a real browser (Debian's `chromium`, headless, driven over the
DevTools protocol by scripts/browser_check.py): its tables are there and visible, every image has loaded
(naturalWidth > 0), and the page requests nothing but itself and its data: URLs. A second page with
outside references proves the check sees them. Without chromium: a loud skip locally (and `make pytest`
prints "browser check NOT run: chromium missing"); with CI=true, a failure."""
import csv, os, struct, sys
from pathlib import Path
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO/'scripts'))
import browser_check as bc

REPORT = REPO/'reports'/'demo'/'report.html'
SCREENSHOT = REPO/'reports'/'demo'/'screenshot.png'

@pytest.fixture(scope='module')
def chromium():
    p = bc.find_chromium()
    if p is None:
        msg = ('browser check NOT run: chromium missing (Debian: apt-get install --no-install-recommends chromium; '
               'or set CHROMIUM=/path/to/chrome)')
        if os.environ.get('CI', '').lower() in ('1', 'true', 'yes'): pytest.fail(msg + ' -- in CI this is an error')
        pytest.skip(msg)
    return p

def _png_size(path):
    head = Path(path).read_bytes()[:24]
    assert head[:8] == b'\x89PNG\r\n\x1a\n', f'{path} is not a PNG'
    return struct.unpack('>II', head[16:24])

def test_demo_report_in_chromium(chromium, tmp_path):
    r = bc.check_page(REPORT, screenshot=tmp_path/'shot.png', chromium=chromium)
    assert r['title'] == 'Sweep report: demo'
    # self-contained: nothing but the file itself and its data: URLs
    assert not r['offending'], f"the report requests: {r['offending']}"
    assert not r['failed'] and not r['errors'], (r['failed'], r['errors'])
    # the tables: results per setting (one row per setting of summary.csv), unseen values, samples
    assert len(r['tables']) == 3 and all(t['visible'] for t in r['tables']), r['tables']
    results, unseen, samples = r['tables']
    with open(REPORT.parent/'summary.csv') as f: settings = list(csv.DictReader(f))
    assert results['headers'][:3] == ['setting', 'runs', 'BLEU'] and results['rows'] == len(settings)
    assert unseen['headers'][:2] == ['split', 'key'] and unseen['rows'] >= 1
    assert samples['headers'][:2] == ['attributes', 'reference'] and samples['rows'] >= 1
    # every <img> of the HTML loaded and shown
    assert len(r['images']) == REPORT.read_text().count('<img ') == 3
    assert not r['broken_images'], r['broken_images']
    assert all(i['visible'] and i['naturalWidth'] > 100 and i['alt'] for i in r['images']), r['images']
    assert _png_size(tmp_path/'shot.png') == (1280, 900)
    print(f"browser check: {r['seconds']} s")

def test_committed_screenshot():
    "reports/demo/screenshot.png (linked from the README) is the report's first screen; `make screenshot` remakes it."
    assert SCREENSHOT.exists(), 'run `make screenshot`'
    assert _png_size(SCREENSHOT) == (1280, 900)
    assert 'reports/demo/screenshot.png' in (REPO/'README.md').read_text()

def test_check_sees_outside_requests_and_broken_images(chromium, tmp_path):
    "The check is not vacuous: remote and sibling-file references are reported, a missing image is broken."
    page = tmp_path/'bad.html'
    page.write_text('<!DOCTYPE html><html><head><title>bad</title>'
                    '<link rel="stylesheet" href="https://cdn.example.com/style.css"></head><body>'
                    '<table><thead><tr><th>a</th></tr></thead><tbody><tr><td>1</td></tr></tbody></table>'
                    '<img alt="remote" src="http://example.com/plot.png"><img alt="missing" src="missing.png">'
                    '<img alt="inline" src="data:image/gif;base64,R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw==">'
                    '</body></html>')
    r = bc.check_page(page, chromium=chromium)
    assert any(u.startswith('https://cdn.example.com/') for u in r['offending']), r['requests']
    assert any(u.startswith('http://example.com/') for u in r['offending']), r['requests']
    assert any(u.endswith('/missing.png') for u in r['offending']), r['requests']
    assert sorted(i['alt'] for i in r['broken_images']) == ['missing', 'remote']
    assert bc.main([str(page)]) == 1
