"""Why do SemMAE's learned parts lose to (or beat) k-means on the same tokens? Small controlled variations of stage 1.

    python bench/parts_probe.py --encoders e10:/work/sweep_out/sweep/runs/e10/s0/random/model.pth,e30:train,e90:train90 [--out bench/parts_probe.json]

For each random-masking encoder (a sweep cell's model.pth, `trainN` = pre-train one here with the sweep's point for N epochs
(default 30), seed 0, or `untrained`), stage 1 (`experiments.learn_parts`, chapter 05's PartLearner) is run with one setting changed at a time
from the sweep's (all four blocks' tokens, K = 6, 300 steps, diversity weight 1), and its held-out matched mIoU is compared
with k-means on exactly the same tokens and K (and a fixed grid). One seed per variant: a screen for mechanisms, not a claim.
"""
import argparse, json, time
from pathlib import Path
import torch
from semmae_edu.experiments import sweep_data, learn_parts, untrained_mae, pretrain_method, POINT
from semmae_edu.parts import PartLearner, train_parts
from semmae_edu.part_metrics import matched_miou, kmeans_parts, grid_parts
from semmae_edu.data import patch_parts
from semmae_edu.synthetic import SyntheticParts

VARIANTS = {'sweep (all blocks, K=6, 300 steps, div 1)': {}, 'last block only': dict(layers=(3,)), 'first two blocks': dict(layers=(0, 1)),
            'K=11 (true label count)': dict(K=11), 'K=4': dict(K=4), '1000 steps': dict(steps=1000), '30 steps': dict(steps=30),
            'diversity 0': dict(lambda_div=0.), 'diversity 4': dict(lambda_div=4.)}

def stage1(mae, train, test, K=6, steps=300, layers=(0, 1, 2, 3), lambda_div=1., seed=0, n_eval=300):
    X = train.tensors()['image']
    t = test.tensors(); Xe, Te = t['image'][:n_eval], patch_parts(t['parts'][:n_eval], 4, SyntheticParts.n_parts)
    learner = PartLearner(mae.encoder(), n_parts=K, layers=tuple(layers), lambda_div=lambda_div, mean=SyntheticParts.mean, std=SyntheticParts.std, seed=seed)
    h = train_parts(learner, X, steps=steps, batch_size=64, seed=seed, progress=False)
    nt = SyntheticParts.n_parts
    return dict(learned=matched_miou(learner.assign_parts(Xe), Te, K, nt), kmeans=matched_miou(kmeans_parts(learner, Xe, K, seed=seed), Te, K, nt),
                grid=matched_miou(grid_parts(len(Xe), learner.grid_size, K), Te, K, nt), Lr_end=h['Lr'][-1], Ld_end=h['Ld'][-1])

if __name__ == '__main__':
    ap = argparse.ArgumentParser(); ap.add_argument('--encoders', default='untrained:untrained'); ap.add_argument('--out', default='bench/parts_probe.json')
    a = ap.parse_args()
    torch.set_num_threads(1)
    train, test = sweep_data()
    res = json.loads(Path(a.out).read_text()) if Path(a.out).exists() else {}
    for spec in a.encoders.split(','):
        name, src = spec.split(':', 1)
        mae = untrained_mae(0)
        if src.startswith('train'):   # train[N]: pre-train one here at the sweep's point, N epochs (default 30), seed 0
            E = int(src[5:] or 30)
            mae = pretrain_method('random', train, E, progress=False, out=Path(f'/tmp/parts_probe_e{E}'))['model']
        elif src != 'untrained': mae.load_state_dict(torch.load(src, weights_only=True)['model'])
        for v, kw in VARIANTS.items():
            if f"{name} | {v}" in res: continue
            t = time.perf_counter()
            r = stage1(mae, train, test, **kw) | dict(seconds=time.perf_counter() - t)
            res[f"{name} | {v}"] = r
            print(f"{name:9s} {v:42s} learned {r['learned']:.3f}  k-means {r['kmeans']:.3f}  grid {r['grid']:.3f}  ({r['seconds']:.0f} s)", flush=True)
            Path(a.out).write_text(json.dumps(res, indent=1))
