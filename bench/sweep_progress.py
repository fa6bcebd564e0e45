"""Where the running sweep stands against its cost plan: cells finished and planned, CPU-hours recorded, the ratio of
each finished cell's time to the plan's loaded estimate, and the CPU-hours the rest needs at the measured ratio.

    python bench/sweep_progress.py [--sweep bench/sweep.json] [--plan bench/testbed/cost_plan.json] [--device 'AMD EPYC']

A cell's `seconds` is its wall time in one one-thread worker, so it is its CPU time. Cells that were resumed after a
stop record only their last stretch and are left out of the ratios (their time is counted in the total). Method cells
still to run are projected at the median ratio of the finished method cells (the plan's estimate when none finished);
budget-free baselines (pixels, untrained, scratch) are run once per seed and counted at the mean of their finished seeds.
`--device` takes the ratio from the cells whose recorded device contains that text (the machine the rest will run on).
"""
import argparse, json, statistics
from pathlib import Path

BASELINES = ('pixels', 'untrained', 'scratch')

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--sweep', default='bench/sweep.json')
    ap.add_argument('--plan', default='bench/testbed/cost_plan.json')
    ap.add_argument('--resumed', default='', help='comma-separated method-eE-sS cells that were resumed (left out of the ratios)')
    ap.add_argument('--device', default='', help="the ratio from cells whose device contains this text (default: every cell)")
    a = ap.parse_args()
    sweep, plan = json.loads(Path(a.sweep).read_text()), json.loads(Path(a.plan).read_text())
    resumed = set(filter(None, a.resumed.split(',')))
    epochs_of = {s: E for s, E in zip(sorted({c['steps'] for c in plan['cells']}), sorted(sweep['budgets']))}
    est = {(c['method'], epochs_of[c['steps']]): c['total'] for c in plan['cells']}
    rows = sweep['rows']
    done = {(r['method'], r['epochs'], r['seed']): r['seconds'] for r in rows}
    device = {(r['method'], r['epochs'], r['seed']): r.get('device', '') for r in rows}
    planned = sum(sweep['seeds'][m] for m in sweep['seeds']) * len(sweep['budgets'])
    print(f"cells: {len(rows)} of {planned} planned; recorded {sum(done.values()) / 3600:.1f} CPU-h")
    ratios = [s / est[m, E] for (m, E, seed), s in done.items() if (m, E) in est and f"{m}-e{E}-s{seed}" not in resumed
              and a.device in device[m, E, seed]]
    ratio = statistics.median(ratios) if ratios else 1.0
    for (m, E, seed), s in sorted(done.items()):
        note = '' if (m, E) not in est else f"  plan {est[m, E]:6.0f} s, ratio {s / est[m, E]:.2f}"
        print(f"  {m:10s} {E:3d} epochs seed {seed}: {s:6.0f} s{note}{'  (resumed)' if f'{m}-e{E}-s{seed}' in resumed else ''}")
    rest = [(m, E, s) for m in sweep['seeds'] if m not in BASELINES for E in sweep['budgets'] for s in range(sweep['seeds'][m])
            if (m, E, s) not in done]
    base = {m: [v for (mm, _, _), v in done.items() if mm == m] for m in BASELINES}
    base_rest = [(m, s) for m in BASELINES if m in sweep['seeds'] for s in range(sweep['seeds'][m])
                 if not any((m, E, s) in done for E in sweep['budgets'])]
    need = sum(est[m, E] * ratio for m, E, _ in rest) + sum(statistics.mean(base[m]) if base[m] else 0 for m, _ in base_rest)
    print(f"method cells to run: {len(rest)}; baseline seeds to run: {len(base_rest)}; median ratio to the plan: {ratio:.2f} "
          f"(over {len(ratios)} cells{f' on {a.device!r}' if a.device else ''})")
    print(f"projected: {need / 3600:.1f} CPU-h more, {need / 3600 / 2:.1f} h of wall time on two workers")

if __name__ == '__main__': main()
