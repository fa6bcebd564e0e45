"README.md is generated from nbs/index.ipynb; its test line is the one CI runs."
import re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tools'))
from make_readme import readme

def test_readme_matches_index():
    assert (ROOT/'README.md').read_text(encoding='utf-8') == readme()

def test_readme_has_one_line_test_command():
    lines = [l for l in (ROOT/'README.md').read_text().splitlines()
             if re.match(r'^python3 -m venv \.venv && .*pip install .*nbdev_test.*pytest', l)]
    assert len(lines) == 1, lines

def _chapter_table():
    "(chapter notebook, module) rows of the README's chapter table."
    rows = re.findall(r'^\| \[[^\]]+\]\(nbs/([^)]+\.ipynb)\) \| `semmae_edu\.(\w+)` \|', (ROOT/'README.md').read_text(), re.M)
    return rows

def test_chapter_table_matches_the_modules():
    "Every module appears once in the README's chapter table, with the notebook that builds it (its header's 'File to edit')."
    rows = _chapter_table()
    built = {}
    for f in sorted((ROOT/'semmae_edu').glob('*.py')):
        m = re.search(r'File to edit: \.\./nbs/(\S+\.ipynb)\.', f.read_text(encoding='utf-8'))
        if m: built[f.stem] = m.group(1)
    assert sorted(m for _, m in rows) == sorted(built), 'README chapter table vs semmae_edu/*.py'
    assert {m: nb for nb, m in rows} == built
    exporting = {p.name for p in (ROOT/'nbs').glob('[0-9]*.ipynb') if '#| default_exp' in p.read_text(encoding='utf-8')}
    assert exporting == set(built.values()), 'a chapter that exports a module is missing from the table (or the reverse)'

def test_every_module_says_what_it_holds():
    "Each module opens with a docstring (nbdev exports the notebook's `> description`) of 1-3 lines."
    import ast
    for f in sorted((ROOT/'semmae_edu').glob('*.py')):
        if f.name in ('_modidx.py', '__init__.py'): continue
        doc = ast.get_docstring(ast.parse(f.read_text(encoding='utf-8')))
        assert doc and f.read_text(encoding='utf-8').startswith('"""'), f'{f.name} does not open with a docstring'
        assert 1 <= len(doc.splitlines()) <= 3, f.name

def test_sweep_settings_in_the_readme_are_the_codes():
    "The README names the sweep's budgets and training-set size as `experiments` declares them."
    from semmae_edu.experiments import BUDGETS, POINT
    readme = (ROOT / 'README.md').read_text(encoding='utf-8')
    said = ', '.join(map(str, BUDGETS[:-1])) + f" and {BUDGETS[-1]} epochs of {POINT['n_train']:,} images (`experiments.BUDGETS`)"
    assert said in ' '.join(readme.split()), said
