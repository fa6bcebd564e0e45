"""Add the start-of-training alignment fields (experiments.START_COLUMNS) to finished sweep cells written before they existed.

    python bench/sweep_start_fields.py bench/sweep          # every cell of a masking method that lacks them
    python bench/sweep_start_fields.py bench/sweep --check  # only list them

The start is epoch 0: the encoder (and HPM's teacher) as `pretrain` initialises them for the cell's seed, so the fields need no
replay of the run (`experiments.start_alignment`, one forward pass on the held-out images). The cell's other numbers are kept as
they are; the row gets `start_added` (the commit that added the fields). SemMAE's cells need the parts learned on random's encoder
of the same budget and seed, which this script does not recompute: it stops on them (none were written before the fields existed).
"""
import argparse, json, sys
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from semmae_edu.experiments import START_COLUMNS, METHODS, POINT, start_alignment, sweep_data
from semmae_edu.checkpoint import atomic_write
from semmae_edu.sweep import provenance

def missing(out:Path) -> list:
    "The cell files of masking methods whose row has no start fields."
    cells = sorted((out / 'cells').glob('*-e*-s*.json'))
    return [p for p in cells if (r := json.loads(p.read_text()))['method'] in METHODS and START_COLUMNS[0] not in r]

if __name__ == '__main__':
    ap = argparse.ArgumentParser(); ap.add_argument('out', type=Path); ap.add_argument('--check', action='store_true')
    a = ap.parse_args()
    todo = missing(a.out)
    print(f"{len(todo)} cell(s) without start fields: " + ', '.join(p.name for p in todo))
    if a.check or not todo: sys.exit(0)
    sweep = json.loads((a.out / 'sweep.json').read_text()) if (a.out / 'sweep.json').exists() else {}
    point = POINT | (sweep.get('config') or {})
    _, test = sweep_data(point['n_train'], point['n_test'], point['data'])
    for p in todo:
        row = json.loads(p.read_text())
        if row['method'] == 'semmae': sys.exit(f"{p.name}: SemMAE's start needs its learned parts; run its cell again instead")
        row |= start_alignment(row['method'], test, row['epochs'], row['seed']) | dict(start_added=provenance()['commit'])
        atomic_write(p, json.dumps(row, indent=1))   # as the sweep writes its cells
        print(f"{p.name}: " + ', '.join(f"{k} {row[k]:.3f}" for k in START_COLUMNS if row[k] is not None))
