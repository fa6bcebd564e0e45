"""README, chapter 10d and the sweep agree: the generated reading cells are exactly what `sweep_reading` says of bench/sweep.json,
and every number the README's reading states is recomputed here from bench/sweep.json with numpy and scipy, not with the
library's own statistics."""
import json, re, sys
from pathlib import Path
import numpy as np, pytest, scipy.stats
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'bench'))
from update_reading import reading_cell, MARK, TARGETS
from semmae_edu.report import sweep_reading
from semmae_edu.stats import PRIMARY, GATE

SWEEP = json.loads((ROOT / 'bench' / 'sweep.json').read_text())
ROWS = SWEEP['rows']
LONGEST = max(r['epochs'] for r in ROWS)

def _cell(nb):
    d = json.loads((ROOT / nb).read_text(encoding='utf-8'))
    return [''.join(c['source']) for c in d['cells'] if c['cell_type'] == 'markdown' and ''.join(c['source']).startswith(MARK)]

def _readme_reading() -> str:
    "The generated block of README.md: from the marker to the next level-2 heading."
    readme = (ROOT / 'README.md').read_text(encoding='utf-8')
    start = readme.index(MARK)
    return readme[start:readme.index('\n## ', readme.index('## What the sweep finds', start) + 3)]

def _seeds(method, key, epochs) -> dict:
    return {r['seed']: r[key] for r in ROWS if r['method'] == method and r['epochs'] == epochs and r.get(key) is not None}

def _diff(a:dict, b:dict):
    "a − b as scipy computes it: ttest_rel on the same seeds, else Welch's ttest_ind. (mean, half-width, p, test, n text)."
    if not a or not b: return (np.nan, np.nan, np.nan, 'no values', f"n={len(a)} vs {len(b)}")
    if min(len(a), len(b)) < 2:   # no interval: the difference of the means (of the pairs, when the seeds are the same)
        return (np.mean(list(a.values())) - np.mean(list(b.values())), np.nan, np.nan, 'none', '')
    if set(a) == set(b):
        x, y = np.array([a[s] for s in sorted(a)]), np.array([b[s] for s in sorted(a)])
        res, d = scipy.stats.ttest_rel(x, y), x - y
        lo, hi = scipy.stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=scipy.stats.sem(d))
        return d.mean(), (hi - lo) / 2, res.pvalue, 'paired', f"n={len(d)}"
    x, y = np.array(list(a.values())), np.array(list(b.values()))
    res = scipy.stats.ttest_ind(x, y, equal_var=False)
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    df = (va + vb) ** 2 / (va ** 2 / (len(x) - 1) + vb ** 2 / (len(y) - 1))
    half = scipy.stats.t.ppf(0.975, df) * np.sqrt(va + vb)
    assert np.isclose((x.mean() - y.mean()) / np.sqrt(va + vb), res.statistic, rtol=1e-12)
    return x.mean() - y.mean(), half, res.pvalue, 'Welch', f"n={len(x)} vs {len(y)}"

def _fmt_diff(d) -> str:
    if d[3] == 'no values': return f"no values ({d[4]})"
    if d[3] == 'none': return f"{100 * d[0]:+.1f} points (fewer than two seeds: no interval)"
    return f"{100 * d[0]:+.1f} ± {100 * d[1]:.1f} points ({d[3]}, {d[4]})"

def _fmt_p(p) -> str: return '–' if np.isnan(p) else '< 0.001' if p < 0.001 else f"{p:.3f}"

def _mean_interval(v) -> str:
    v = np.array(list(v))
    if len(v) < 2: return f"{v.mean():.3f} (n={len(v)})"
    h = scipy.stats.t.ppf(0.975, len(v) - 1) * scipy.stats.sem(v)
    return f"{v.mean():.3f} ± {h:.3f} (n={len(v)})"

def test_reading_cells_equal_the_sweep():
    for nb in TARGETS: assert _cell(nb) == [reading_cell(SWEEP, nb)], f"{nb}: run python bench/update_reading.py"

def test_readme_reading_is_the_generated_one():
    readme = (ROOT / 'README.md').read_text(encoding='utf-8')
    assert reading_cell(SWEEP, 'nbs/index.ipynb') in readme, "README.md: run python bench/update_reading.py"

def test_readme_probe_table_equals_the_sweep():
    "Every mean ± interval in the README's probe table, recomputed from bench/sweep.json."
    text = _readme_reading()
    head = next(l for l in text.splitlines() if l.startswith('| linear probe (mean-pooled) |'))
    budgets = [int(c.split()[0]) for c in head.strip('|').split('|')[1:]]
    lines = [l for l in text.splitlines()[text.splitlines().index(head) + 2:] if l.startswith('| ')]
    assert budgets == sorted({r['epochs'] for r in ROWS}) and len(lines) == len({r['method'] for r in ROWS if r.get('probe_mean') is not None})
    for l in lines:
        method, *cells = [c.strip() for c in l.strip('|').split('|')]
        for E, cell in zip(budgets, cells):
            v = _seeds(method, 'probe_mean', E)
            assert cell == (_mean_interval(v.values()) if v else '–'), (method, E)

def test_readme_primary_family_equals_the_sweep():
    "The primary family's rows, p-values, Holm-adjusted p-values and verdicts, recomputed from bench/sweep.json."
    text = _readme_reading()
    rows = [l for l in text.splitlines() if re.match(r'^\| \S+ − random, ', l)]
    declared = [(m, ref, k) for m, ref, k, budget in PRIMARY if budget == 'longest']
    present = [(m, ref, k) for m, ref, k in declared if any(r['method'] == m and r['epochs'] == LONGEST for r in ROWS)]
    assert len(rows) == len(present)
    if not present:
        assert 'None of its methods has cells in this sweep yet.' in text
        return
    assert f"the {len(present)} comparisons of" in text and f"at {LONGEST} epochs" in text
    diffs = [_diff(_seeds(m, k, LONGEST), _seeds(ref, k, LONGEST)) for m, ref, k in present]
    # a comparison without a p-value yet (fewer than two seeds) stays in the family at p = 1: it counts in Holm's m
    p = np.array([1. if np.isnan(d[2]) else d[2] for d in diffs]); m = len(p); order = np.argsort(p, kind='stable')
    holm = np.empty(m); holm[order] = np.minimum(1, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    names = {'probe_mean': 'linear probe (mean-pooled)', 'finetune': 'fine-tuned'}
    for line, (meth, ref, k), d, q in zip(rows, present, diffs, holm):
        verdict = ('fewer than two seeds' if d[3] == 'none' else 'not separated' if q >= 0.05 else
                   'better' if d[0] > 0 else 'worse')
        assert line == f"| {meth} − {ref}, {names[k]} | {_fmt_diff(d)} | {_fmt_p(d[2])} | {_fmt_p(q)} | {verdict} |"
    won, few = int((holm < 0.05).sum()), sum(d[3] == 'none' for d in diffs)   # few: comparisons with no interval yet
    said = ('none has two seeds yet, so none has an interval or a verdict' if few == m else f"{won} of {m} separated" if won
            else f"none of the {m} is separated" if not few else f"none of the {m - few} with an interval is separated")
    assert said in text
    if 0 < few < m: assert f"; {few} {'has' if few == 1 else 'have'} fewer than two seeds, so no interval yet (" in text
    planned = SWEEP.get('seeds') or {}   # seeds still to come at the longest budget: the family is interim, each side named
    short = {x: len(_seeds(x, 'probe_mean', LONGEST)) for x in ['random'] + list(dict.fromkeys(x for x, *_ in present))}
    short = [f"{x} {n} of {planned[x]}" for x, n in short.items() if n < planned.get(x, 0)]
    if short: assert f"**Interim**: the sweep has still to run seeds it plans at {LONGEST} epochs ({', '.join(short)});" in text
    assert ('**Interim**' in text) == bool(short)

def test_readme_gate_equals_the_sweep():
    "The gate's lines: pixels' probe, random − pixels (probe), random − scratch (fine-tuned), seeds, test images, flattening."
    text = _readme_reading()
    px = _seeds('pixels', 'probe_mean', LONGEST)
    probe = _diff(_seeds('random', 'probe_mean', LONGEST), px)
    ft = _diff(_seeds('random', 'finetune', LONGEST), _seeds('scratch', 'finetune', LONGEST))
    beats = lambda d: d[0] >= GATE['margin'] and d[0] - d[1] > 0
    n_test = (SWEEP.get('config') or SWEEP['point'])['n_test']
    sides = dict(random=len(_seeds('random', 'probe_mean', LONGEST)), pixels=len(px), scratch=len(_seeds('scratch', 'finetune', LONGEST)))
    seeds = list(sides.values())
    checks = [bool(px) and np.mean(list(px.values())) <= GATE['pixels_probe'], beats(probe), beats(ft),
              min(seeds) >= GATE['seeds'], n_test >= GATE['n_test']]
    plan = SWEEP.get('seeds') or {}
    pending = any(n < plan.get(m, 0) for m, n in sides.items()) and checks[4]   # the sweep still runs the gate's seeds
    def word(ok, seeds_line=False, diff=None):
        if not pending: return 'passes' if ok else '**fails**'
        if seeds_line: return 'not yet, the sweep plans ' + ', '.join(f"{m} {plan.get(m, 0)}" for m in sides)
        if diff is not None and diff[3] in ('none', 'no values'): return 'not decided yet (no interval yet)'
        return f"not decided yet (so far it {'passes' if ok else 'fails'})"
    px_said = _mean_interval(px.values()) if px else 'no cells'
    assert f"- raw pixels' linear probe: {px_said}; required ≤ 0.35: {word(checks[0])}." in text
    assert f"- random − pixels on the linear probe: {_fmt_diff(probe)}; required ≥ +10 points with the interval above 0: {word(checks[1], diff=probe)}." in text
    assert f"- random − scratch fine-tuned: {_fmt_diff(ft)}; required ≥ +10 points with the interval above 0: {word(checks[2], diff=ft)}." in text
    assert f"- seeds: random {seeds[0]}, pixels {seeds[1]}, scratch {seeds[2]}; required ≥ 5 on every side: {word(checks[3], True)}." in text
    assert f"- test images: {n_test:,}; required ≥ 2,000: {'passes' if checks[4] else '**fails**'}." in text
    assert ('**not decided yet**' if pending else '**it passes**' if all(checks) else '**it fails**') in text
    budgets = sorted({r['epochs'] for r in ROWS})
    if len(budgets) > 1 and min(len(_seeds('random', 'probe_mean', E)) for E in budgets[-2:]) >= 2:
        prev = budgets[-2]
        flat = _diff(_seeds('random', 'probe_mean', LONGEST), _seeds('random', 'probe_mean', prev))
        assert f"random's linear probe gains {_fmt_diff(flat)} from {prev} to {LONGEST} epochs" in text
    else: assert "random's linear probe gains" not in text
    acc = list(_seeds('random', 'probe_mean', LONGEST).values()); who = "random masking's"
    if not acc: acc, who = [r['probe_mean'] for r in ROWS if r['epochs'] == LONGEST and r.get('probe_mean') is not None], 'the mean'
    acc = np.mean(acc); se = np.sqrt(acc * (1 - acc) / n_test)
    assert f"√(p(1−p)/n) = {100 * se:.1f} points at {who} probe accuracy {acc:.3f}" in text
    assert f"±{100 * scipy.stats.norm.ppf(0.975) * se:.1f} points at 95 %" in text

def test_gate_verdict_comes_first():
    "The reading says whether the gate passes, fails or is not decided yet before any comparison of masks."
    text = _readme_reading()
    verdicts = [v for v in ('**it passes**', '**it fails**', '**not decided yet**') if v in text]
    assert len(verdicts) == 1 and text.index(verdicts[0]) < text.index('**The primary family**')

def _variants():
    "The committed sweep and cut-down versions of it (one budget, fewer seeds, one seed, no baselines)."
    yield SWEEP
    budgets = sorted({r['epochs'] for r in ROWS})
    for keep in (lambda r: r['epochs'] == budgets[0], lambda r: r['seed'] < 2, lambda r: r['seed'] == 0,
                 lambda r: r['method'] not in ('pixels', 'scratch', 'untrained'), lambda r: r['method'] in ('random', 'amt')):
        yield dict(SWEEP, rows=[r for r in ROWS if keep(r)])
    yield dict(config=dict(data='SyntheticParts', n_train=64, n_test=2000, probe='L-BFGS'), rows=ROWS)

@pytest.mark.parametrize('full', [False, True])
def test_no_generated_text_says_no_difference(full):
    "'Not separated' is never written as 'no difference', in any generated text."
    for sweep in _variants():
        assert 'no difference' not in sweep_reading(sweep, full=full).lower()
    for text in [(ROOT / 'README.md').read_text(encoding='utf-8')] + [c for nb in TARGETS for c in _cell(nb)]:
        assert 'no difference' not in text.lower()
    from semmae_edu.demo import _notes
    from semmae_edu.experiments import POINT
    assert not any('no difference' in n.lower() for n in _notes(('random', 'amt', 'semmae-true'), 30, 0, POINT, None))

def test_no_stale_claims():
    readme = (ROOT / 'README.md').read_text(encoding='utf-8')
    for stale in ('3.2 ± 1.9', 'demo_seeds', 'over five seeds (chapter 09)', 'are not separated on the linear probe'):
        assert stale not in readme
    assert not (ROOT / 'bench' / 'demo_seeds.json').exists()

def test_closing_tables_recount_the_sweep():
    """bench/closing_tables.py, the tables the issues' closing notes quote: its grid counts the rows per method and budget against
    the planned seeds, its ColorMAE/HPM gains are the one difference test recomputed with scipy, its cost sums the cells' seconds."""
    import closing_tables as ct
    plan = SWEEP.get('seeds') or {}
    for line in ct.grid(SWEEP).splitlines():
        E = int(re.match(r'- (\d+) epochs: ', line).group(1))
        said = dict(re.findall(r'(\S+) (\d+)/\d+', line))
        assert said == {m: str(sum(r['method'] == m and r['epochs'] == E for r in ROWS)) for m in plan}, E
    gains = ct.new_gains(ROWS).splitlines()[2:]
    assert len(gains) == len({(r['method'], r['epochs']) for r in ROWS if r['method'] in ct.NEW})
    for line in gains:
        m, E, *cells = [c.strip() for c in line.strip('|').split('|')]
        want = [_fmt_diff(_diff(_seeds(m, k, int(E)), _seeds('random', k, int(E)))) for k in ('probe_mean', 'finetune')]
        assert cells == [w if not w.startswith('no values') else '–' for w in want], (m, E)
    cost = {re.match(r'- (.+): \d+ cells, ', l).group(1): l for l in ct.cost(ROWS).splitlines()}
    for dev in {r.get('device', '?') for r in ROWS}:
        sel = [r for r in ROWS if r.get('device', '?') == dev]
        assert cost[dev] == f"- {dev}: {len(sel)} cells, {sum(r.get('seconds') or 0. for r in sel) / 3600:.1f} CPU-h"
