"""Screen candidate generators with the converged probe: raw pixels, PCA-128 of pixels, true part histograms and
true part layout (4x4 grid). Usage: python screen.py NAME [NAME ...] [--n-train 5000] [--n-test 2000]
Writes bench/testbed/screens/<name>.json; `python screen.py --merge` collects them into screens.json."""
import argparse, json, sys, time
from dataclasses import asdict
from pathlib import Path
import torch
HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from synth import CANDIDATES, render_set, part_features
from semmae_edu.evaluate import lbfgs_probe, PROBE_LAMS as LAMS
LAMS_PIX = (1., 0.1, 0.01, 1e-3, 1e-4)   # decades for the wide pixel features (each fit ~0.1-0.2 cpu-s per evaluation)

def pca(Xtr, Xte, k=128, seed=0):
    mu = Xtr.mean(0)
    torch.manual_seed(seed)
    U, S, V = torch.svd_lowrank(Xtr - mu, q=k + 32, niter=6)
    return (Xtr - mu) @ V[:, :k], (Xte - mu) @ V[:, :k]

def screen(name, n_train, n_test, pixels=True):
    spec = CANDIDATES[name]
    t0 = time.perf_counter()
    tr, te = render_set(spec, n_train, 0, looks=True), render_set(spec, n_test, 1, looks=True)
    render_s = time.perf_counter() - t0
    ytr, yte = tr['label'], te['label']
    px = (tr['image'].flatten(1).double(), te['image'].flatten(1).double())
    feats = {'pixels': px} if pixels else {}
    feats['pca128'] = pca(*px)
    feats['look_hist'] = (part_features(tr['looks']).double(), part_features(te['looks']).double())   # bag of local looks, clutter included
    feats['part_hist'] = (part_features(tr['parts']).double(), part_features(te['parts']).double())
    feats['part_layout4'] = (part_features(tr['parts'], grid=4).double(), part_features(te['parts'], grid=4).double())
    res = dict(name=name, spec=asdict(spec), n_train=n_train, n_test=n_test, data_seeds=(0, 1), render_seconds=render_s)
    for k, (a, b) in feats.items():
        t0 = time.perf_counter()
        p = lbfgs_probe(a, ytr, b, yte, lams=LAMS_PIX if a.shape[1] > 1000 else LAMS)
        p['seconds'] = time.perf_counter() - t0
        res[k] = {key: p[key] for key in ('acc', 'se', 'train_acc', 'lam', 'grad', 'converged', 'path_converged', 'iters', 'seconds')}
        print(name, k, f"acc {p['acc']:.3f} ± {p['se']:.3f}  lam {p['lam']:g}  grad {p['grad']:.1e}  {p['seconds']:.0f}s", flush=True)
    out = HERE / 'screens' / f'{name}-n{n_train}{"" if pixels else "-nopix"}.json'   # a screen without pixels never replaces one with
    out.parent.mkdir(exist_ok=True); out.write_text(json.dumps(res, indent=1))

def merge():
    rows = [json.loads(p.read_text()) for p in sorted((HERE / 'screens').glob('*.json'))]
    (HERE / 'screens.json').write_text(json.dumps(dict(
        probe='multinomial logistic regression, L-BFGS to max|grad|<=1e-5 (float64), standardised features, '
              'lam from half-decades 1..1e-5 (decades 1..1e-4 for raw pixels) chosen on a stratified 20% held-out split of the training images, refit on all',
        chance=0.1, rows=rows), indent=1))
    for r in rows:
        print(f"{r['name']:18s} n_train {r['n_train']:5d} n_test {r['n_test']}  " +
              '  '.join(f"{k} {r[k]['acc']:.3f}±{r[k]['se']:.3f}" for k in ('pixels', 'pca128', 'part_hist', 'part_layout4', 'look_hist') if r.get(k)))  # noqa

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('names', nargs='*'); ap.add_argument('--n-train', type=int, default=5000); ap.add_argument('--n-test', type=int, default=2000)
    ap.add_argument('--merge', action='store_true'); ap.add_argument('--no-pixels', action='store_true')
    a = ap.parse_args()
    torch.set_num_threads(1)
    for n in a.names: screen(n, a.n_train, a.n_test, not a.no_pixels)
    if a.merge: merge()
