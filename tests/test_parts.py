"""Part learning (chapter 05_parts) end to end on SyntheticParts, on a CPU.

The claim of the chapter, asserted with a margin: on `SyntheticParts`, with a frozen micro-MAE
encoder after a short pre-training (30 steps: nearly untrained, to stay fast), part learning lowers
the reconstruction loss L_r and gives parts whose matched mIoU (and NMI) beat the fixed-grid
baseline; two part-learner seeds on the same encoder, the mean with a margin and each one outright.
The margins (mean mIoU above 1.25 × the grid's, NMI above 1.5 ×) leave room for the spread of 2 encoders × 4 seeds of this
setting; the scores themselves are printed, not typed here: `pytest -q -s -m slow tests/test_parts.py`.
"""
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from semmae_edu.data import patch_parts
from semmae_edu.synthetic import SyntheticParts
from semmae_edu.mae import mae_vit_micro_patch4, pretrain_mae
from semmae_edu.parts import PartLearner, kmeans, load_parts, part_bank, save_parts, timm_features, train_parts
from semmae_edu.part_metrics import grid_parts, kmeans_parts, matched_miou, nmi
from tolerance import EPS64, reduction


def _best_matching(iou):
    "The largest summed IoU over one-to-one matchings of the rows [K] to the columns [T] of `iou`: a DP over subsets of rows."
    K, T = iou.shape
    best = {0: 0.}                                     # rows already matched (a bit mask) -> best sum so far
    for j in range(T):                                 # column j stays unmatched, or takes one free row
        nxt = dict(best)
        for mask, v in best.items():
            for i in range(K):
                if not mask >> i & 1: nxt[mask | 1 << i] = max(nxt.get(mask | 1 << i, -1.), v + iou[i, j])
        best = nxt
    return max(best.values())


def _reference_scores(pred, true, K, T):
    """Matched mIoU and NMI of `pred` against `true` recomputed with numpy from the counts (IoU by its definition, the best
    matching by `_best_matching`, NMI by its formula), each with the float64 rounding budget of the two computations."""
    p, t = pred.reshape(-1).numpy(), true.reshape(-1).numpy()
    M = np.zeros((K, T)); np.add.at(M, (p, t), 1)
    union = M.sum(1, keepdims=True) + M.sum(0, keepdims=True) - M
    iou = np.divide(M, union, out=np.zeros_like(M), where=union > 0)
    present = int((M.sum(0) > 0).sum())               # true classes that occur: the mean runs over these
    miou = _best_matching(iou) / present
    tol_miou = reduction(K + T + 2, 1., EPS64)        # two sums of <= K + T IoUs (each <= 1) in other orders, one division
    P = M[M.sum(1) > 0][:, M.sum(0) > 0] / M.sum()
    pa, pb = P.sum(1), P.sum(0); nz = P > 0
    terms = P[nz] * np.log(P[nz] / np.outer(pa, pb)[nz])
    I, Ha, Hb = terms.sum(), -(pa * np.log(pa)).sum(), -(pb * np.log(pb)).sum()
    D = (Ha + Hb) / 2
    # each term rounds ~4 times (product, quotient, log, product) and the sums add K·T (I) and K + T (H) terms
    dI, dD = reduction(K * T + 4, np.abs(terms).sum(), EPS64), reduction(K + T + 4, D, EPS64)
    return miou, tol_miou, max(0., I / D), dI / D + abs(I) * dD / D ** 2


def _assert_scores(pred, true, K, T, miou, nmi_):
    "`miou` and `nmi_` (as the library computed them) equal the reference within the rounding budget, and lie in [0, 1]."
    ref_m, tol_m, ref_n, tol_n = _reference_scores(pred, true, K, T)
    assert abs(miou - ref_m) <= tol_m, (miou, ref_m)
    assert abs(nmi_ - ref_n) <= tol_n, (nmi_, ref_n)
    assert 0 <= miou <= 1 and 0 <= nmi_ <= 1


def _load(n, seed):
    ds = SyntheticParts(n=n, size=32, seed=seed)
    items = [ds[i] for i in range(n)]
    X = torch.stack([it['image'] for it in items])
    T = patch_parts(torch.stack([it['parts'] for it in items]), 4, ds.n_parts)
    return ds, X, T


@pytest.fixture(scope='module')
def trained():
    "A micro MAE pre-trained briefly, and K=6 parts learned on its frozen encoder (the chapter's CI-sized run)."
    n_threads = torch.get_num_threads(); torch.set_num_threads(min(2, n_threads))   # given back below
    t0 = time.time()
    ds, X, _ = _load(768, seed=0)
    mean, std = torch.tensor(ds.mean).view(1, 3, 1, 1), torch.tensor(ds.std).view(1, 3, 1, 1)
    torch.manual_seed(0)
    mae = mae_vit_micro_patch4()
    pretrain_mae(mae, (X - mean) / std, steps=30, batch_size=64, seed=0, progress=False)
    runs = []
    for seed in (0, 1):   # two part learners on the same frozen encoder: the claim is about the method, not one seed
        learner = PartLearner(mae.encoder(), n_parts=6, layers=(0, 1, 2, 3), mean=ds.mean, std=ds.std, seed=seed)
        runs.append((learner, train_parts(learner, X, steps=250, batch_size=64, seed=seed, progress=False)))
    torch.set_num_threads(n_threads)
    return dict(mae=mae, runs=runs, learner=runs[0][0], ds=ds, seconds=time.time() - t0)


@pytest.mark.slow
def test_part_learning_lowers_Lr_and_beats_the_grid(trained):
    _, Xe, Te = _load(256, seed=1)
    n_true = trained['ds'].n_parts
    ms, ns = [], []
    for learner, hist in trained['runs']:
        first, last = np.mean(hist['Lr'][:20]), np.mean(hist['Lr'][-20:])
        assert last < 0.8 * first, (first, last)
        assert np.mean(hist['Ld'][-20:]) < np.mean(hist['Ld'][:20])
        K = learner.n_parts
        pred = learner.assign_parts(Xe)
        assert len(torch.unique(pred)) >= 3          # no collapse onto one or two parts
        ms.append(matched_miou(pred, Te, K, n_true)); ns.append(nmi(pred, Te))
        _assert_scores(pred, Te, K, n_true, ms[-1], ns[-1])
    grid = grid_parts(len(Xe), learner.grid_size, K)
    km = kmeans_parts(learner, Xe, K, seed=0)
    m_g, m_k, n_g, n_k = matched_miou(grid, Te, K, n_true), matched_miou(km, Te, K, n_true), nmi(grid, Te), nmi(km, Te)
    # the k-means baseline is k-means on the tokens the learner reads (normalised, frozen), and its numbers and the
    # grid's are the scores by definition (no claim about their size: that is the measurement, not a property)
    x = learner.encode(Xe)[1]
    assert torch.equal(km.flatten(), kmeans(x.reshape(-1, x.shape[-1]), K, generator=torch.Generator().manual_seed(0))[0])
    _assert_scores(km, Te, K, n_true, m_k, n_k)
    _assert_scores(grid, Te, K, n_true, m_g, n_g)
    print(f"matched mIoU: learned {', '.join(f'{m:.3f}' for m in ms)}, k-means {m_k:.3f}, grid {m_g:.3f}; "
          f"NMI: learned {', '.join(f'{n:.3f}' for n in ns)}, k-means {n_k:.3f}, grid {n_g:.3f}")
    assert np.mean(ms) > 1.25 * m_g and min(ms) > m_g, (ms, m_g)
    assert np.mean(ns) > 1.5 * n_g and min(ns) > n_g, (ns, n_g)


def test_kmeans_and_grid_scores_equal_a_reference():
    "The quick loop's version of the above, on an untrained encoder: k-means on the learner's tokens, scores by definition."
    _, X, T = _load(24, seed=2)
    torch.manual_seed(0)
    learner = PartLearner(mae_vit_micro_patch4().encoder(), n_parts=6, seed=0)
    K, n_true = learner.n_parts, SyntheticParts(n=1, size=32).n_parts
    km, km2 = kmeans_parts(learner, X, K, seed=1), kmeans_parts(learner, X, K, seed=1)
    assert torch.equal(km, km2) and km.shape == (24, 64) and 0 <= km.min() and km.max() < K
    x = learner.encode(X)[1]
    labels, cent = kmeans(x.reshape(-1, x.shape[-1]), K, generator=torch.Generator().manual_seed(1))
    assert torch.equal(km.flatten(), labels)
    assert torch.equal(labels, torch.cdist(x.reshape(-1, x.shape[-1]).float(), cent).argmin(1))   # every token at its nearest centroid
    for pred in (km, grid_parts(24, learner.grid_size, K), learner.assign_parts(X)):
        _assert_scores(pred, T, K, n_true, matched_miou(pred, T, K, n_true), nmi(pred, T))


@pytest.mark.slow
def test_part_bank_save_load(trained, tmp_path):
    learner, ds = trained['learner'], trained['ds']
    sub = torch.utils.data.Subset(ds, range(40))   # items carry 'index' 0..39
    bank = part_bank(learner, sub, batch_size=16, progress=False)
    assert bank.shape == (40, 8, 8) and bank.dtype == torch.long
    assert 0 <= bank.min() and bank.max() < learner.n_parts
    X = torch.stack([ds[i]['image'] for i in range(40)])
    assert torch.equal(bank.flatten(1), learner.assign_parts(X))
    from semmae_edu.semmae import PartBank      # stage 2 takes the bank as it is
    pb = PartBank.from_maps(bank, n_parts=learner.n_parts)
    assert len(pb) == 40 and torch.equal(pb.maps.long(), bank)
    save_parts(learner, tmp_path / 'parts.pt')
    back = load_parts(tmp_path / 'parts.pt', trained['mae'].encoder())
    assert torch.equal(back.assign_parts(X), learner.assign_parts(X))
    assert not any(k.startswith(('blocks', 'patch_embed', 'cls_token')) for k in torch.load(tmp_path / 'parts.pt')['state_dict'])


def test_timm_vit_path_without_downloads():
    timm = pytest.importorskip('timm')
    vit = timm.create_model('vit_tiny_patch16_224', pretrained=False, img_size=32, patch_size=4, num_classes=0)
    X = torch.rand(48, 3, 32, 32)
    learner = PartLearner(timm_features(vit), n_parts=4, seed=0)
    hist = train_parts(learner, X, steps=30, batch_size=16, lr=3e-3, progress=False)
    assert np.mean(hist['Lr'][-5:]) < np.mean(hist['Lr'][:5])
    assert learner.assign_parts(X[:4]).shape == (4, 64)
    assert all(p.grad is None for p in vit.parameters())


def test_bad_input():
    enc = mae_vit_micro_patch4().encoder()
    with pytest.raises(ValueError, match='n_parts'): PartLearner(enc, n_parts=1)
    learner = PartLearner(enc, n_parts=3)
    with pytest.raises(ValueError, match=r'\[N, 3, 32, 32\]'): learner.assign_parts(torch.rand(2, 3, 48, 48))
    with pytest.raises(ValueError, match='same shape'): matched_miou(torch.zeros(4, dtype=torch.long), torch.zeros(5, dtype=torch.long), 2, 2)
    with pytest.raises(ValueError, match='same shape'): nmi(torch.zeros(4, dtype=torch.long), torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(TypeError, match='integer'): nmi(torch.zeros(4), torch.zeros(4))


def test_parts_choices_rerun_matches_the_chapters_run():
    "bench/parts_choices.json's default run, seed 0, is chapter 05's run: the same scores as the chapter's stored table."
    import json, re
    root = Path(__file__).resolve().parents[1]
    choices = json.loads((root / 'bench/parts_choices.json').read_text())
    row = next(r for r in choices['variants'] if r['variant'] == 'default' and r['seed'] == 0)
    nb = json.loads((root / 'nbs/05_parts.ipynb').read_text())
    table = next(''.join(o['text']) for c in nb['cells'] if c['cell_type'] == 'code'
                 for o in c.get('outputs', []) if 'learned parts (ours)' in ''.join(o.get('text', '')))
    shown = {k: float(re.search(k + r'\s+([\d.]+)', table).group(1)) for k in ('learned parts \\(ours\\)', 'k-means on the tokens', 'fixed grid')}
    assert list(shown.values()) == [round(row['learned'], 3), round(row['kmeans'], 3), round(row['grid'], 3)], (shown, row)
