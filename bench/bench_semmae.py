"""Benchmark: SemMAE semantic mask generation vs a tiny-MAE training step, measured side by side in one run.

    python bench/bench_semmae.py             # N=256, L=196 (224 px, patch 16), K=8 parts, CPU
    python bench/bench_semmae.py --quick     # fewer repeats
    python bench/bench_semmae.py --threads 1 --masking-only   # mask generation alone (no training step)

The training step is the project's MAE (`semmae_edu.mae`, ViT-Tiny sizes: `mae_vit_tiny_patch4(img_size=224,
patch_size=16)`) when that module is importable, and otherwise a STAND-IN of the same size (always measured):
12 pre-norm `nn.TransformerEncoderLayer(192, 3, 768)` blocks on 49 visible tokens + CLS, 4 decoder blocks
(128 wide, 4 heads) on 196 + 1 tokens, pixel loss on the masked patches; forward + backward + AdamW, batch 256.
Times are the minimum (best case, least disturbed by other processes) and the median of the repeats.
"""
import argparse, statistics, time
import torch
from torch import nn
from semmae_edu.masking import random_masking
from semmae_edu.semmae import semantic_masking, SemMAEStrategy


def timeit(fn, reps, warmup=2):
    for _ in range(warmup): fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return min(ts), statistics.median(ts)


def blob_parts(n, h, w, k, g):
    "Random part layouts [n, h*w]: each patch takes the nearest of k random centres (Voronoi cells)."
    centres = torch.rand(n, k, 2, generator=g)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing='ij')
    pts = torch.stack([yy, xx], -1).reshape(1, h * w, 1, 2)
    return ((pts - centres[:, None]) ** 2).sum(-1).argmin(-1)            # [n, h*w]


class StandInMAE(nn.Module):
    "Not the project's MAE: a timm-free stand-in with ViT-Tiny MAE sizes, for timing only."
    def __init__(self, L=196, p=16, dim=192, depth=12, heads=3, ddim=128, ddepth=4, dheads=4):
        super().__init__()
        self.p = p
        self.embed = nn.Linear(3 * p * p, dim)
        self.pos = nn.Parameter(torch.zeros(1, L, dim)); self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        layer = lambda d, h: nn.TransformerEncoderLayer(d, h, 4 * d, dropout=0.0, activation='gelu', batch_first=True, norm_first=True)
        self.enc = nn.ModuleList([layer(dim, heads) for _ in range(depth)]); self.norm = nn.LayerNorm(dim)
        self.dembed = nn.Linear(dim, ddim); self.mask_token = nn.Parameter(torch.zeros(1, 1, ddim))
        self.dpos = nn.Parameter(torch.zeros(1, L + 1, ddim))
        self.dec = nn.ModuleList([layer(ddim, dheads) for _ in range(ddepth)]); self.dnorm = nn.LayerNorm(ddim)
        self.pred = nn.Linear(ddim, 3 * p * p)

    def forward(self, imgs, plan):
        n, p = imgs.shape[0], self.p
        patches = imgs.unfold(2, p, p).unfold(3, p, p).permute(0, 2, 3, 4, 5, 1).reshape(n, -1, 3 * p * p)
        x = self.embed(patches) + self.pos
        x = x.gather(1, plan.ids_keep[..., None].expand(-1, -1, x.shape[-1]))
        x = torch.cat([self.cls.expand(n, -1, -1), x], 1)
        for b in self.enc: x = b(x)
        x = self.dembed(self.norm(x))
        L = plan.shape[1]
        t = torch.cat([x[:, 1:], self.mask_token.expand(n, L - plan.n_visible, -1)], 1)
        t = t.gather(1, plan.ids_restore[..., None].expand(-1, -1, t.shape[-1]))
        x = torch.cat([x[:, :1], t], 1) + self.dpos
        for b in self.dec: x = b(x)
        pred = self.pred(self.dnorm(x))[:, 1:]
        loss = ((pred - patches) ** 2).mean(-1)
        return (loss * plan.mask).sum() / plan.mask.sum()


def step_fn(model, imgs, plan, real):
    opt = torch.optim.AdamW(model.parameters(), lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05)
    def step():
        loss = model(imgs, plan)[0] if real else model(imgs, plan)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--n', type=int, default=256); ap.add_argument('--k', type=int, default=8)
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: torch default)')
    ap.add_argument('--masking-only', action='store_true', help='time the mask generation, not the training step')
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    N, h, p, K = a.n, 14, 16, a.k
    L = h * h
    reps, step_reps = (10, 1) if a.quick else (50, 3)
    g = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, N={N}, L={L}, K={K}; times: min / median of repeats")

    parts = blob_parts(N, h, h, K, g)
    t_rand = timeit(lambda: random_masking(N, L, 0.75, generator=g), reps)
    t_sem = {lam: timeit(lambda: semantic_masking(parts, 0.75, lam, g, n_parts=K), reps) for lam in (1.0, 0.5, 0.0)}
    px = parts.view(N, h, 1, h, 1).expand(N, h, p, h, p).reshape(N, h * p, h * p).contiguous()  # the same parts as 224x224 pixel maps
    strategy = SemMAEStrategy(mask_ratio=0.75, n_parts=K)
    strategy.epoch_start(399, 800)                                       # lam = 0.75
    t_call = timeit(lambda: strategy({'parts': px}, p, g), max(3, reps // 5))

    ms = lambda t: f"{t[0] * 1e3:9.2f} / {t[1] * 1e3:9.2f} ms"
    if a.masking_only:
        print(f"  random_masking (MAE)                     : {ms(t_rand)}")
        for lam, t in t_sem.items(): print(f"  semantic_masking lam={lam:<4}                : {ms(t)}")
        print(f"  SemMAEStrategy call, [{N},224,224] part maps: {ms(t_call)}")
        return
    imgs = torch.rand(N, 3, h * p, h * p, generator=g)
    plan = semantic_masking(parts, 0.75, 0.5, g, n_parts=K)
    steps = {'stand-in tiny-MAE step': step_fn(StandInMAE(L, p), imgs, plan, real=False)}
    try:
        from semmae_edu.mae import mae_vit_tiny_patch4
        steps['semmae_edu.mae ViT-Tiny step'] = step_fn(mae_vit_tiny_patch4(img_size=h * p, patch_size=p), imgs, plan, real=True)
    except ImportError as e:
        print(f"(semmae_edu.mae not importable here: {e}; the stand-in only)")
    t_steps = {k: timeit(f, step_reps, warmup=1) for k, f in steps.items()}

    for name, ts in t_steps.items():
        print(f"\n{name} (fwd+bwd+AdamW, batch {N}): {ms(ts)}")
        pct = lambda t: f"{100 * t[0] / ts[0]:.3f} % / {100 * t[1] / ts[1]:.3f} %"
        print(f"  random_masking (MAE)                     : {ms(t_rand)} = {pct(t_rand)} of a step")
        for lam, t in t_sem.items():
            print(f"  semantic_masking lam={lam:<4}                : {ms(t)} = {pct(t)} of a step")
        print(f"  SemMAEStrategy call, [{N},224,224] part maps: {ms(t_call)} = {pct(t_call)} of a step (target <= 2 %)")
        print(f"     (majority pooling with semmae_edu.data.patch_parts + semantic_masking at lam=0.75)")


if __name__ == '__main__':
    main()
