"""How fast does `SyntheticParts` make images, in one process?

Usage: OMP_NUM_THREADS=1 python bench/bench_data.py [--n 2000] [--repeats 5]

Renders `n` images at 32x32 and at 64x64 (`ds[i]`, the full item dict), `repeats` times each,
interleaved so both sizes see the same machine load, and prints the best run (the least disturbed
by other processes) in images per second of wall-clock time and of this process's CPU time.
Goal: >= 2,000 images/s at 32x32 on the 2-core CPU. No assertion: a report only.
"""
import argparse, os, time

def run(ds, n):
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n): ds[i]
    return n / (time.perf_counter() - t0), n / max(time.process_time() - c0, 1e-9)

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n', type=int, default=2000)
    ap.add_argument('--repeats', type=int, default=5)
    args = ap.parse_args()
    import torch, numpy as np
    from semmae_edu.synthetic import SyntheticParts
    torch.set_num_threads(1)
    sets = {s: SyntheticParts(n=args.n, size=s) for s in (32, 64)}
    for ds in sets.values(): run(ds, 50)                      # warm-up
    best = {s: (0., 0.) for s in sets}
    for r in range(args.repeats):
        for s, ds in sets.items():
            w, c = run(ds, args.n)
            best[s] = (max(best[s][0], w), max(best[s][1], c))
            print(f"run {r + 1}: {s}x{s}: {w:7.0f} img/s wall, {c:7.0f} img/s cpu")
    try: load = os.getloadavg()[0]
    except OSError: load = float('nan')
    print(f"\nbest of {args.repeats} x {args.n} images (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"load average {load:.2f}, numpy {np.__version__}, torch {torch.__version__}):")
    for s, (w, c) in best.items():
        print(f"  {s}x{s}: {w:7.0f} img/s wall, {c:7.0f} img/s cpu")
    print(f"  ratio 32x32 / 64x64 (wall): {best[32][0] / best[64][0]:.2f}")
    print(f"  32x32 vs the goal of 2,000 img/s (wall): {best[32][0] / 2000:.2f}x")

if __name__ == '__main__':
    main()
