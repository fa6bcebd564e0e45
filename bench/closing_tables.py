"""The tables the closing notes of issues 18 and 19 give, computed from a sweep.json (none typed by hand).

    python bench/closing_tables.py                      # bench/sweep.json
    python bench/closing_tables.py --sweep /tmp/sw/sweep.json

Prints, in markdown: the cells present against the planned grid; the gate and random's flattening (`gate_reading`); the
primary family with Holm-adjusted p-values (`primary_reading`); where each strategy's masks fall, start → middle → end,
per budget (`alignment_table`); each new method's paired gain over random (ColorMAE, HPM: linear probe and fine-tuned,
every budget; `stats.gain`, the one difference test); and the CPU time the cells recorded, by device.
"""
import argparse, json, sys
from collections import defaultdict
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from semmae_edu.report import gate_reading, primary_reading, alignment_table, sweep_config
from semmae_edu.stats import gain, fmt_diff

NEW = ('colormae', 'hpm')   # issue 19's methods

def grid(sweep:dict) -> str:
    "Cells present per budget against the planned seeds."
    rows, plan = sweep['rows'], sweep.get('seeds') or {}
    lines = []
    for E in sweep.get('budgets') or sorted({r['epochs'] for r in rows}):
        have = defaultdict(int)
        for r in rows:
            if r['epochs'] == E: have[r['method']] += 1
        lines.append(f"- {E} epochs: " + ', '.join(f"{m} {have[m]}/{n}" for m, n in plan.items()))
    return '\n'.join(lines)

def new_gains(rows:list) -> str:
    "ColorMAE's and HPM's difference from random at every budget they ran (`stats.gain`: paired by seed, or Welch)."
    out = ['| method | epochs | linear probe − random | fine-tuned − random |', '|---|---|---|---|']
    for m in NEW:
        for E in sorted({r['epochs'] for r in rows if r['method'] == m}):
            d = [gain(rows, m, 'random', k, E) for k in ('probe_mean', 'finetune')]
            out.append(f"| {m} | {E} | " + ' | '.join(fmt_diff(x) if x.n_a else '–' for x in d) + ' |')
    return '\n'.join(out) if len(out) > 2 else '(no ColorMAE or HPM cell yet)'

def cost(rows:list) -> str:
    "Recorded CPU time (cells' `seconds`, one thread each) by device."
    by = defaultdict(lambda: [0, 0.])
    for r in rows:
        by[r.get('device', '?')][0] += 1; by[r.get('device', '?')][1] += r.get('seconds') or 0.
    return '\n'.join(f"- {dev}: {n} cells, {s / 3600:.1f} CPU-h" for dev, (n, s) in by.items())

def main(path:Path) -> str:
    sweep = json.loads(path.read_text())
    rows, cfg = sweep['rows'], sweep_config(sweep)
    parts = [f"## Cells ({len(rows)})\n\n{grid(sweep)}",
             "## The gate\n\n" + gate_reading(rows, cfg.get('n_test'), planned=sweep.get('seeds')),
             "## The primary family\n\n" + primary_reading(rows, planned=sweep.get('seeds')),
             "## Where the masks fall\n\n" + '\n\n'.join(t for E in sorted({r['epochs'] for r in rows}, reverse=True)
                                                      if (t := alignment_table(rows, E))),
             "## ColorMAE and HPM against random (the one difference test: paired by seed when both ran the same seeds)\n\n" + new_gains(rows),
             "## Recorded cost\n\n" + cost(rows)]
    return '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    ap = argparse.ArgumentParser(); ap.add_argument('--sweep', type=Path, default=ROOT / 'bench' / 'sweep.json')
    print(main(ap.parse_args().sweep))
