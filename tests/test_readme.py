"""The README's results section quotes the committed reports: each table there must equal what
`descgen.report.results_markdown` gives from the report's summary.csv today."""
from pathlib import Path
import pytest
from descgen.report import results_markdown

ROOT = Path(__file__).parents[1]

@pytest.mark.parametrize('report', ['demo', 'e2e_ablation', 'myntra_ablation', 'small_budget'])
def test_readme_tables_equal_the_reports(report):
    readme = (ROOT/'README.md').read_text(encoding='utf-8')
    table = results_markdown(ROOT/'reports'/report)
    assert table in readme, f'README.md does not show the current table of reports/{report}: paste descgen.report.results_markdown output'
    assert f'reports/{report}/report.md' in readme


def test_readme_demo_samples_are_the_reports():
    "The sample outputs the README shows (the lines between the demo-samples markers) are lines of the committed demo report."
    readme = (ROOT/'README.md').read_text(encoding='utf-8')
    start, end = '<!-- demo samples: lines of reports/demo/report.md -->', '<!-- end of demo samples -->'
    assert start in readme and end in readme
    lines = [l for l in readme.split(start, 1)[1].split(end, 1)[0].splitlines() if l.strip()]
    report = set((ROOT/'reports'/'demo'/'report.md').read_text(encoding='utf-8').splitlines())
    assert len(lines) >= 3 and all(l in report for l in lines), [l[:80] for l in lines if l not in report]
