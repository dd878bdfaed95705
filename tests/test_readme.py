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
