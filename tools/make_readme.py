"""Write README.md from nbs/index.ipynb without Quarto (`nbdev_readme` needs it).

    python tools/make_readme.py          # write README.md
    python tools/make_readme.py --check  # exit 1 if README.md differs from what the notebook gives
"""
import json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "<!-- Generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->\n\n"

def _src(cell): return ''.join(cell['source'])

def _directives(src): return [l[3:].strip() for l in src.splitlines() if l.startswith('#|')]

def _strip(src): return '\n'.join(l for l in src.splitlines() if not l.startswith('#|')).strip()

def _outputs(cell):
    out = []
    for o in cell.get('outputs', []):
        if o.get('output_type') == 'stream': out.append(''.join(o['text']))
        elif 'image/png' in o.get('data', {}): continue  # a figure: shown in the docs, not in the README
        elif 'text/markdown' in o.get('data', {}): out.append(''.join(o['data']['text/markdown']))
        elif 'text/plain' in o.get('data', {}): out.append(''.join(o['data']['text/plain']))
    return [o.rstrip() for o in out if o.strip()]

def readme(nb_path=ROOT/'nbs'/'index.ipynb'):
    "The README text for the notebook at `nb_path`."
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    parts = []
    for cell in nb['cells']:
        src = _src(cell)
        if any(d in ('hide', 'include: false') for d in _directives(src)): continue
        if cell['cell_type'] == 'markdown': parts.append(src.strip())
        elif cell['cell_type'] == 'code' and _strip(src):
            parts.append('```python\n' + _strip(src) + '\n```')
            parts += ['```\n' + o + '\n```' for o in _outputs(cell)]
    return HEADER + '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    text, path = readme(), ROOT/'README.md'
    if '--check' in sys.argv:
        if not path.exists() or path.read_text(encoding='utf-8') != text:
            sys.exit('README.md does not match nbs/index.ipynb: run `python tools/make_readme.py`.')
        print('README.md matches nbs/index.ipynb')
    else: path.write_text(text, encoding='utf-8'); print(f'wrote {path}')
