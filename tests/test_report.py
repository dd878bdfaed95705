"""The report built from fixture results (tests/fixtures/report_sweep): its numbers equal those in the
results files; the HTML is one self-contained file."""
import csv, json, re, shutil, statistics
from pathlib import Path
import pytest
from descgen.cli import main
from descgen.report import attribute_error_tables, attribute_errors, build_report, fmt_cell, load_results

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
    assert len(imgs) == 3 and all(s.startswith('data:image/png;base64,') for s in imgs)
    assert 'http://' not in h and 'https://' not in h and '<script' not in h
    for k in ('quality_png', 'attributes_png', 'loss_png'): assert paths[k].stat().st_size > 1000
    # environment, failed run and rerun command
    for s in ('torch 2.13.0', '0123456789abcdef', 'Failed runs', 'positive integer', 'descgen sweep configs/fixture.yaml --out reports/fixture'):
        assert s in h, s

def test_cli(sweep, capsys):
    assert main(['report', str(sweep)]) == 0
    assert (sweep/'report.html').exists() and (sweep/'report.md').exists()
    assert main(['report', str(sweep/'missing')]) == 2

PNG = b'\x89PNG\r\n\x1a\n'

def test_quality_cost_and_attribute_figures(sweep):
    "Both figures are written as PNGs, embedded in the HTML, linked from the markdown with a sentence on reading them."
    paths = build_report(sweep)
    md, h = paths['md'].read_text(), paths['html'].read_text()
    for k, name in (('quality_png', 'quality_vs_cost.png'), ('attributes_png', 'attribute_errors.png')):
        assert paths[k] == sweep/name and paths[k].read_bytes()[:8] == PNG and paths[k].stat().st_size > 10_000
        assert f']({name})' in md
    assert 'up and to the left is better' in md and 'Runs that train nothing' in md
    assert 'whose description misses a value of the key' in md and 'whose description misses' in h
    assert 'quality_vs_params' not in md   # the cost figure replaces the parameters-only one

def test_attribute_error_frame(sweep):
    "Per setting and key, the share of products dropping / inventing a value, recounted from predictions.jsonl."
    results, _ = load_results(sweep)
    errs = attribute_errors(sweep, results)
    rows = {}
    for r in results:
        for line in (sweep/'runs'/r['run_id']/'predictions.jsonl').read_text().splitlines():
            rows.setdefault(r['setting'], []).append(json.loads(line))
    keys = sorted({k for xs in rows.values() for x in xs for k in [m[0] for m in x['missing']] +
                   [h['key'] for h in x['hallucinated']]})
    assert sorted(errs['key'].unique()) == keys and len(keys) == 14
    for s, xs in rows.items():
        for k in keys:
            drop = sum(any(m[0] == k for m in x['missing']) for x in xs) / len(xs)
            inv = sum(any(h['key'] == k for h in x['hallucinated']) for x in xs) / len(xs)
            got = errs.set_index(['setting', 'kind', 'key'])['rate']
            assert got[s, 'dropped', k] == pytest.approx(drop) and got[s, 'invented', k] == pytest.approx(inv)
    tabs = attribute_error_tables(errs)
    assert list(tabs) == ['dropped', 'invented']
    for t in tabs.values():
        assert list(t.columns) == ['untuned base', 'full', 'lora r=8'] and len(t) == 12
        assert list(t.index) == list(tabs['dropped'].index)
    total, shown = errs.groupby('key')['rate'].sum(), list(tabs['dropped'].index)
    assert list(total[shown]) == sorted(total[shown], reverse=True) and total[shown].min() >= total.drop(shown).max()
    # no predictions.jsonl anywhere: no frame, and the report still builds (without the heatmap)
    for r in results: (sweep/'runs'/r['run_id']/'predictions.jsonl').unlink()
    assert attribute_errors(sweep, results) is None
    paths = build_report(sweep)
    assert 'attributes_png' not in paths and 'attribute_errors.png' not in paths['md'].read_text()
