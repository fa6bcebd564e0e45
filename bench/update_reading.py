"""Bring a sweep's results into the repository and regenerate every text that reads them.

    python bench/update_reading.py --from /work/sweep_out/sweep   # copy sweep.json + sweep.png, then regenerate
    python bench/update_reading.py                               # regenerate from the committed bench/sweep.json

Writes bench/sweep.json, bench/sweep.png, nbs/images/sweep.png; the generated reading cells of nbs/index.ipynb
(the README's) and nbs/10d_sweep.ipynb (`report.sweep_reading`, the cells that start with MARK); then README.md
(tools/make_readme.py). tests/test_reading.py fails when any of them disagrees with bench/sweep.json.
"""
import argparse, json, shutil, subprocess, sys
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from semmae_edu.report import sweep_reading

MARK = '<!-- generated from bench/sweep.json by bench/update_reading.py: edit the code, not this text -->'
TARGETS = {'nbs/index.ipynb': dict(full=False, title='## What the sweep finds\n\n'),
           'nbs/10d_sweep.ipynb': dict(full=True, title='')}

def reading_cell(sweep:dict, nb:str) -> str:
    t = TARGETS[nb]
    return MARK + '\n\n' + t['title'] + sweep_reading(sweep, full=t['full']).rstrip('\n')

def write_cells(sweep:dict):
    for nb, t in TARGETS.items():
        path = ROOT / nb
        d = json.loads(path.read_text(encoding='utf-8'))
        cells = [c for c in d['cells'] if c['cell_type'] == 'markdown' and ''.join(c['source']).startswith(MARK)]
        if len(cells) != 1: sys.exit(f"{nb}: expected one markdown cell starting with the marker, found {len(cells)}")
        cells[0]['source'] = reading_cell(sweep, nb).splitlines(keepends=True)
        path.write_text(json.dumps(d, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')

if __name__ == '__main__':
    ap = argparse.ArgumentParser(); ap.add_argument('--from', dest='src', help='a sweep folder (sweep.json, sweep.png)')
    a = ap.parse_args()
    if a.src:
        src = Path(a.src)
        shutil.copy(src / 'sweep.json', ROOT / 'bench' / 'sweep.json')
        for dst in (ROOT / 'bench' / 'sweep.png', ROOT / 'nbs' / 'images' / 'sweep.png'): shutil.copy(src / 'sweep.png', dst)
    write_cells(json.loads((ROOT / 'bench' / 'sweep.json').read_text()))
    subprocess.run([sys.executable, str(ROOT / 'tools' / 'make_readme.py')], check=True)
