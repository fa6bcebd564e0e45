"""Benchmark: SemMAE semantic mask generation vs a tiny-MAE training step, measured side by side.

    python bench/bench_semmae.py            # N=256, L=196 (14x14 patches), K=8 parts, CPU
    python bench/bench_semmae.py --quick    # fewer repeats

The MAE model of `03_mae` is not written yet, so the training step is a STAND-IN of the same size as a
ViT-Tiny MAE: 12 pre-norm encoder layers (dim 192, 3 heads, MLP 768) on 49 visible tokens + CLS,
4 decoder layers (dim 128, 4 heads, MLP 512) on 196 + 1 tokens, a pixel loss on the masked patches,
forward + backward + AdamW step, batch 256. Patch 16 on 224 px gives L = 196.
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
    return statistics.median(ts)


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
        self.embed = nn.Linear(3 * p * p, dim)
        self.pos = nn.Parameter(torch.zeros(1, L, dim)); self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        layer = lambda d, h: nn.TransformerEncoderLayer(d, h, 4 * d, dropout=0.0, activation='gelu', batch_first=True, norm_first=True)
        self.enc = nn.ModuleList([layer(dim, heads) for _ in range(depth)]); self.norm = nn.LayerNorm(dim)
        self.dembed = nn.Linear(dim, ddim); self.mask_token = nn.Parameter(torch.zeros(1, 1, ddim))
        self.dpos = nn.Parameter(torch.zeros(1, L + 1, ddim))
        self.dec = nn.ModuleList([layer(ddim, dheads) for _ in range(ddepth)]); self.dnorm = nn.LayerNorm(ddim)
        self.pred = nn.Linear(ddim, 3 * p * p)

    def forward(self, patches, plan):
        x = self.embed(patches) + self.pos
        D = x.shape[-1]
        x = x.gather(1, plan.ids_keep[..., None].expand(-1, -1, D))
        x = torch.cat([self.cls.expand(len(x), -1, -1), x], 1)
        for b in self.enc: x = b(x)
        x = self.dembed(self.norm(x))
        n, L = plan.shape
        t = torch.cat([x[:, 1:], self.mask_token.expand(n, L - plan.n_visible, -1)], 1)
        t = t.gather(1, plan.ids_restore[..., None].expand(-1, -1, t.shape[-1]))
        x = torch.cat([x[:, :1], t], 1) + self.dpos
        for b in self.dec: x = b(x)
        pred = self.pred(self.dnorm(x))[:, 1:]
        loss = ((pred - patches) ** 2).mean(-1)
        return (loss * plan.mask).sum() / plan.mask.sum()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--n', type=int, default=256); ap.add_argument('--k', type=int, default=8)
    ap.add_argument('--quick', action='store_true')
    a = ap.parse_args()
    N, h, p, K = a.n, 14, 16, a.k
    L = h * h
    reps, step_reps = (10, 1) if a.quick else (50, 3)
    g = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, N={N}, L={L}, K={K}")

    parts = blob_parts(N, h, h, K, g)
    t_rand = timeit(lambda: random_masking(N, L, 0.75, generator=g), reps)
    t_sem = {lam: timeit(lambda: semantic_masking(parts, 0.75, lam, g, n_parts=K), reps) for lam in (1.0, 0.5, 0.0)}
    px = parts.view(N, h, 1, h, 1).expand(N, h, p, h, p).reshape(N, h * p, h * p).contiguous()  # the same parts as 224x224 pixel maps
    strategy = SemMAEStrategy(mask_ratio=0.75, n_parts=K)
    strategy.epoch_start(399, 800)                                       # lam = 0.75
    t_call = timeit(lambda: strategy({'parts': px}, p, g), max(3, reps // 5))

    model = StandInMAE(L, p)
    opt = torch.optim.AdamW(model.parameters(), lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05)
    patches = torch.randn(N, L, 3 * p * p, generator=g)
    plan = semantic_masking(parts, 0.75, 0.5, g, n_parts=K)
    def step():
        loss = model(patches, plan); opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    t_step = timeit(step, step_reps, warmup=1)

    ms = lambda s: f"{s * 1e3:8.2f} ms"
    print(f"stand-in tiny-MAE step (fwd+bwd+AdamW, batch {N}): {ms(t_step)}")
    print(f"random_masking (MAE)                     : {ms(t_rand)}  = {100 * t_rand / t_step:.3f} % of a step")
    for lam, t in t_sem.items():
        print(f"semantic_masking lam={lam:<4}                : {ms(t)}  = {100 * t / t_step:.3f} % of a step  ({t / t_rand:.2f}x random)")
    print(f"SemMAEStrategy call on [{N}, 224, 224] part maps (majority pooling + masking, lam=0.75):")
    print(f"                                          {ms(t_call)}  = {100 * t_call / t_step:.3f} % of a step (target <= 2 %)")


if __name__ == '__main__':
    main()
