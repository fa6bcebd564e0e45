"The sweep: cells in budget-first order, one JSON per finished cell, and a sweep killed in the middle continues where it stopped."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest, scipy.stats
from semmae_edu.sweep import run_sweep, run_cell, sweep_cells, sweep_rows
from semmae_edu.stats import interval, paired_gain, t975

ROOT = Path(__file__).resolve().parents[1]
ARGS = ['--budgets', '1,2', '--methods', 'random,pixels,scratch', '--seeds', '2', '--n-train', '64', '--n-test', '40',
        '--probe-epochs', '2', '--finetune-epochs', '1', '--no-progress']

def _sweep(out, **kw):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT), MPLBACKEND='Agg')
    return subprocess.Popen([sys.executable, '-m', 'semmae_edu.cli', 'sweep', '--out', str(out)] + ARGS, env=env, **kw)

def _strip(rows): return [{k: v for k, v in r.items() if not k.endswith('seconds')} for r in rows]

def test_cells_budget_first():
    cells = sweep_cells((10, 30), ('random', 'semmae', 'pixels'), {'random': 2, 'semmae': 1, 'pixels': 2})
    assert cells == [('random', 10, 0), ('semmae', 10, 0), ('pixels', 10, 0), ('random', 10, 1), ('pixels', 10, 1),
                     ('random', 30, 0), ('semmae', 30, 0), ('pixels', 30, 0), ('random', 30, 1), ('pixels', 30, 1)]

@pytest.mark.slow
def test_sweep_resumes_after_kill(tmp_path):
    out = tmp_path / 'sweep'
    p = _sweep(out)
    t0 = time.time()
    while not list((out / 'cells').glob('*-e*-s*.json')) if (out / 'cells').exists() else True:
        assert p.poll() is None and time.time() - t0 < 300, 'the sweep ended or stalled before its first cell'
        time.sleep(0.2)
    p.send_signal(signal.SIGKILL); p.wait()
    done = {f.name: (f.stat().st_mtime_ns, f.read_text()) for f in (out / 'cells').glob('*-e*-s*.json')}
    assert 1 <= len(done) < 12
    assert _sweep(out).wait(timeout=600) == 0
    rows = sweep_rows(out)
    assert [(r['method'], r['epochs'], r['seed']) for r in rows] == sweep_cells((1, 2), ('random', 'pixels', 'scratch'), {m: 2 for m in ('random', 'pixels', 'scratch')})
    for name, (mtime, text) in done.items():                              # finished cells were kept, not recomputed
        f = out / 'cells' / name
        assert f.stat().st_mtime_ns == mtime and f.read_text() == text
    assert json.loads((out / 'sweep.json').read_text())['rows'] == rows and (out / 'sweep.png').is_file()
    # the same sweep without the kill gives the same numbers
    fresh = tmp_path / 'fresh'
    assert _sweep(fresh).wait(timeout=600) == 0
    assert _strip(sweep_rows(fresh)) == _strip(rows)

def test_sweep_bad_input(tmp_path):
    with pytest.raises(ValueError, match='methods'): run_sweep(tmp_path, methods=('random', 'mae'))
    with pytest.raises(ValueError, match='budgets'): run_sweep(tmp_path, budgets=(0,))
    with pytest.raises(ValueError, match='unknown setting'): run_sweep(tmp_path, n_trian=5)
    from semmae_edu import cli
    assert cli.main(['sweep', '--out', str(tmp_path / 's'), '--budgets', '10,x']) == 2 and not (tmp_path / 's').exists()

def test_interval_and_paired_gain():
    m, h, n = interval([0.5, 0.7])
    lo, hi = scipy.stats.t.interval(0.95, 1, loc=0.6, scale=scipy.stats.sem([0.5, 0.7]))
    assert (round(m, 12), n) == (0.6, 2) and abs(h - (hi - lo) / 2) < 1e-12          # t(0.975, 1) * s / sqrt(2)
    rows = [dict(method=k, epochs=10, seed=s, probe_mean=v) for s, (a, b) in enumerate([(0.4, 0.5), (0.6, 0.8)]) for k, v in (('random', a), ('amt', b))]
    assert abs(paired_gain(rows, 'amt', epochs=10)[0] - 0.15) < 1e-12

def test_t_quantiles_equal_scipys():
    "The interval's factor is scipy's Student t for every number of seeds (the typed table it replaces fell back to 1.96 at n >= 12)."
    for n in range(2, 41):
        assert t975(n - 1) == scipy.stats.t.ppf(0.975, n - 1)
        v = [0.4 + 0.03 * ((5 * k) % 7) for k in range(n)]
        lo, hi = scipy.stats.t.interval(0.95, n - 1, loc=sum(v) / n, scale=scipy.stats.sem(v))
        assert abs(interval(v)[1] - (hi - lo) / 2) < 1e-12, n
    assert (round(t975(1), 3), round(t975(11), 3)) == (12.706, 2.201)

@pytest.mark.slow
def test_semmae_cell_without_random_weights(tmp_path):
    "A random cell committed without its weights (a new machine): SemMAE's stage 1 trains the same random run again."
    import shutil
    point = dict(n_train=64, n_test=40, probe_epochs=2, finetune_epochs=1, part_steps=2)
    kept = run_cell('random', 1, 0, tmp_path / 'a', point)
    shutil.rmtree(tmp_path / 'a' / 'runs')                             # only cells/ survives, as in the repository
    row = run_cell('semmae', 1, 0, tmp_path / 'a', point)
    ref = run_cell('semmae', 1, 0, tmp_path / 'b', point)               # the same cell with random's weights at hand
    assert run_cell('random', 1, 0, tmp_path / 'a', point) == kept       # random's row is read, not recomputed
    assert _strip([row]) == _strip([ref])
