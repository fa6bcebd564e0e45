"""Bring a sweep's results into the repository and regenerate every text that reads them.

    python bench/update_reading.py --from /work/sweep_out/sweep   # copy sweep.json, then regenerate
    python bench/update_reading.py                               # regenerate from the committed bench/sweep.json

Writes bench/sweep.json, bench/sweep.png, nbs/images/sweep.png (redrawn from sweep.json by `report.plot_sweep` in the
book's figure style, 110 dpi, with the text size the docs' figure check reads); the generated reading cells of nbs/index.ipynb
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

def draw_figure(sweep:dict):
    "bench/sweep.png and nbs/images/sweep.png from the rows, as `write_sweep` draws them, measured as the docs build measures figures."
    import matplotlib; matplotlib.use('Agg')
    sys.path.insert(0, str(ROOT / 'tools'))
    from build_docs import install_figure_hook
    from semmae_edu.report import plot_sweep
    from semmae_edu.viz import use_figure_style
    install_figure_hook(); use_figure_style()
    fig = plot_sweep(sweep['rows'])
    for dst in (ROOT / 'bench' / 'sweep.png', ROOT / 'nbs' / 'images' / 'sweep.png'): fig.savefig(dst, dpi=110, bbox_inches='tight')

def write_cells(sweep:dict):
    for nb, t in TARGETS.items():
        path = ROOT / nb
        d = json.loads(path.read_text(encoding='utf-8'))
        cells = [c for c in d['cells'] if c['cell_type'] == 'markdown' and ''.join(c['source']).startswith(MARK)]
        if len(cells) != 1: sys.exit(f"{nb}: expected one markdown cell starting with the marker, found {len(cells)}")
        cells[0]['source'] = reading_cell(sweep, nb).splitlines(keepends=True)
        path.write_text(json.dumps(d, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')

if __name__ == '__main__':
    ap = argparse.ArgumentParser(); ap.add_argument('--from', dest='src', help='a sweep folder (its sweep.json)')
    a = ap.parse_args()
    if a.src:
        src = Path(a.src)
        shutil.copy(src / 'sweep.json', ROOT / 'bench' / 'sweep.json')
    sweep = json.loads((ROOT / 'bench' / 'sweep.json').read_text())
    draw_figure(sweep)
    write_cells(sweep)
    subprocess.run([sys.executable, str(ROOT / 'tools' / 'make_readme.py')], check=True)
