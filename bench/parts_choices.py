"""The numbers behind chapter 05's *What we chose*: which encoder tokens stage 1 reads, and the stage-1 settings we
tried, on today's `SyntheticParts`, recomputed from the library (`PartLearner`, `train_parts`, `kmeans_parts`).

    python bench/parts_choices.py [--out bench/parts_choices.json]     # one thread; each run's seconds are in the file

Setup (chapter 05's run): micro MAE pre-trained by `pretrain_mae` for 1000 steps (1024 training images, data seed 0,
model and batch seed 0), K = 6 parts, 300 stage-1 steps, batch 64; scores are the matched mIoU on 512 held-out images
(data seed 1), against k-means on the same tokens (seed 0) and a fixed grid. The short encoders are
`tests/test_parts.py`'s: 30 MAE steps on 768 images (two encoders: seeds 0 and 1), scored on 256 held-out images.
Part-learner seeds: 3 on the 1000-step encoder, 2 on each 30-step encoder. Every run writes its row; the chapter
reads the file and prints its tables.
"""
import argparse, json, platform, time
from pathlib import Path
import torch
from semmae_edu.synthetic import SyntheticParts
from semmae_edu.data import patch_parts
from semmae_edu.mae import mae_vit_micro_patch4, pretrain_mae
from semmae_edu.parts import PartLearner, train_parts
from semmae_edu.part_metrics import matched_miou, kmeans_parts, grid_parts

TOKENS = {'output (after the last block and norm)': None, 'block 0': (0,), 'block 1': (1,),
          'average of all four blocks': (0, 1, 2, 3)}
DEFAULT = 'average of all four blocks'
# one setting changed at a time from the default (all four blocks, sigma 0, k-means queries, lambda 1, K 6, lr 3e-3, 300 steps)
VARIANTS = {'default': {}, 'blur sigma 0.5': dict(blur_sigma=0.5), 'blur sigma 1': dict(blur_sigma=1.0),
            'random queries (init)': dict(init='random'), 'lambda 0.3': dict(lambda_div=0.3), 'lambda 3': dict(lambda_div=3.0),
            'K 4': dict(n_parts=4), 'K 8': dict(n_parts=8), 'lr 1e-3': dict(lr=1e-3), '600 steps': dict(steps=600)}
LEARNER_KEYS, TRAIN_KEYS = ('blur_sigma', 'lambda_div', 'n_parts'), ('init', 'lr', 'steps')
SETUP = dict(mae_steps=1000, short_mae_steps=30, K=6, part_steps=300, n_train=1024, n_test=512, short_n_train=768,
             short_n_test=256, learner_seeds=[0, 1, 2], short_encoders=[0, 1], short_learner_seeds=[0, 1])

def load(n, seed):
    ds = SyntheticParts(n=n, size=32, seed=seed)
    t = ds.tensors()
    return ds, t['image'], patch_parts(t['parts'], 4, ds.n_parts)

def encoder(X, ds, steps, seed):
    mean, std = torch.tensor(ds.mean).view(1, 3, 1, 1), torch.tensor(ds.std).view(1, 3, 1, 1)
    torch.manual_seed(seed)
    mae = mae_vit_micro_patch4()
    pretrain_mae(mae, (X - mean) / std, steps=steps, batch_size=64, seed=seed, progress=False)
    return mae.encoder()

def score(enc, ds, X, Xe, Te, layers, seed, setting=None):
    "One stage-1 run: the learned parts' and k-means' matched mIoU on the held-out images (and the grid's)."
    s = setting or {}
    K = s.get('n_parts', SETUP['K'])
    learner = PartLearner(enc, n_parts=K, layers=layers, mean=ds.mean, std=ds.std, seed=seed, **{k: s[k] for k in LEARNER_KEYS if k in s and k != 'n_parts'})
    t = time.perf_counter()
    train_parts(learner, X, batch_size=64, seed=seed, progress=False, **({'steps': SETUP['part_steps']} | {k: s[k] for k in TRAIN_KEYS if k in s}))
    pred = torch.cat([learner.assign_parts(Xe[i:i + 128]) for i in range(0, len(Xe), 128)])
    n_true = ds.n_parts
    return dict(learned=matched_miou(pred, Te, K, n_true), kmeans=matched_miou(kmeans_parts(learner, Xe, K, seed=0), Te, K, n_true),
                grid=matched_miou(grid_parts(len(Xe), learner.grid_size, K), Te, K, n_true), seconds=time.perf_counter() - t)

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default='bench/parts_choices.json')
    out = Path(ap.parse_args().out)
    torch.set_num_threads(1)
    res = dict(command='python bench/parts_choices.py', torch=torch.__version__, machine=platform.machine(),
               setup=SETUP, tokens=[], variants=[])
    save = lambda: out.write_text(json.dumps(res, indent=1))
    ds, X, _ = load(SETUP['n_train'], 0); _, Xe, Te = load(SETUP['n_test'], 1)
    t = time.perf_counter(); enc = encoder(X, ds, SETUP['mae_steps'], 0); res['mae_seconds'] = time.perf_counter() - t
    for name, layers in TOKENS.items():
        for seed in SETUP['learner_seeds']:
            res['tokens'].append(dict(encoder=f"{SETUP['mae_steps']} MAE steps", tokens=name, seed=seed) | score(enc, ds, X, Xe, Te, layers, seed)); save()
    for name, setting in VARIANTS.items():
        for seed in SETUP['learner_seeds']:
            res['variants'].append(dict(variant=name, seed=seed) | score(enc, ds, X, Xe, Te, TOKENS[DEFAULT], seed, setting)); save()
    ds_s, Xs, _ = load(SETUP['short_n_train'], 0); _, Xse, Tse = load(SETUP['short_n_test'], 1)
    for e in SETUP['short_encoders']:
        enc_s = encoder(Xs, ds_s, SETUP['short_mae_steps'], e)
        for name, layers in TOKENS.items():
            for seed in SETUP['short_learner_seeds']:
                res['tokens'].append(dict(encoder=f"{SETUP['short_mae_steps']} MAE steps", encoder_seed=e, tokens=name, seed=seed)
                                     | score(enc_s, ds_s, Xs, Xse, Tse, layers, seed)); save()
    print(f"wrote {out}: {len(res['tokens'])} token runs, {len(res['variants'])} variant runs")

if __name__ == '__main__': main()
