"""Refactor check (issues 15 and 20): the numbers a refactor must not change.

Runs `pretrain` (random, amt with amt_start_epoch=1/refresh_every=1, semmae) for 3 epochs on a
small SyntheticParts set with a fixed seed, a tiny `run_demo` (its metrics and the bytes of its figures), a tiny
resumable sweep (its rows and figure), the sweep's reading of the committed bench/sweep.json, and bench/sweep.json
regenerated from the committed cells; every loss and metric is written (timings and the rows' commit left out).
The baseline is re-recorded whenever results are meant to change (last: the middle-of-training fields of issue 19, which
add `mid_` fields to the demo's and the tiny sweep's rows; the committed sweep's cells change `committed_sweep` whenever
cells land; recorded on the 2-core AMD EPYC machine of that session: the baseline recorded before, on another machine,
differed from this machine's run of the same code in the last bits of some of the demo's losses);
a refactor must then reproduce it exactly. Floats are compared exactly, so a
baseline holds on the machine (CPU, torch build) that recorded it: to check a refactor elsewhere, record the untouched
code there first and compare with that.
Usage: python bench/refactor_equal.py OUT.json          # record
       python bench/refactor_equal.py OUT.json --compare bench/refactor_baseline.json   # exact equality
"""
import hashlib, json, re, shutil, sys, tempfile, math
from pathlib import Path
import torch
from semmae_edu.synthetic import SyntheticParts
from semmae_edu import train
from semmae_edu.config import preset
from semmae_edu.demo import run_demo
from semmae_edu.sweep import run_sweep, write_sweep
from semmae_edu.report import sweep_reading

ROOT = Path(__file__).resolve().parents[1]
VOLATILE = ('seconds', 'pretrain_seconds', 'images_per_s', 'total_seconds', 'time',
          'commit')   # timings, and the provenance of a sweep row (it names the HEAD it ran at)

def drop_timings(x):
    if isinstance(x, dict): return {k: drop_timings(v) for k, v in x.items() if k not in VOLATILE and not k.endswith('_seconds')}
    if isinstance(x, list): return [drop_timings(v) for v in x]
    if isinstance(x, str): return re.sub(r'\b\d+(\.\d+)? s\b', '<seconds> s', x)   # timings inside the report's notes
    return x

def sha(path): return hashlib.sha256(Path(path).read_bytes()).hexdigest()

def pretrain_losses(strategy, tmp, num_workers=0, **kw):
    ds = SyntheticParts(n=96, size=32, seed=0)
    cfg = preset('cpu', model='micro', epochs=3, batch_size=16, warmup_epochs=0.5, strategy=strategy, seed=3,
                       out=str(Path(tmp) / f'{strategy}{num_workers}'), progress=False, num_workers=num_workers, **kw)
    res = train.pretrain(cfg, train_set=ds)
    return [r['loss'] for r in res.history], sum(float(p.double().sum()) for p in res.model.state_dict().values())

def tiny_sweep(tmp):
    "Budgets 1 and 2, one seed, SemMAE (stage 1 on random's encoder) and the budget-free baselines: rows and figure."
    out = Path(tmp) / 'sweep'
    methods = ('random', 'semmae', 'pixels', 'untrained', 'scratch')
    rows = run_sweep(out, budgets=(1, 2), methods=methods, seeds={m: 1 for m in methods}, progress=False,
                     n_train=64, n_test=40, n_finetune=64, finetune_epochs=1, finetune_from=1, part_steps=3)
    saved = json.loads((out / 'sweep.json').read_text())
    return dict(rows=drop_timings(rows), saved=drop_timings(saved), png=sha(out / 'sweep.png'))

def committed_sweep(tmp):
    "bench/sweep.json and bench/sweep.png regenerated from the committed cells, and the reading of bench/sweep.json."
    out = Path(tmp) / 'committed'
    shutil.copytree(ROOT / 'bench' / 'sweep' / 'cells', out / 'cells')
    sweep = json.loads((ROOT / 'bench' / 'sweep.json').read_text())
    write_sweep(out, sweep['budgets'], sweep.get('config') or sweep['point'])
    return dict(json_equal=(out / 'sweep.json').read_text() == (ROOT / 'bench' / 'sweep.json').read_text(),
                png_equal=sha(out / 'sweep.png') == sha(ROOT / 'bench' / 'sweep.png'),
                reading=sweep_reading(sweep), reading_full=sweep_reading(sweep, full=True))

def main(out, compare=None):
    torch.set_num_threads(1)
    rec = {}
    with tempfile.TemporaryDirectory() as tmp:
        amt = dict(strategy_kw=dict(amt_start_epoch=1, refresh_every=1))
        rec['pretrain_random'] = pretrain_losses('random', tmp)
        rec['pretrain_amt'] = pretrain_losses('amt', tmp, **amt)
        rec['pretrain_semmae'] = pretrain_losses('semmae', tmp)
        m = run_demo(Path(tmp) / 'demo', n_train=128, n_test=64, epochs=3, batch_size=32, amt_start_epoch=1, refresh_every=1,
                     part_steps=4, n_finetune=128, finetune_epochs=1, finetune_from=1, n_pictures=2, progress=False)
        rec['demo'] = drop_timings(json.loads((Path(tmp) / 'demo' / 'metrics.json').read_text()))
        rec['demo_figures'] = {p.name: sha(p) for p in sorted((Path(tmp) / 'demo' / 'figures').glob('*.png'))}
        rec['sweep'] = tiny_sweep(tmp)
        rec['committed_sweep'] = committed_sweep(tmp)
    Path(out).write_text(json.dumps(rec, indent=1))
    if compare:
        base = drop_timings(json.loads(Path(compare).read_text()))
        now = json.loads(Path(out).read_text())   # compared as stored (tuples become lists)
        diffs = [k for k in base if base[k] != now.get(k)]
        print('identical' if not diffs else f'DIFFERENT: {diffs}')
        return not diffs
    return True

if __name__ == '__main__':
    a = sys.argv[1:]
    ok = main(a[0], a[a.index('--compare') + 1] if '--compare' in a else None)
    sys.exit(0 if ok else 1)
