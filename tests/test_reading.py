"README, chapter 10 and the sweep agree: the generated reading cells are exactly what `sweep_reading` says of bench/sweep.json."
import json, sys
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'bench'))
from update_reading import reading_cell, MARK, TARGETS

SWEEP = json.loads((ROOT / 'bench' / 'sweep.json').read_text())

def _cell(nb):
    d = json.loads((ROOT / nb).read_text(encoding='utf-8'))
    return [''.join(c['source']) for c in d['cells'] if c['cell_type'] == 'markdown' and ''.join(c['source']).startswith(MARK)]

def test_reading_cells_equal_the_sweep():
    for nb in TARGETS: assert _cell(nb) == [reading_cell(SWEEP, nb)], f"{nb}: run python bench/update_reading.py"

def test_readme_numbers_equal_the_sweep():
    readme = (ROOT / 'README.md').read_text(encoding='utf-8')
    assert reading_cell(SWEEP, 'nbs/index.ipynb') in readme, "README.md: run python bench/update_reading.py"

def test_no_stale_claims():
    readme = (ROOT / 'README.md').read_text(encoding='utf-8')
    for stale in ('3.2 ± 1.9', 'demo_seeds', 'over five seeds (chapter 09)'): assert stale not in readme
    assert not (ROOT / 'bench' / 'demo_seeds.json').exists()
