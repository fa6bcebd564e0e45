"""Benchmark: what ColorMAE and HPM cost next to MAE's random masking, measured side by side in one run.

    python bench/bench_zoo.py                  # plans for N=256 on 8x8 and 14x14 grids; micro-MAE training steps, batch 64, CPU
    python bench/bench_zoo.py --quick          # fewer repeats
    python bench/bench_zoo.py --out bench/zoo.json

Plans: `random_masking`, `ColorMAEStrategy` (bank made once, not timed; windows cut per call) and `hpm_masking`
(given the teacher's scores). Steps: one optimizer step of the micro MAE (chapter 03) at 32 px with each strategy,
through the three hooks of `strategy_steps` (chapter 09): HPM's step adds the teacher's forward pass on the whole
images, the loss predictor, its relative loss and the EMA update. The strategies are timed round-robin (one repeat
of each in turn), so a machine shared with other work slows all of them alike; the ratios are what to read.
"""
import argparse, json, platform, statistics, time
import torch
from semmae_edu.synthetic import rendered, SyntheticParts
from semmae_edu.data import normalize
from semmae_edu.masking import RandomStrategy, random_masking
from semmae_edu.mae import mae_vit_micro_patch4
from semmae_edu.zoo import ColorMAEStrategy, HPMStrategy, hpm_masking, ema_for


def round_robin(fns:dict, reps:int, warmup:int=2) -> dict:
    "Median seconds per call of each function, timed in turns."
    for f in fns.values():
        for _ in range(warmup): f()
    ts = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t = time.perf_counter(); f(); ts[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in ts.items()}


def plan_costs(n:int, h:int, reps:int) -> dict:
    g = torch.Generator().manual_seed(0)
    batch = {'image': torch.zeros(n, 3, 4 * h, 4 * h)}
    color, scores = ColorMAEStrategy(), torch.randn(n, h * h, generator=g)
    return round_robin({'random': lambda: random_masking(n, h * h, 0.75, generator=g),
                        'colormae': lambda: color(batch, 4, g),
                        'hpm (given scores)': lambda: hpm_masking(scores, 0.75, 0.5, g)}, reps)


def step_costs(batch_size:int, reps:int) -> dict:
    imgs = rendered(seed=0, n=256, size=32)['image']
    norm = lambda x: normalize(x, SyntheticParts.mean, SyntheticParts.std)
    fns = {}
    for name, s in (('random', RandomStrategy()), ('colormae', ColorMAEStrategy()), ('hpm', HPMStrategy(image_transform=norm, ema=ema_for(8)))):
        torch.manual_seed(0)
        mae = mae_vit_micro_patch4()
        head = s.attach(mae) if hasattr(s, 'attach') else None
        opt = torch.optim.AdamW([p for m in (mae, head) if m is not None for p in m.parameters() if p.requires_grad], lr=1e-3)
        s.epoch_start(7, 8)
        g = torch.Generator().manual_seed(0)
        def step(s=s, mae=mae, head=head, opt=opt, g=g):
            idx = torch.randint(len(imgs), (batch_size,), generator=g)
            plan = s({'image': imgs[idx]}, 4, g)
            x = norm(imgs[idx])
            out = mae(x, plan)
            loss = out[0] + head(x, out) if head is not None else out[0]
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
            if hasattr(s, 'after_step'): s.after_step(mae)
        fns[name] = step
    return round_robin(fns, reps)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--out', default=None, help='write the results as JSON here')
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    reps = 5 if a.quick else 20
    res = dict(machine=platform.processor() or platform.machine(), torch=torch.__version__, threads=a.threads, reps=reps,
               plans_8x8=plan_costs(256, 8, reps * 5), plans_14x14=plan_costs(256, 14, reps * 5), steps_b64=step_costs(64, reps))
    for key in ('plans_8x8', 'plans_14x14', 'steps_b64'):
        base = res[key]['random']
        print(f"{key}: " + ', '.join(f"{k} {v * 1e3:.2f} ms ({v / base:.2f}x random)" for k, v in res[key].items()))
    if a.out:
        with open(a.out, 'w') as f: json.dump(res, f, indent=1)
    return res


if __name__ == '__main__': main()
