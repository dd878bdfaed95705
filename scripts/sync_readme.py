#!/usr/bin/env python
"""Render README.md from nbs/index.ipynb (nbdev_readme needs quarto, which these machines lack).

Markdown cells are copied as they are; code cells become ```python blocks (cells starting
with `#| hide` are left out); text outputs are shown below their cell.
    python scripts/sync_readme.py          # write README.md
    python scripts/sync_readme.py --check  # exit 1 if README.md differs (used by `make test`)
"""
import json, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
HEADER = '<!-- Generated from nbs/index.ipynb by scripts/sync_readme.py: edit the notebook, not this file. -->\n\n'

def render(nb_path=root/'nbs'/'index.ipynb') -> str:
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    parts = []
    for c in nb['cells']:
        src = ''.join(c['source']).strip('\n')
        if not src: continue
        if c['cell_type'] == 'markdown': parts.append(src)
        elif c['cell_type'] == 'code':
            if src.lstrip().startswith('#| hide') or src.lstrip().startswith('#|hide'): continue
            parts.append(f'```python\n{src}\n```')
            texts = []
            for o in c.get('outputs', []):
                if o.get('output_type') == 'stream': texts.append(''.join(o['text']))
                elif 'text/plain' in o.get('data', {}): texts.append(''.join(o['data']['text/plain']))
            if texts: parts.append('```\n' + '\n'.join(t.rstrip('\n') for t in texts) + '\n```')
    return HEADER + '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    text, readme = render(), root/'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text(encoding='utf-8') != text:
            sys.exit('README.md is out of step with nbs/index.ipynb: run `python scripts/sync_readme.py` and commit.')
        print('README.md matches nbs/index.ipynb.')
    else:
        readme.write_text(text, encoding='utf-8'); print(f'wrote {readme}')
