"""Training-loop speed (nbs/07_train.ipynb), measured side by side in one run.

    python bench/bench_train.py [--batch 64] [--steps 12] [--rounds 3] [--threads 1]   # CPU
    python bench/bench_train.py --gpu [--model tiny --batch 256]                # GPU: bf16 + fused attention vs fp32

CPU:
1. the loop's overhead: optimizer-step time of `pretrain()` on images already in memory vs bare model steps
   (forward + backward + AdamW on the same tensors, plans made beforehand), rounds interleaved; the minimum
   is the least noisy estimate on a shared machine, the median is shown too. Target <= 5 %. Also the loop
   alone: pretrain() with the MAE replaced by a model that does no work, as a share of a bare model step
   (the least noise-prone estimate of the overhead).
2. images/s of `pretrain()` end to end on SyntheticParts (rendering + crop/flip in the main process) for
   each strategy available here (AMT switched on from epoch 1 and refreshed every epoch, so its refresh
   is counted in the wall-clock number).
GPU: images/s of the same loop with amp='none' + explicit attention, amp='none' + fused attention,
amp='bf16' + fused attention.
"""
import argparse, statistics, tempfile, time
import torch
from semmae_edu.train import pretrain, STRATEGIES, build_model
from semmae_edu.config import PretrainConfig
from semmae_edu.batches import build_data, generator_for, SeededItems, data_stats
from semmae_edu.optim import make_optimizer
from semmae_edu.masking import random_masking
from semmae_edu.data import AugmentedItems

class InMemory(torch.utils.data.Dataset):
    "Items rendered and augmented once, served from memory (so the loop, not the data, is measured)."
    def __init__(self, items, mean, std): self.items, self.mean, self.std = items, mean, std
    def __len__(self): return len(self.items)
    def __getitem__(self, i): return self.items[i]

def loop_steps(cfg, train_set=None):
    "Per-step seconds of pretrain() (first 2 steps dropped) and wall seconds of the whole call."
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        res = pretrain(PretrainConfig(**{**cfg.__dict__, 'out': d}), train_set=train_set)
        wall = time.perf_counter() - t
    return [cfg.batch_size / r['images_per_s'] for r in res.history][2:], wall

class NullMAE(torch.nn.Module):
    "The MAE's interface with next to no compute: pretrain() with it times the loop alone."
    def __init__(self, img_size=32, patch_size=4):
        super().__init__()
        self.w, self.b = torch.nn.Parameter(torch.ones(1, 1)), torch.nn.Parameter(torch.zeros(1))
        self.patch_size, self.grid_size = patch_size, (img_size // patch_size,) * 2
        self.num_patches, self.config = self.grid_size[0] * self.grid_size[1], dict(img_size=img_size, patch_size=patch_size)
    def forward(self, imgs, plan): return ((imgs.mean() * self.w).sum() + self.b.sum(), None, plan)

def loop_alone_steps(cfg, train_set):
    "Per-step seconds of pretrain() with the MAE replaced by `NullMAE`: data, masks, schedule, records."
    import semmae_edu.train as T
    build = T.build_model
    T.build_model = lambda c: NullMAE(c.img_size)
    try: return loop_steps(cfg, train_set)[0]
    finally: T.build_model = build

def bare_steps(cfg, X, steps):
    "Per-step seconds of forward + backward + AdamW on pre-made normalised batches and plans."
    model = build_model(cfg).train()
    opt = make_optimizer(model, 1e-4, cfg.weight_decay, cfg.betas)
    plans = [random_masking(len(X[0]), model.num_patches, 0.75, generator=generator_for(0, 'mask', 0, s, 0)) for s in range(steps)]
    times = []
    for s in range(steps):
        t = time.perf_counter()
        loss = model(X[s % len(X)], plans[s])[0]
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True); loss.item()
        times.append(time.perf_counter() - t)
    return times[2:]

def cpu(batch, steps, rounds):
    base = PretrainConfig(n_synthetic=batch * steps, batch_size=batch, epochs=1, warmup_epochs=0.5, progress=False, log_every=10**6,
                          ckpt_every_epochs=10**6)
    train, aug, _ = build_data(base)
    mean, std = data_stats(train)
    items = [SeededItems(AugmentedItems(train, aug), 0)[(0, i)] for i in range(len(train))]
    mem = InMemory(items, mean, std)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    X = [(torch.stack([it['image'] for it in items[k:k + batch]]) - m) / s for k in range(0, len(items), batch)]
    bare, loop, alone = [], [], []
    for _ in range(rounds):          # interleaved, so machine noise hits both alike
        bare += bare_steps(base, X, steps)
        loop += loop_steps(base, mem)[0]
        alone += loop_alone_steps(base, mem)
    print(f"micro MAE, batch {batch}, {torch.get_num_threads()} thread(s); {len(bare)} steps each, {rounds} interleaved rounds")
    for stat in (min, statistics.median):
        b, l = stat(bare), stat(loop)
        print(f"{stat.__name__:6s}: bare model step {b * 1000:6.1f} ms ({batch / b:5.1f} images/s), pretrain() step on images in memory "
              f"{l * 1000:6.1f} ms ({batch / l:5.1f} images/s): loop overhead {100 * (l / b - 1):+.1f} % (target <= 5 %)")
    a, b = statistics.median(alone), statistics.median(bare)
    print(f"the loop alone (pretrain() with a null model): {a * 1000:.1f} ms per step = {100 * a / b:.1f} % of a bare model step (median)")
    print("\nend to end on SyntheticParts (render + crop/flip in the main process, 2 epochs per run; rounds interleaved):")
    names = list(STRATEGIES)
    per, wall = {n: [] for n in names}, {n: [] for n in names}
    for _ in range(rounds):
        for name in names:
            kw = dict(amt=dict(amt_start_epoch=1), attmask=dict(amt_start_epoch=1)).get(name, {})   # attention from epoch 1 of 2
            p, w = loop_steps(PretrainConfig(**{**base.__dict__, 'epochs': 2, 'strategy': name, 'strategy_kw': kw}))
            per[name] += p; wall[name].append(w)
    for name in names:
        print(f"  {name:7s}: {batch / min(per[name]):6.1f} images/s best step, {batch / statistics.median(per[name]):6.1f} median step, "
              f"{2 * len(train) / min(wall[name]):6.1f} images/s wall (best run, incl. setup{' and the bank refresh' if name in ('amt', 'attmask') else ''})")

def gpu(model, batch, steps):
    assert torch.cuda.is_available(), "--gpu needs a CUDA GPU"
    img = 224 if model in ('base', 'large', 'huge') else 32
    cases = {'fp32, explicit attention': dict(amp='none', fused_attn=False), 'fp32, fused attention': dict(amp='none', fused_attn=True),
             'bf16, fused attention': dict(amp='bf16', fused_attn=True)}
    res = {}
    for name, kw in cases.items():
        cfg = PretrainConfig(model=model, img_size=img, n_synthetic=batch * steps, batch_size=batch, epochs=1, warmup_epochs=0.5,
                             progress=False, log_every=10**6, device='cuda', **kw)   # synthetic: tensor-backed, no workers
        per, _ = loop_steps(cfg)
        res[name] = batch / statistics.median(per)
        print(f"{name:26s}: {res[name]:8.1f} images/s")
    print(f"bf16 + fused vs fp32 explicit: x{res['bf16, fused attention'] / res['fp32, explicit attention']:.2f}")

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--batch', type=int, default=64); ap.add_argument('--steps', type=int, default=12)
    ap.add_argument('--rounds', type=int, default=3); ap.add_argument('--gpu', action='store_true')
    ap.add_argument('--model', default='tiny'); ap.add_argument('--threads', type=int, default=None)
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    if a.gpu: gpu(a.model, a.batch, a.steps)
    else: cpu(a.batch, a.steps, a.rounds)
