"Tests for semmae_edu.evaluate beyond the chapter's cells: every probe optimizer, the converged probe's known answers, data formats, bad input (layer decay and LARS: tests/test_optim.py)."
import math
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from semmae_edu.evaluate import (extract_features, linear_probe, knn_classify, accuracy, finetune,
                                 attention_on_object, attention_maps, fg_patches, check_fits, LinearProbe,
                                 lbfgs_probe, fit_logreg, logreg_objective, standardise)
from semmae_edu.vit import VisionTransformer, cls_attention, cls_attention_maps
from semmae_edu.synthetic import SyntheticParts
from semmae_edu.mae import mae_vit_micro_patch4
from tolerance import EPS32, EPS64, EPS_TF32, layers, reduction

THREADS = 1   # one intra-op thread (tests/conftest.py)
DIRS = torch.randn(10, 24, generator=torch.Generator().manual_seed(7))

def planted(n, seed, signal=1.0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    return torch.randn(n, 24, generator=g) * 2 - 3 + signal * 2 * DIRS[y], y

# chance = 0.1 with 10 balanced classes; on 500 test points its std is sqrt(.1*.9/500) = 0.0134,
# so |acc - 0.1| < 0.05 is a 3.7-sigma band (fixed seeds make the test deterministic anyway).
CHANCE_BAND = 0.05

@pytest.mark.parametrize('opt', ['sgd', 'lars', 'adamw'])
def test_probe_planted_and_random(opt):
    Xtr, ytr = planted(1000, 0); Xte, yte = planted(500, 1)
    assert linear_probe(Xtr, ytr, Xte, yte, epochs=30, batch_size=128, optimizer=opt)['acc'] >= 0.95
    R = torch.randn(1500, 24, generator=torch.Generator().manual_seed(3))
    assert abs(linear_probe(R[:1000], ytr, R[1000:], yte, epochs=30, batch_size=128, optimizer=opt)['acc'] - 0.1) < CHANCE_BAND

def test_probe_same_seed_same_result():
    Xtr, ytr = planted(300, 0, signal=0.3); Xte, yte = planted(100, 1, signal=0.3)
    a = linear_probe(Xtr, ytr, Xte, yte, epochs=5, batch_size=32, seed=4)
    b = linear_probe(Xtr, ytr, Xte, yte, epochs=5, batch_size=32, seed=4)
    assert a['losses'] == b['losses'] and torch.equal(a['pred'], b['pred'])

def test_probe_head_is_maes():
    torch.manual_seed(0); h = LinearProbe(256, 40)
    assert not h.bn.affine and h.bn.eps == 1e-6 and torch.count_nonzero(h.fc.bias) == 0
    assert abs(h.fc.weight.std().item() - 0.01) < 0.0005   # std 0.01 over 10,240 weights: sampling error ~7e-5

# ---- the converged probe ----

def _newton(X, y, K, lam, steps=40):
    "The optimum of logreg_objective by Newton's method with the exact Hessian: (theta with biases centred, |grad|_2, mu)."
    D = X.shape[1]
    f = lambda t: logreg_objective(t[:D * K].view(D, K), t[D * K:], X, y, lam)
    theta = torch.zeros(D * K + K, dtype=torch.float64)
    for _ in range(steps):
        H, g = torch.autograd.functional.hessian(f, theta), torch.autograd.functional.jacobian(f, theta)
        theta = theta - torch.linalg.lstsq(H, g[:, None]).solution[:, 0]    # H is singular along the bias shift only
        if g.abs().max() < 1e-14: break
    H = torch.autograd.functional.hessian(f, theta)
    mu = torch.linalg.eigvalsh(H)[1].item()                                  # [0]: the shift's zero
    return torch.cat([theta[:D * K], theta[D * K:] - theta[D * K:].mean()]), torch.autograd.functional.jacobian(f, theta).norm().item(), mu

@pytest.mark.parametrize('n, D, K, lam, seed', [(400, 6, 3, 1e-2, 0), (300, 10, 5, 1e-3, 1), (200, 4, 2, 1e-1, 2)])
def test_fit_logreg_reaches_newtons_optimum(n, D, K, lam, seed):
    """L-BFGS equals Newton's method with the exact Hessian. A point with gradient g lies within |g|_2 / mu of the optimum
    (mu: the Hessian's smallest eigenvalue off the bias shift); |g|_2 <= sqrt(P) max|g|; 2x covers the Hessian's change
    over that distance. tol 1e-8 is above the ~1e-9 where float64's line search runs out of resolution."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, D, generator=g, dtype=torch.float64)
    y = (X @ torch.randn(D, K, generator=g, dtype=torch.float64) * 2 + 0.5 * torch.randn(n, K, generator=g, dtype=torch.float64)).argmax(1)
    ref, g_ref, mu = _newton(X, y, K, lam)
    r = fit_logreg(X, y, K, lam, tol=1e-8)
    ours = torch.cat([r['W'].flatten(), r['b'] - r['b'].mean()])
    assert r['converged'] and r['grad'] <= 1e-8
    assert (ours - ref).norm() <= 2 * ((D * K + K) ** 0.5 * r['grad'] + g_ref) / mu, ((ours - ref).norm(), mu)

def test_lbfgs_probe_equals_the_bayes_rule_on_gaussian_classes():
    """Classes N(mu_k, I) with equal priors: the Bayes rule is linear and logistic regression is the right model. On the
    same test points the probe's accuracy equals the Bayes rule's within 4 sd of a paired difference (sqrt(d/m), d the
    disagreement); what it may lose is its estimation error, 170 parameters from 16,000 fitting points (measured -2.7 sd)."""
    g = torch.Generator().manual_seed(1)
    D, K, m = 16, 10, 20000
    means = torch.randn(K, D, generator=g, dtype=torch.float64) * 0.7
    def sample(n):
        y = torch.arange(n) % K
        return means[y] + torch.randn(n, D, generator=g, dtype=torch.float64), y
    (Xtr, ytr), (Xte, yte) = sample(20000), sample(m)
    bayes = (Xte @ means.T - 0.5 * (means * means).sum(1)).argmax(1)
    p = lbfgs_probe(Xtr, ytr, Xte, yte)
    d = (p['pred'] != bayes).double().mean().item()
    assert p['converged'] and p['path_converged'] and p['grad'] <= 1e-5
    assert abs(p['acc'] - (bayes == yte).double().mean().item()) <= 4 * (d / m) ** 0.5 and d < 0.05
    assert p['se'] == pytest.approx(math.sqrt(p['acc'] * (1 - p['acc']) / m), rel=1e-12) and p['n_test'] == m

def test_lbfgs_probe_is_the_refit_at_the_chosen_lam():
    "The returned weights are the optimum on all training rows at the chosen lam; the held-out path picked the best lam (ties: the stronger)."
    Xtr, ytr = planted(600, 0, signal=0.4); Xte, yte = planted(300, 1, signal=0.4)
    p = lbfgs_probe(Xtr, ytr, Xte, yte)
    best = max(p['held'].values())
    assert p['held'][f"{p['lam']:g}"] == best and all(float(l) <= p['lam'] * 1.0001 for l, s in p['held'].items() if s == best)
    Xa, Xt = standardise(Xtr.double(), Xte.double())
    r = fit_logreg(Xa, ytr, 10, p['lam'], tol=1e-9)
    assert (p['W'] - r['W']).abs().max() <= 2e-3 and torch.equal(p['pred'], (Xt @ r['W'] + r['b']).argmax(1))
    assert p['acc'] == (p['pred'] == yte).double().mean().item() and p['acc'] > 0.5
    assert torch.equal(lbfgs_probe(Xtr, ytr, Xte, yte)['pred'], p['pred'])             # deterministic

def test_lbfgs_probe_extends_past_the_grid_edge():
    "A grid whose strongest lam wins is extended upwards by half-decades until a lam inside the path wins (8 at most)."
    Xtr, ytr = planted(600, 0, signal=0.4); Xte, yte = planted(300, 1, signal=0.4)
    p = lbfgs_probe(Xtr, ytr, Xte, yte, lams=(1e-4, 1e-5))
    tried = sorted(float(l) for l in p['held'])
    assert p['lam'] > 1e-4 * 1.0001 and p['lam'] < tried[-1] and p['held'][f"{p['lam']:g}"] > p['held']['0.0001']
    Xs, ys = planted(600, 0, signal=3.0)                                         # every lam separates: ties go up to the cap
    assert len(lbfgs_probe(Xs, ys, Xte, yte, lams=(1e-4, 1e-5))['held']) == 2 + 8

def test_standardise_constant_feature_and_scale():
    "Per feature: mean 0 and std 1 on the training rows (3-term sums: 3 ulps of the values' size 10); a constant feature keeps scale 1."
    X = torch.tensor([[1., 5., 2.], [3., 5., 4.], [5., 5., 9.]], dtype=torch.float64)
    Z, W = standardise(X, X[:1])
    assert (Z.mean(0).abs() <= reduction(3, 10., EPS64)).all() and torch.equal(Z[:, 1], torch.zeros(3, dtype=torch.float64))
    assert ((Z[:, [0, 2]].std(0) - 1).abs() <= reduction(3, 10., EPS64)).all() and torch.equal(W, Z[:1])

@pytest.mark.parametrize('kw, words', [
    (dict(lams=()), ['lams']), (dict(lams=(1., -1.)), ['lams', '> 0']), (dict(held_frac=1.), ['held_frac']),
    (dict(tol=0.), ['tol']), (dict(dtype=torch.float16), ['dtype']),
])
def test_lbfgs_probe_bad_input(kw, words):
    Xtr, ytr = planted(50, 0); Xte, yte = planted(20, 1)
    with pytest.raises(ValueError) as e: lbfgs_probe(Xtr, ytr, Xte, yte, **kw)
    for w in words: assert w in str(e.value), str(e.value)

def test_lbfgs_probe_bad_shapes_and_classes():
    Xtr, ytr = planted(50, 0); Xte, yte = planted(20, 1)
    with pytest.raises(ValueError, match='train_feats has 24 dims but test_feats has 20'): lbfgs_probe(Xtr, ytr, Xte[:, :20], yte)
    with pytest.raises(ValueError, match='train_labels has'): lbfgs_probe(Xtr, ytr[:10], Xte, yte)
    y1 = torch.tensor([0] * 10 + [1])                                           # class 1: a single training row
    with pytest.raises(ValueError, match='class 1 has 1'): lbfgs_probe(Xtr[:11], y1, Xte, yte)

def test_knn_planted_random_and_weights():
    Xtr, ytr = planted(1000, 0); Xte, yte = planted(500, 1)
    assert accuracy(knn_classify(Xtr, ytr, Xte), yte) >= 0.95
    R = torch.randn(1500, 24, generator=torch.Generator().manual_seed(3))
    assert abs(accuracy(knn_classify(R[:1000], ytr, R[1000:]), yte) - 0.1) < CHANCE_BAND
    # k=1 returns the label of the most similar training point
    p = knn_classify(Xtr, ytr, Xtr[:50], k=1)
    assert torch.equal(p, ytr[:50])
    # blocks of test rows give the same answer as one block
    assert torch.equal(knn_classify(Xtr, ytr, Xte, batch_size=7), knn_classify(Xtr, ytr, Xte))

def test_bad_feature_input():
    X, y = planted(20, 0)
    with pytest.raises(ValueError, match='20 rows but train_labels has 19'): linear_probe(X, y[:19], X, y)
    with pytest.raises(ValueError, match='24 dims but test_feats has 3'): linear_probe(X, y, X[:, :3], y)
    with pytest.raises(ValueError, match="'sgd', 'lars' or 'adamw'"): linear_probe(X, y, X, y, optimizer='adam')
    with pytest.raises(ValueError, match='class ids'): linear_probe(X, y.float(), X, y)
    with pytest.raises(ValueError, match=r'k must be an int in 1\.\.20'): knn_classify(X, y, X, k=21)
    with pytest.raises(ValueError, match='T must be > 0'): knn_classify(X, y, X, T=0.)
    with pytest.raises(ValueError, match='differ in shape'): accuracy(y[:3], y)

def test_features_formats_and_sizes():
    torch.manual_seed(0); mae = mae_vit_micro_patch4()
    ds = SyntheticParts(n=12, size=32)
    X, y = extract_features(mae, ds, batch_size=5)
    imgs = torch.stack([ds[i]['image'] for i in range(12)]); labels = torch.tensor([ds[i]['label'] for i in range(12)])
    X2, y2 = extract_features(mae.encoder(), TensorDataset(imgs, labels), batch_size=12)   # (image, label) pairs
    # batches of 5 and 12 round differently: 4 blocks whose longest reduction is the MLP's 4·128, outputs' size
    tol = layers(4 * 128, 4, X2.abs().max())
    torch.testing.assert_close(X, X2, atol=tol, rtol=0); assert torch.equal(y, y2)
    # normalisation is applied as given
    m, s = (0.5, 0.4, 0.3), (0.2, 0.3, 0.25)
    X3, _ = extract_features(mae, ds, mean=m, std=s)
    enc = mae.encoder().eval()
    with torch.no_grad():
        ref = enc.forward_features((imgs - torch.tensor(m).view(1, 3, 1, 1)) / torch.tensor(s).view(1, 3, 1, 1))[:, 0]
    torch.testing.assert_close(X3, ref, atol=layers(4 * 128, 4, ref.abs().max()), rtol=0)   # as above
    with pytest.raises(ValueError, match=r'expects 3×32×32 images but the data has 3×64×64'):
        extract_features(mae, SyntheticParts(n=2, size=64))
    with pytest.raises(ValueError, match='both mean and std'): extract_features(mae, ds, mean=m)
    with pytest.raises(TypeError, match='VisionTransformer or a MaskedAutoencoder'): extract_features(torch.nn.Linear(2, 2), ds)
    with pytest.raises(ValueError, match="'image' and 'label'"):
        extract_features(mae, [dict(image=imgs[0])])

def test_encoder_training_flag_restored():
    vit = VisionTransformer(img_size=16, patch_size=4, embed_dim=32, depth=1, num_heads=2, seed=0).train()
    extract_features(vit, TensorDataset(torch.rand(4, 3, 16, 16), torch.arange(4)))
    assert vit.training

def test_finetune_learns_planted_images_and_keeps_encoder():
    # images whose class is the brightness of one quadrant: a learnable task for a 1-block ViT
    g = torch.Generator().manual_seed(0)
    x = torch.rand(96, 3, 16, 16, generator=g) * 0.2
    y = torch.arange(96) % 4
    for i in range(96):
        r, c = divmod(int(y[i]), 2); x[i, :, r * 8:(r + 1) * 8, c * 8:(c + 1) * 8] += 0.8
    vit = VisionTransformer(img_size=16, patch_size=4, embed_dim=32, depth=1, num_heads=2, seed=0)
    before = {k: v.clone() for k, v in vit.state_dict().items()}
    res = finetune(vit, TensorDataset(x, y), TensorDataset(x, y), epochs=15, batch_size=16, blr=2e-2, hflip=False, drop_path=0., seed=0)
    assert res['acc'] >= 0.9, res
    assert all(torch.equal(v, vit.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match='epochs'): finetune(vit, TensorDataset(x, y), TensorDataset(x, y), epochs=0)

def test_attention_maps_are_the_vits():
    "One rule: evaluate's maps are vit.cls_attention_maps of the encoder, for a ViT and for an MAE alike; sizes are checked first."
    vit = VisionTransformer(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=4, seed=1)
    x = torch.randn(3, 3, 16, 16)
    assert torch.equal(attention_maps(vit, x), cls_attention_maps(vit, x))
    a = cls_attention(vit.eval().get_last_selfattention(x), (4, 4)).flatten(2)        # the rule restated
    a = (a - a.amin(-1, keepdim=True)) / (a.amax(-1, keepdim=True) - a.amin(-1, keepdim=True))
    # the same probabilities; min–max and the mean over 4 heads in another order: a few roundings of values <= 1
    torch.testing.assert_close(attention_maps(vit, x), a.mean(1).view(3, 4, 4), atol=reduction(4 + 4), rtol=0)
    mae = mae_vit_micro_patch4()
    imgs = torch.randn(2, 3, 32, 32)
    assert torch.equal(attention_maps(mae, imgs), cls_attention_maps(mae.encoder(), imgs))
    with torch.no_grad():                                     # a flat head counts as zeros, not as a 1e-12-scaled copy
        vit.blocks[-1].attn.qkv.weight[:32].zero_(); vit.blocks[-1].attn.qkv.bias[:32].zero_()   # q = 0: every head flat
    assert torch.equal(attention_maps(vit, x), torch.ones(3, 4, 4))   # all heads flat -> uniform
    with pytest.raises(ValueError, match='expects 3×16×16'): attention_maps(vit, torch.randn(1, 3, 32, 32))

def test_attention_on_object_exact():
    fg = torch.zeros(1, 3, 3, dtype=torch.bool); fg[0, 1, 1] = True; fg[0, 0, 0] = True
    a = torch.zeros(1, 3, 3); a[0, 1, 1] = 2.; a[0, 2, 2] = 1.; a[0, 0, 1] = 1.   # total 4, 2 on fg
    r = attention_on_object(a, fg)
    # float32 results: 2/9 is rounded once (half an ulp, relative <= eps/2); 0.5 and 1/3 as below
    assert math.isclose(r['mass'], 0.5, rel_tol=EPS32) and math.isclose(r['chance'], 2 / 9, rel_tol=EPS32)
    # top-2: (1,1) and then the first of the two 1.0s in patch order, (0,1): IoU = 1 / 3
    assert math.isclose(r['iou'], 1 / 3, rel_tol=EPS32)
    r2 = attention_on_object(a.view(1, 9), fg.view(1, 9))   # [N, L] works the same
    assert math.isclose(r2['iou'], r['iou']) and math.isclose(r2['mass'], r['mass'])
    with pytest.raises(ValueError, match='non-negative'): attention_on_object(-a, fg)
    with pytest.raises(ValueError, match='no image'): attention_on_object(a, torch.zeros_like(fg))

def test_fg_patches_threshold():
    fg = torch.zeros(1, 4, 4, dtype=torch.bool); fg[0, :2, 0] = True   # 2 of the 4 pixels of patch (0, 0)
    assert fg_patches(fg, 2)[0, 0, 0] and not fg_patches(fg, 2, threshold=0.75)[0, 0, 0]

@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
def test_features_on_gpu_match_cpu():
    torch.manual_seed(0); mae = mae_vit_micro_patch4()
    ds = SyntheticParts(n=16, size=32)
    Xc, _ = extract_features(mae, ds)
    Xg, _ = extract_features(mae.cuda(), ds)
    # cuDNN convolutions default to TF32 (10-bit mantissa) for the patch embedding; relative ~EPS_TF32 of the features
    torch.testing.assert_close(Xc, Xg, atol=EPS_TF32 * Xc.abs().max().item(), rtol=EPS_TF32)

@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
def test_lbfgs_probe_on_gpu_matches_cpu():
    """The same optimum on either device (one lam, so the path's ties cannot differ): both fits stop within |g|_2 / lam
    of it in W (the objective is lam-strongly convex in W), |g|_2 <= sqrt(P) * tol, so the two W differ by at most twice that."""
    Xtr, ytr = planted(800, 0, signal=0.5); Xte, yte = planted(400, 1, signal=0.5)
    c = lbfgs_probe(Xtr, ytr, Xte, yte, lams=(0.1,), extend=False)
    g = lbfgs_probe(Xtr.cuda(), ytr.cuda(), Xte.cuda(), yte.cuda(), lams=(0.1,), extend=False)
    assert g['W'].is_cuda and g['pred'].device.type == 'cpu' and g['converged'] and c['converged']
    P = c['W'].numel() + c['b'].numel()
    assert (g['W'].cpu() - c['W']).norm() <= 2 * 2 * P ** 0.5 * 1e-5 / 0.1
