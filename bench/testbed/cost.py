"""CPU-hours of the issue-18 sweep from measured throughputs (bench/testbed/curves/*.json, finetune.json).
python cost.py [--budgets 250,1000,4000] [--n-train 8192] [--n-test 2000] [--n-ft 1000] [--ft-epochs 20] [--seeds 5]
Prints per-cell and whole-sweep CPU seconds, at the throughput measured here under load and on a quiet machine
(the guide's 450 img/s for the micro MAE; every other rate scaled by the same factor)."""
import argparse, json, math
from pathlib import Path
HERE = Path(__file__).parent

def measured():
    "Throughputs measured in this session (images per CPU-second, loaded machine), from the committed records."
    c = json.loads((HERE / 'curves' / 'shared-micro-const-b64.json').read_text())['curve']
    last = c[-1]
    pre = last['images'] / last['train_cpu_s']
    inf = min((4096 + 2000) / p['feat_cpu_s'] for p in c)                 # encoder forward, 65 tokens, both pools in one pass
    probe = max(p['eval_cpu_s'] - p['feat_cpu_s'] for p in c) / 4096      # the two probes (mean, CLS), per training image
    ft = [r for r in json.loads((HERE / 'finetune.json').read_text())]
    ftr = sum(r['images_per_cpu_s'] for r in ft) / len(ft)
    return dict(pretrain=pre, inference=inf, probe_s_per_img=probe, finetune=ftr)

METHODS = ('random', 'amt', 'amt-middle', 'semmae', 'semmae-true', 'block', 'attmask', 'colormae', 'hpm')

def cell_seconds(method, steps, r, a, longest):
    "CPU seconds of one (method, budget, seed) cell."
    n_img = steps * a.batch
    pre = n_img / r['pretrain']
    epochs = max(1, math.ceil(n_img / a.n_train))
    extra = 0.
    if method in ('amt', 'amt-middle', 'attmask'):            # attention bank: every ~5 % of the epochs from 5 %, one pass over the training set each
        every = max(1, math.floor(0.05 * epochs + 0.5)); start = max(1, round(0.05 * epochs))
        n_ref = len(range(start, epochs, every)) if epochs > 1 else 0
        extra += n_ref * a.n_train / r['inference']
    if method == 'hpm': extra += n_img / r['inference'] * 1.1   # EMA teacher on the whole image every step (+ the loss-predictor head)
    if method == 'semmae':                                     # stage 1: 300 steps of 64 on the frozen encoder (+ its decoder), part bank over the training set
        extra += 2 * 300 * 64 / r['inference'] + a.n_train / r['inference']
    ev = (a.n_train + a.n_test) / r['inference'] + a.n_train * r['probe_s_per_img'] * (a.n_train / 4096) ** 0.5
    ft = a.n_ft * a.ft_epochs / r['finetune'] if (longest or a.ft_all) else 0.
    return dict(pretrain=pre, extra=extra, eval=ev, finetune=ft, total=pre + extra + ev + ft)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--budgets', default='250,1000,4000'); ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--n-train', type=int, default=8192); ap.add_argument('--n-test', type=int, default=2000)
    ap.add_argument('--n-ft', type=int, default=1000); ap.add_argument('--ft-epochs', type=int, default=20)
    ap.add_argument('--ft-all', action='store_true', help='fine-tune at every budget (default: the longest only)')
    ap.add_argument('--seeds', type=int, default=5); ap.add_argument('--quiet-rate', type=float, default=450.)
    ap.add_argument('--json', default='')
    ap.add_argument('--library', action='store_true',
                    help="the library's sweep: semmae_edu.experiments' BUDGETS (epochs of n_train), POINT and n_seeds, "
                         "fine-tuning at the longest budget (finetune_from)")
    a = ap.parse_args()
    seeds = lambda m: a.seeds
    if a.library:
        from semmae_edu.experiments import BUDGETS, POINT, n_seeds
        a.n_train, a.n_test, a.batch = POINT['n_train'], POINT['n_test'], POINT['batch_size']
        a.n_ft, a.ft_epochs, a.ft_all = POINT['n_finetune'], POINT['finetune_epochs'], False   # budgets >= finetune_from: the longest
        a.budgets = ','.join(str(E * a.n_train // a.batch) for E in BUDGETS)
        seeds = n_seeds
    r = measured()
    budgets = [int(s) for s in a.budgets.split(',')]
    rows, total = [], 0.
    for m in METHODS:
        for s in budgets:
            c = cell_seconds(m, s, r, a, s == max(budgets))
            rows.append(dict(method=m, steps=s, seeds=seeds(m), **c)); total += seeds(m) * c['total']
    base = seeds('pixels') * ((a.n_train + a.n_test) / r['inference'] + a.n_train * r['probe_s_per_img']        # untrained
                      + a.n_ft * a.ft_epochs / r['finetune'])                                           # scratch
    base += 600.                                                                                        # pixels: one converged probe (deterministic)
    total += base
    q = a.quiet_rate / r['pretrain']
    print('measured (loaded machine), images per CPU-s:', {k: round(v, 4) for k, v in r.items()}, f' quiet factor {q:.2f}')
    for row in rows:
        if row['steps'] == max(budgets) or row['method'] == 'random':
            print(f"{row['method']:12s} {row['steps']:6d} steps: pretrain {row['pretrain']:6.0f}s extra {row['extra']:5.0f}s "
                  f"eval {row['eval']:4.0f}s finetune {row['finetune']:5.0f}s total {row['total']:6.0f}s")
    print(f"baselines {base / 3600:.2f} h; sweep total {total / 3600:.1f} CPU-h loaded, {total / 3600 / q:.1f} CPU-h quiet "
          f"({len(METHODS)} methods x {len(budgets)} budgets x seeds {sorted({row['seeds'] for row in rows})})")
    if a.json:
        Path(a.json).write_text(json.dumps(dict(args=vars(a), rates=r, quiet_factor=q, cells=rows, baselines_s=base,
                                                total_cpu_h_loaded=total / 3600, total_cpu_h_quiet=total / 3600 / q), indent=1))

if __name__ == '__main__':
    main()
