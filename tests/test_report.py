"""The report built from fixture results (tests/fixtures/report_sweep): its numbers equal those in the
results files; the HTML is one self-contained file."""
import csv, json, re, shutil, statistics
from pathlib import Path
import pytest
from descgen.cli import main
from descgen.report import build_report, fmt_cell

FIX = Path(__file__).parent/'fixtures'/'report_sweep'
KEYS = {'BLEU': 'bleu', 'ROUGE-L': 'rouge_l', 'CIDEr': 'cider', 'attr. coverage': 'attr_coverage',
        'hallucination': 'hallucination_rate'}

@pytest.fixture
def sweep(tmp_path):
    d = tmp_path/'sweep'; shutil.copytree(FIX, d); return d

def by_setting(d):
    meta = {r['id']: r for r in json.loads((d/'sweep.json').read_text())['runs']}
    out = {}
    for f in (d/'runs').glob('*/results.json'):
        out.setdefault(meta[f.parent.name]['setting'], []).append(json.loads(f.read_text()))
    return out

def test_numbers_equal_results(sweep):
    paths = build_report(sweep)
    groups = by_setting(sweep)
    rows = {r['setting']: r for r in csv.DictReader(open(paths['csv']))}
    assert set(rows) == set(groups) == {'untuned base', 'full', 'lora r=8'}
    md = paths['md'].read_text()
    for setting, runs in groups.items():
        assert int(rows[setting]['n']) == len(runs)
        for col, key in KEYS.items():
            vals = [r['metrics'][key] for r in runs]
            mean = statistics.mean(vals); sd = statistics.stdev(vals) if len(vals) > 1 else float('nan')
            assert float(rows[setting][f'{col} mean']) == pytest.approx(mean, rel=1e-12)
            if len(vals) > 1: assert float(rows[setting][f'{col} sd']) == pytest.approx(sd, rel=1e-9)
            assert fmt_cell(mean, sd, col) in md
        tp = [r['trainable_params'] for r in runs]
        assert float(rows[setting]['trainable params mean']) == statistics.mean(tp)
        line = next(l for l in md.splitlines() if l.startswith(f'| {setting} |'))
        assert f'{statistics.mean(tp):,.0f}' in line
    # samples side by side: every setting's prediction for the first product
    first = {s: runs[0]['samples'][0]['prediction'] for s, runs in groups.items()}
    for p in first.values(): assert p in md

def test_html_self_contained(sweep):
    paths = build_report(sweep)
    h = paths['html'].read_text()
    imgs = re.findall(r'<img [^>]*src="([^"]+)"', h)
    assert len(imgs) == 2 and all(s.startswith('data:image/png;base64,') for s in imgs)
    assert 'http://' not in h and 'https://' not in h and '<script' not in h
    for k in ('quality_png', 'loss_png'): assert paths[k].stat().st_size > 1000
    # environment, failed run and rerun command
    for s in ('torch 2.13.0', '0123456789abcdef', 'Failed runs', 'positive integer', 'descgen sweep configs/fixture.yaml --out reports/fixture'):
        assert s in h, s

def test_cli(sweep, capsys):
    assert main(['report', str(sweep)]) == 0
    assert (sweep/'report.html').exists() and (sweep/'report.md').exists()
    assert main(['report', str(sweep/'missing')]) == 2
