"""Is pre-training on SyntheticParts model-bound? `pretrain()` epoch time vs bare model steps on the same batches (CPU).

    python bench/bench_data_path.py [--n 512] [--batch 64] [--epochs 3] [--rounds 3] [--threads 1]

Three measurements per round, interleaved (a shared machine drifts; the minimum over rounds is the least
noisy estimate, the median is shown too):
  tensors  `pretrain()` on SyntheticParts: rendered once (`synthetic.rendered`), each batch gathered by index and
           cropped + flipped at once (`TensorBatches`, `data.crop_batch`)
  items    `pretrain()` on the same images through the per-item path (render + `MAETransform` per item,
           DataLoader collate): what every epoch cost before
  bare     forward + backward + AdamW of the same model on the very batches and plans `tensors` used,
           prepared beforehand: no data work, no schedule, no records
Epoch time = CPU seconds of this process (`time.process_time`) between the last steps of consecutive epochs (read
through `pretrain`'s `on_step`; the first epoch is dropped: warm-up). CPU time, not wall time: on a machine shared with
other jobs the wall clock counts their work too.
Goal: tensors / bare within 1.05 on a CPU.
"""
import argparse, statistics, tempfile, time
import torch
from semmae_edu.data import AugmentedItems, MAETransform
from semmae_edu.synthetic import SyntheticParts
from semmae_edu.train import pretrain, build_model
from semmae_edu.config import preset
from semmae_edu.checkpoint import read_metrics
from semmae_edu.batches import generator_for, StepBatches, TensorBatches
from semmae_edu.masking import RandomStrategy
from semmae_edu.optim import make_optimizer

def epoch_seconds(cfg, train_set=None):
    last = {}
    def on_step(rec): last[rec['epoch']] = time.process_time()
    with tempfile.TemporaryDirectory() as d:
        cfg.out = d
        pretrain(cfg, train_set=train_set, on_step=on_step)
    t = [last[e] for e in sorted(last)]
    return [b - a for a, b in zip(t, t[1:])]

def bare_seconds(cfg, epochs):
    "Per-epoch seconds of model steps on the batches and plans `pretrain` draws (built beforehand)."
    ds = SyntheticParts(n=cfg.n_synthetic, seed=0)
    sampler = StepBatches(len(ds), cfg.batch_size, seed=cfg.seed)
    tb = TensorBatches(ds.tensors(), sampler, seed=cfg.seed)
    strategy, model = RandomStrategy(), build_model(cfg).train()
    mean, std = torch.tensor(SyntheticParts.mean).view(1, 3, 1, 1), torch.tensor(SyntheticParts.std).view(1, 3, 1, 1)
    opt = make_optimizer(model, 1e-4, cfg.weight_decay, cfg.betas)
    out = []
    for e in range(1, epochs):
        sampler.set_epoch(e)
        work = [((b['image'] - mean) / std, strategy(b, 4, generator_for(cfg.seed, 'mask', e, s, 0))) for s, b in enumerate(tb)]
        t = time.process_time()
        for x, plan in work:
            loss = model(x, plan)[0]; loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
        out.append(time.process_time() - t)
    return out

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--n', type=int, default=512); ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--epochs', type=int, default=3); ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = lambda: preset('cpu', n_synthetic=a.n, batch_size=a.batch, epochs=a.epochs, norm_pix_loss=True, progress=False,
                         ckpt_every_epochs=a.epochs)
    res = {'tensors': [], 'items': [], 'bare': []}
    for r in range(a.rounds):
        res['tensors'] += epoch_seconds(cfg())
        items = AugmentedItems(SyntheticParts(n=a.n, seed=0), MAETransform(32, mean=None, std=None))   # not tensor-backed: per-item path
        items.mean, items.std = SyntheticParts.mean, SyntheticParts.std
        res['items'] += epoch_seconds(cfg(), items)
        res['bare'] += bare_seconds(cfg(), a.epochs)
    print(f"torch {torch.__version__}, {a.threads} thread(s), n={a.n}, batch {a.batch}, {a.rounds} rounds x {a.epochs - 1} timed epochs")
    b = min(res['bare'])
    for k, v in res.items():
        print(f"{k:8s} epoch s: min {min(v):.3f}  median {statistics.median(v):.3f}   ratio to bare (min/min): {min(v) / b:.3f}")
