"""Benchmark for chapter 04_amt: the cost of AMT's plans, what throwing saves, and what a bank refresh costs.

    python bench/bench_amt.py            # full run (a few minutes on a 2-core CPU)
    python bench/bench_amt.py --quick    # fewer repeats
    python bench/bench_amt.py --wall     # wall-clock time instead of this process's CPU time

Every ratio is measured side by side in one run (variants interleaved, medians), so a busy machine
slows both sides alike. Parts 2 and 3 need the MAE of chapter 03 (`semmae_edu.mae`).
"""
import argparse, os, platform, statistics, time
import torch
import torch.nn.functional as F

from semmae_edu.amt import AttentionBank, amt_masking
from semmae_edu.masking import random_masking

CLOCK = time.process_time   # this process's CPU time (other jobs on a shared machine disturb it much less); --wall: wall clock

def timeit(fns:dict, repeats:int, warmup:int=1) -> dict:
    "Median seconds per call of each function (CLOCK), calls interleaved round-robin."
    for _ in range(warmup):
        for f in fns.values(): f()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t = CLOCK(); f(); times[k].append(CLOCK() - t)
    return {k: statistics.median(v) for k, v in times.items()}

def plan_fns(N, size, p, g):
    "Plan makers for a batch of N images of size×size pixels with patches of p (L = (size/p)^2)."
    L = (size // p) ** 2
    pix = torch.rand(N, size, size, generator=g)                 # per-pixel weights, as a batch carries them
    return L, {
        'random 0.75': lambda: random_masking(N, L, 0.75, generator=g),
        'AMT low (pool + plan)': lambda: amt_masking(F.avg_pool2d(pix[:, None], p).flatten(1), 0.45, 0.40, 'low', g),
        'AMT middle (pool + plan)': lambda: amt_masking(F.avg_pool2d(pix[:, None], p).flatten(1), 0.45, 0.40, 'middle', g),
    }

def train_step_fn(model, opt, imgs, plan_fn):
    def step():
        loss = model(imgs, plan_fn())[0]
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    return step

def main(quick=False):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    N = 256
    reps = 5 if quick else 15
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
    print(f"# bench_amt: torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}, batch {N}, "
          f"clock: {'wall' if CLOCK is time.perf_counter else 'process CPU time'}, load average {load:.1f}")

    print("\n## 1. Plan generation, batch 256 (ms per batch)")
    gen = {}
    for size, p in [(32, 4), (224, 16)]:
        L, fns = plan_fns(N, size, p, g)
        t = timeit(fns, repeats=reps * 4)
        gen[L] = t
        print(f"L={L:3d} ({size}px, p={p}): " + ", ".join(f"{k} {v*1e3:.2f}" for k, v in t.items()))

    try:
        from semmae_edu.mae import mae_vit_tiny_patch4
    except ImportError:
        print("\n(parts 2-3 skipped: semmae_edu.mae is not available yet)"); return

    print("\n## 2. Tiny-MAE training step, batch 256 (s per step): random 0.75 vs AMT 0.45/0.40")
    steps = {}
    for size, p in [(32, 4), (224, 16)]:
        model = mae_vit_tiny_patch4(img_size=size, patch_size=p)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        imgs = torch.randn(N, 3, size, size, generator=g)
        L = model.num_patches
        w = torch.rand(N, L, generator=g)
        fns = {'random 0.75': train_step_fn(model, opt, imgs, lambda: random_masking(N, L, 0.75, generator=g)),
               'AMT 0.45/0.40': train_step_fn(model, opt, imgs, lambda: amt_masking(w, 0.45, 0.40, 'low', g))}
        t = timeit(fns, repeats=max(3, reps // 3))
        steps[L] = t
        print(f"L={L:3d}: random {t['random 0.75']:.3f} s, AMT {t['AMT 0.45/0.40']:.3f} s -> AMT/random = {t['AMT 0.45/0.40'] / t['random 0.75']:.2f}x")
        for k, v in gen[L].items():
            print(f"      plan '{k}' = {100 * v / t['random 0.75']:.2f}% of a random-masking step")

    print("\n## 3. Bank refresh vs one training epoch (tiny MAE, 32px, L=64)")
    n = 512 if quick else 1024
    model = mae_vit_tiny_patch4()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    data = torch.randn(n, 3, 32, 32, generator=g)
    ds = [dict(image=data[i], index=i) for i in range(n)]
    bank = AttentionBank(n, model.grid_size)
    def epoch():
        for s in range(0, n, N): train_step_fn(model, opt, data[s:s + N], lambda: random_masking(N, 64, 0.75, generator=g))()
    def refresh(): bank.refresh(model, ds, batch_size=N)
    t = timeit({'epoch (random 0.75)': epoch, 'refresh': refresh}, repeats=2 if quick else 3, warmup=1)
    r = t['refresh'] / t['epoch (random 0.75)']
    print(f"n={n}: epoch {t['epoch (random 0.75)']:.2f} s, refresh {t['refresh']:.2f} s -> refresh = {r:.2f} epochs; "
          f"every 40 epochs that adds {100 * r / 40:.1f}% to training time")

if __name__ == '__main__':
    ap = argparse.ArgumentParser(); ap.add_argument('--quick', action='store_true'); ap.add_argument('--wall', action='store_true')
    args = ap.parse_args()
    if args.wall: CLOCK = time.perf_counter
    main(args.quick)
