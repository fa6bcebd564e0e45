"""Add the alignment fields of the start and the middle of training (experiments.START_COLUMNS, MID_COLUMNS) to finished sweep
cells that lack them: cells written before the fields existed, or resumed from a checkpoint past their middle.

    python bench/sweep_fill_alignment.py bench/sweep          # every cell of a masking method without them
    python bench/sweep_fill_alignment.py bench/sweep --check  # only list them

The start is epoch 0: the encoder (and HPM's teacher) as `pretrain` initialises them for the cell's seed, so its fields need no
replay (`experiments.start_alignment`, one forward pass on the held-out images). The middle is the plans of epoch epochs // 2
drawn with the weights of that moment, as `compute_cell` measures it during the run. For a strategy whose plans do not read the
weights (random, block, colormae: none of it; semmae-true and semmae: the epoch, through λ) the weights of that moment are not
needed, and the fields come from one draw. For those that do (`READ_WEIGHTS`: AMT's and AttMask's attention, HPM's teacher) the
cell's run is replayed to its middle (`pretrain_method` with the cell's settings, stopped there; one thread, as the sweep's
workers run) and measured; the run is deterministic on a CPU, so these are the weights the cell had there.
SemMAE's plans also read the parts its stage 1 learned on random masking's encoder of the same budget and seed: with random's
weights in the sweep folder (runs/e<E>/s<seed>/random/model.pth) stage 1 is run again and its part scores must equal the row's
to the last bit (else the parts are not the cell's and the cell is left as it is); without them the cell is left as it is.
The cell's other numbers are kept; the row gets `start_added` / `mid_added` (the commit that added the fields).
"""
import argparse, json, sys
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import torch
from semmae_edu.experiments import (START_COLUMNS, MID_COLUMNS, METHODS, POINT, PART_SCORES, final_alignment, pretrain_method,
                                    sweep_data, untrained_mae, learn_parts, _learned_pixels, start_alignment)
from semmae_edu.sweep import _random_model, provenance
from semmae_edu.checkpoint import atomic_write

READ_WEIGHTS = ('amt', 'amt-middle', 'attmask', 'hpm')   # methods whose plans read the model (attention, HPM's teacher)

class _Measured(Exception): "Raised by the middle callback: the replay has what it came for."

def _needs(row:dict) -> tuple:
    "(start, middle): which moments a row of a masking method lacks (a one-epoch run has no middle)."
    if row['method'] not in METHODS: return (False, False)
    return row.get(START_COLUMNS[0]) is None, row['epochs'] >= 2 and row.get(MID_COLUMNS[0]) is None

def missing(out:Path) -> list:
    "The cell files of masking methods whose row lacks the start or the middle fields."
    return [p for p in sorted((out / 'cells').glob('*-e*-s*.json')) if any(_needs(json.loads(p.read_text())))]

def _learned(row:dict, point:dict, train, test, out:Path=None):
    "SemMAE's stage 1 again on random's weights of the cell's budget and seed: the learned part of every test pixel."
    E, seed = row['epochs'], row['seed']
    random = _random_model(Path(out) / 'runs' / f"e{E}" / f"s{seed}" / 'random', seed) if out is not None else None
    if random is None: raise ValueError("SemMAE's plans need its learned parts: random's weights of this budget and seed are "
                                        "not in the sweep folder; run its cell again instead")
    stage1 = learn_parts(random, train, test, point['n_parts'], point['part_steps'], seed, progress=False)
    if any(stage1[key] != row[col] for col, key in PART_SCORES.items() if col != 'part_seconds'):
        raise ValueError(f"stage 1 did not reproduce the cell's part scores ({row['method']} e{E} s{seed}): not the cell's parts")
    return _learned_pixels(stage1['learner'], test.tensors()['image'])

def fill_fields(row:dict, point:dict, out:Path=None) -> dict:
    "The START_COLUMNS and MID_COLUMNS a finished cell's row lacks (with `start_added` / `mid_added`)."
    (start, mid), commit = _needs(row), provenance()['commit']
    method, E, seed = row['method'], row['epochs'], row['seed']
    train, test = sweep_data(point['n_train'], point['n_test'], point['data'])
    learned = _learned(row, point, train, test, out) if method == 'semmae' and (start or mid) else None
    k = point['n_parts'] if learned is not None else None
    got = start_alignment(method, test, E, seed, learned, k) | dict(start_added=commit) if start else {}
    return got | (mid_fields(row, point, train, test, learned, k) | dict(mid_added=commit) if mid else {})

def mid_fields(row:dict, point:dict, train, test, learned=None, n_parts:int=None) -> dict:
    "MID_COLUMNS of a finished cell's row: one draw, or its run replayed to the middle (SemMAE: `learned` parts, K = `n_parts`)."
    method, E, seed = row['method'], row['epochs'], row['seed']
    def measure(model, strategy=None):
        f = final_alignment(method, model, test, E, seed, learned, n_parts, strategy=strategy, epoch=E // 2)
        return {f'mid_{k}': v for k, v in f.items()}
    if method not in READ_WEIGHTS: return measure(untrained_mae(seed))
    got = {}
    def middle(model, strategy):
        got.update(measure(model, strategy)); raise _Measured
    try: pretrain_method(method, train, E, point['batch_size'], seed, 'cpu', False, point['norm_pix_loss'], middle=middle)
    except _Measured: return got
    raise RuntimeError(f"{method} e{E} s{seed}: the run never reached its middle")

if __name__ == '__main__':
    ap = argparse.ArgumentParser(); ap.add_argument('out', type=Path); ap.add_argument('--check', action='store_true')
    a = ap.parse_args()
    todo = missing(a.out)
    print(f"{len(todo)} cell(s) without start or middle fields: " + ', '.join(p.name for p in todo))
    if a.check or not todo: sys.exit(0)
    torch.set_num_threads(1)
    sweep = json.loads((a.out / 'sweep.json').read_text()) if (a.out / 'sweep.json').exists() else {}
    point = POINT | (sweep.get('config') or {})
    for p in todo:
        row = json.loads(p.read_text())
        try: row |= fill_fields(row, point, a.out)
        except ValueError as e: print(f"{p.name}: left as it is: {e}", flush=True); continue
        atomic_write(p, json.dumps(row, indent=1))   # as the sweep writes its cells
        print(f"{p.name}: " + ', '.join(f"{k} {row[k]:.3f}" for k in START_COLUMNS + MID_COLUMNS if row[k] is not None), flush=True)
