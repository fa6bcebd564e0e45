"The sweep: cells in budget-first order, one JSON per finished cell, and a sweep killed in the middle continues where it stopped."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest, scipy.stats
from semmae_edu.sweep import run_sweep, run_cell, sweep_cells, sweep_rows
from semmae_edu.stats import interval, gain, t975, difference, paired_diff, welch_diff, holm, primary_family, PRIMARY, seed_values

ROOT = Path(__file__).resolve().parents[1]
ARGS = ['--budgets', '1,2', '--methods', 'random,pixels,scratch', '--seeds', '2', '--n-train', '64', '--n-test', '40',
        '--n-finetune', '64', '--finetune-epochs', '1', '--finetune-from', '1', '--no-progress']

def _sweep(out, **kw):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT), MPLBACKEND='Agg')
    return subprocess.Popen([sys.executable, '-m', 'semmae_edu.cli', 'sweep', '--out', str(out)] + ARGS, env=env, **kw)

def _strip(rows):
    "The rows' numbers: without timings and provenance (a commit made while the test runs changes `commit`, not a number)."
    return [{k: v for k, v in r.items() if not k.endswith('seconds') and k not in ('commit', 'device', 'torch')} for r in rows]

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
    saved = json.loads((out / 'sweep.json').read_text())
    assert saved['rows'] == rows and (out / 'sweep.png').is_file()
    assert saved['seeds'] == {m: 2 for m in ('random', 'pixels', 'scratch')} and saved['budgets'] == [1, 2]   # the planned grid
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

def test_sweep_refuses_settings_without_effect(tmp_path, capsys):
    "A setting no cell of the grid reads is refused before any work, naming the flags (no silent no-ops)."
    from semmae_edu import cli
    out = str(tmp_path / 's')
    cases = [(['--budgets', '4,8', '--methods', 'random,pixels', '--finetune-epochs', '30'],
              '--finetune-epochs=30 cannot take effect', 'set --finetune-from=8 or add scratch to `--methods`'),
             (['--methods', 'pixels,untrained', '--finetune-from', '4'], '--finetune-from=4 cannot take effect', ''),
             (['--methods', 'random', '--part-steps', '50'], '--part-steps=50 cannot take effect', 'semmae is not in `--methods`'),
             (['--n-finetune', '9000'], '--n-finetune must be <= --n-train (8192)', ''),
             (['--device', 'gpu'], "--device must be 'cpu', 'cuda' or 'cuda:N'", '')]
    for args, *words in cases:
        assert cli.main(['sweep', '--out', out] + args) == 2, args
        err = capsys.readouterr().err
        assert all(w in err for w in words), err
        assert not (tmp_path / 's').exists()
    # with scratch in the grid, --finetune-epochs takes effect (scratch is fine-tuned at every budget): not refused here
    from semmae_edu.sweep import _check_grid
    _check_grid((4, 8), ('random', 'scratch'), dict(finetune_epochs=30), 1, None, 'cpu')

def test_interval_and_gain():
    m, h, n = interval([0.5, 0.7])
    lo, hi = scipy.stats.t.interval(0.95, 1, loc=0.6, scale=scipy.stats.sem([0.5, 0.7]))
    assert (round(m, 12), n) == (0.6, 2) and abs(h - (hi - lo) / 2) < 1e-12          # t(0.975, 1) * s / sqrt(2)
    rows = [dict(method=k, epochs=10, seed=s, probe_mean=v) for s, (a, b) in enumerate([(0.4, 0.5), (0.6, 0.8)]) for k, v in (('random', a), ('amt', b))]
    g = gain(rows, 'amt', epochs=10)
    assert abs(g.mean - 0.15) < 1e-12 and g.test == 'paired' and g.n == 2

def test_paired_difference_equals_scipys():
    "The paired interval and p equal scipy's one-sample t on the differences (ttest_rel), for 2 to 12 seeds."
    for n in range(2, 13):
        a = [0.5 + 0.03 * ((3 * k) % 7) for k in range(n)]; b = [0.45 + 0.02 * ((5 * k) % 4) for k in range(n)]
        d = paired_diff(a, b); diffs = [x - y for x, y in zip(a, b)]
        lo, hi = scipy.stats.t.interval(0.95, n - 1, loc=sum(diffs) / n, scale=scipy.stats.sem(diffs))
        assert abs(d.half - (hi - lo) / 2) < 1e-12 and abs(d.mean - (hi + lo) / 2) < 1e-12
        assert abs(d.p - scipy.stats.ttest_rel(a, b).pvalue) < 1e-12 and d.df == n - 1
        assert difference(dict(enumerate(a)), dict(enumerate(b))) == d

def test_welch_difference_equals_scipys():
    "Welch's interval (Welch-Satterthwaite df) and p equal scipy's ttest_ind(equal_var=False) for unequal seed sets."
    for na, nb in [(3, 5), (5, 3), (2, 7), (4, 4)]:
        a = [0.55 + 0.02 * ((3 * k) % 5) for k in range(na)]; b = [0.48 + 0.035 * ((2 * k) % 3) for k in range(nb)]
        w = welch_diff(a, b); r = scipy.stats.ttest_ind(a, b, equal_var=False)
        va, vb = scipy.stats.tvar(a) / na, scipy.stats.tvar(b) / nb
        df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
        lo, hi = scipy.stats.t.interval(0.95, df, loc=sum(a) / na - sum(b) / nb, scale=(va + vb) ** 0.5)
        assert abs(w.half - (hi - lo) / 2) < 1e-12 and abs(w.df - df) < 1e-9 and abs(w.p - r.pvalue) < 1e-12
        lo, hi = r.confidence_interval(0.95)                                          # scipy's own (>= 1.11, the floor)
        assert abs(w.half - (hi - lo) / 2) < 1e-12 and abs(w.df - r.df) < 1e-9
        other = {s + 10: v for s, v in enumerate(b)}                                  # different seeds: Welch, never pairs
        assert difference(dict(enumerate(a)), other) == w

def test_holm_hand_worked():
    "Holm by hand: p = 0.01, 0.04, 0.03, 0.005; sorted x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04; carried forward: 0.06."
    assert [round(q, 12) for q in holm([0.01, 0.04, 0.03, 0.005])] == [0.03, 0.06, 0.06, 0.02]
    assert holm([0.5, 0.5]) == [1.0, 1.0] and holm([]) == []

def test_primary_family_on_the_committed_sweep():
    "The declared family, restricted to the methods present: amt, semmae, block x probe, fine-tune at the longest budget."
    rows = json.loads((ROOT / 'bench' / 'sweep.json').read_text())['rows']
    fam = primary_family(rows)
    E = max(r['epochs'] for r in rows)
    present = [(m, k) for m, ref, k, _ in PRIMARY if any(r['method'] == m and r['epochs'] == E for r in rows)]
    assert [(c['method'], c['key']) for c in fam] == present and all(c['epochs'] == E and c['ref'] == 'random' for c in fam)
    for c in fam:   # a method with one seed so far has no test yet: it stays in the family at Holm-adjusted p = 1
        if c['diff'].n < 2: assert (c['diff'].test, c['p_holm'], c['verdict']) == ('none', 1., 'fewer than two seeds')
        else:           # paired when the method ran random's seeds, Welch while it has fewer (a sweep still running)
            same = set(seed_values(rows, c['method'], c['key'], E)) == set(seed_values(rows, 'random', c['key'], E))
            assert c['p_holm'] >= c['diff'].p and c['diff'].test == ('paired' if same else 'welch')

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
    point = dict(n_train=64, n_test=40, n_finetune=64, finetune_epochs=1, finetune_from=1, part_steps=2)
    kept = run_cell('random', 1, 0, tmp_path / 'a', point)
    shutil.rmtree(tmp_path / 'a' / 'runs')                             # only cells/ survives, as in the repository
    row = run_cell('semmae', 1, 0, tmp_path / 'a', point)
    ref = run_cell('semmae', 1, 0, tmp_path / 'b', point)               # the same cell with random's weights at hand
    assert run_cell('random', 1, 0, tmp_path / 'a', point) == kept       # random's row is read, not recomputed
    assert _strip([row]) == _strip([ref])

def test_fill_alignment_gives_a_cell_its_own_start_and_middle(tmp_path):
    """bench/sweep_fill_alignment.py gives a finished cell the start and middle fields its run measured: by one draw, by replaying
    the run to its middle, or (SemMAE) with stage 1 run again on random's weights, which must reproduce the row's part scores."""
    import importlib.util
    from semmae_edu.experiments import START_COLUMNS, MID_COLUMNS, POINT
    spec = importlib.util.spec_from_file_location('sweep_fill_alignment', ROOT / 'bench' / 'sweep_fill_alignment.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    point = POINT | dict(n_train=64, n_test=40, n_finetune=64, finetune_epochs=1, finetune_from=1, part_steps=3)
    moments = START_COLUMNS + MID_COLUMNS
    for method in ('attmask', 'semmae-true', 'semmae'):   # replayed (reads the weights) / one draw (the epoch) / stage 1 again
        row = run_cell(method, 2, 0, tmp_path, point)
        assert all(row[k] is not None for k in START_COLUMNS[:4] + MID_COLUMNS[:4])   # choice_on_object: None where nothing ranks
        bare = {k: v for k, v in row.items() if k not in moments}
        filled = mod.fill_fields(bare, point, tmp_path)
        assert {k: filled[k] for k in moments} == {k: row[k] for k in moments}, method
    cell = tmp_path / 'cells' / 'attmask-e2-s0.json'
    cell.write_text(json.dumps({k: v for k, v in json.loads(cell.read_text()).items() if not k.startswith('mid_')}))
    assert mod.missing(tmp_path) == [cell]
    with pytest.raises(ValueError, match='learned parts'): mod.fill_fields(bare, point)               # random's weights not at hand
    with pytest.raises(ValueError, match='did not reproduce'): mod.fill_fields(bare | dict(part_miou=0.5), point, tmp_path)
