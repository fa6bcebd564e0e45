"""Add the middle-of-training alignment fields (experiments.MID_COLUMNS) to finished sweep cells that lack them.

    python bench/sweep_mid_fields.py bench/sweep          # every cell of a masking method without them
    python bench/sweep_mid_fields.py bench/sweep --check  # only list them

The middle is the plans of epoch epochs // 2 drawn with the weights of that moment, as `compute_cell` measures it during the
run. Cells written before the fields existed, or resumed from a checkpoint past their middle, have none. For a strategy whose
plans do not read the weights (random, block, colormae: none of it; semmae-true: the epoch, through λ) the weights of that
moment are not needed, and the fields come from one draw. For those that do (`READ_WEIGHTS`: AMT's and AttMask's attention,
HPM's teacher) the cell's run is replayed to its middle (`pretrain_method` with the cell's settings, stopped there; one thread,
as the sweep's workers run) and measured; the run is deterministic on a CPU, so these are the weights the cell had there.
SemMAE's plans read the epoch and the parts its stage 1 learned on random masking's encoder of the same budget and seed: with
random's weights in the sweep folder (runs/e<E>/s<seed>/random/model.pth) stage 1 is run again and its part scores must equal
the row's to the last bit (else the parts are not the cell's and the script stops); without them it stops on the cell.
The cell's other numbers are kept as they are; the row gets `mid_added` (the commit that added the fields).
"""
import argparse, json, sys
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import torch
from semmae_edu.experiments import (MID_COLUMNS, METHODS, POINT, PART_SCORES, final_alignment, pretrain_method, sweep_data,
                                    untrained_mae, learn_parts, _learned_pixels)
from semmae_edu.sweep import _random_model
from semmae_edu.checkpoint import atomic_write
from semmae_edu.sweep import provenance

READ_WEIGHTS = ('amt', 'amt-middle', 'attmask', 'hpm')   # methods whose plans read the model (attention, HPM's teacher)

class _Measured(Exception): "Raised by the middle callback: the replay has what it came for."

def missing(out:Path) -> list:
    "The cell files of masking methods (budgets of 2 epochs or more) whose row has no middle fields."
    cells = sorted((out / 'cells').glob('*-e*-s*.json'))
    return [p for p in cells if (r := json.loads(p.read_text()))['method'] in METHODS and r['epochs'] >= 2
            and r.get(MID_COLUMNS[0]) is None]

def _learned(row:dict, point:dict, train, test, out:Path=None):
    "SemMAE's stage 1 again on random's weights of the cell's budget and seed: the learned part of every test pixel."
    E, seed = row['epochs'], row['seed']
    random = _random_model(Path(out) / 'runs' / f"e{E}" / f"s{seed}" / 'random', seed) if out is not None else None
    if random is None: raise ValueError("SemMAE's middle needs its learned parts: random's weights of this budget and seed are "
                                        "not in the sweep folder; run its cell again instead")
    stage1 = learn_parts(random, train, test, point['n_parts'], point['part_steps'], seed, progress=False)
    if any(stage1[key] != row[col] for col, key in PART_SCORES.items() if col != 'part_seconds'):
        raise ValueError(f"stage 1 did not reproduce the cell's part scores ({row['method']} e{E} s{seed}): not the cell's parts")
    return _learned_pixels(stage1['learner'], test.tensors()['image'])

def mid_fields(row:dict, point:dict, out:Path=None) -> dict:
    "MID_COLUMNS of a finished cell's row: one draw (SemMAE: with its stage 1 run again), or its run replayed to the middle."
    method, E, seed = row['method'], row['epochs'], row['seed']
    train, test = sweep_data(point['n_train'], point['n_test'], point['data'])
    learned = _learned(row, point, train, test, out) if method == 'semmae' else None
    def measure(model, strategy=None):
        f = final_alignment(method, model, test, E, seed, learned, point['n_parts'] if learned is not None else None,
                            strategy=strategy, epoch=E // 2)
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
    print(f"{len(todo)} cell(s) without middle fields: " + ', '.join(p.name for p in todo))
    if a.check or not todo: sys.exit(0)
    torch.set_num_threads(1)
    sweep = json.loads((a.out / 'sweep.json').read_text()) if (a.out / 'sweep.json').exists() else {}
    point = POINT | (sweep.get('config') or {})
    for p in todo:
        row = json.loads(p.read_text())
        try: row |= mid_fields(row, point, a.out) | dict(mid_added=provenance()['commit'])
        except ValueError as e: print(f"{p.name}: left as it is: {e}", flush=True); continue
        atomic_write(p, json.dumps(row, indent=1))   # as the sweep writes its cells
        print(f"{p.name}: " + ', '.join(f"{k} {row[k]:.3f}" for k in MID_COLUMNS if row[k] is not None), flush=True)
