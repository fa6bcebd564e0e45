"""Tests for semmae_edu.optim beyond the chapter's cells: layer-wise decay on a deeper ViT and against timm's
`param_groups_layer_decay`, LARS by hand and against timm's `Lars`."""
import math
import pytest
import torch
import timm

from semmae_edu.optim import param_groups_lrd, layer_id, LARS, lr_at
from semmae_edu.vit import VisionTransformer
from tolerance import EPS32

try: from timm.optim import param_groups_layer_decay                                  # timm >= 1.0
except ImportError: from timm.optim.optim_factory import param_groups_layer_decay     # timm 0.9 (the floor)

THREADS = 1   # one intra-op thread (tests/conftest.py)

def test_lars_trust_ratio():
    # one step from zero momentum: matrix update = lr * 0.001 * ||w|| / ||g|| * g; bias update = lr * g
    w = torch.nn.Parameter(torch.full((2, 2), 3.)); b = torch.nn.Parameter(torch.zeros(2))
    opt = LARS([w, b], lr=1.0)
    w.grad = torch.ones(2, 2); b.grad = torch.ones(2)
    opt.step()
    # float32 defaults of assert_close (rtol 1.3e-6 ≈ 11 eps): two norms (4-term sums), a ratio and a subtraction
    torch.testing.assert_close(w.data, torch.full((2, 2), 3. - 0.001 * 6. / 2.))
    assert torch.equal(b.data, torch.full((2,), -1.))                      # 0 - 1·1: exact

def test_lrd_deeper_vit_all_params():
    vit = VisionTransformer(img_size=16, patch_size=4, embed_dim=32, depth=5, num_heads=2, num_classes=4, global_pool='avg', seed=0)
    d = 0.65
    for g in param_groups_lrd(vit, 0.05, d):
        for n in g['names']:
            lid = 0 if n.startswith(('patch_embed', 'cls_token')) else int(n.split('.')[1]) + 1 if n.startswith('blocks.') else 6
            assert g['layer_id'] == lid == layer_id(n, 5)
            assert math.isclose(g['lr_scale'], d ** (6 - lid))
            p = dict(vit.named_parameters())[n]
            assert g['weight_decay'] == (0. if p.ndim == 1 or n == 'cls_token' else 0.05)
    with pytest.raises(ValueError, match='layer_decay'): param_groups_lrd(vit, layer_decay=0.)

def _scales(groups, model):
    name = {id(p): n for n, p in model.named_parameters()}
    return {name[id(p)]: (g['lr_scale'], g['weight_decay']) for g in groups for p in g['params']}

@pytest.mark.parametrize('depth, ld', [(2, 0.5), (12, 0.65)])
def test_layer_decay_equals_timms(depth, ld):
    "Global average pooling (fine-tuning): every parameter gets timm's scale and weight decay; with the CLS token, all but the final norm."
    for pool in ('avg', 'token'):
        tv = timm.create_model('vit_tiny_patch16_224', pretrained=False, img_size=32, patch_size=8, depth=depth, num_classes=5,
                               global_pool=pool)
        nwd = tuple(tv.no_weight_decay())
        ours = _scales(param_groups_lrd(tv, 0.05, ld, nwd), tv)
        theirs = _scales(param_groups_layer_decay(tv, weight_decay=0.05, no_weight_decay_list=nwd, layer_decay=ld), tv)
        assert set(ours) == set(theirs) == {n for n, p in tv.named_parameters() if p.requires_grad}
        differ = {n for n in ours if ours[n] != theirs[n]}
        assert differ == (set() if pool == 'avg' else {'norm.weight', 'norm.bias'}), differ
        for n in differ: assert theirs[n] == (ld * ours[n][0], ours[n][1])   # timm merges the final norm into the last block

def test_lars_equals_timms_without_weight_decay():
    "MAE's probe setting (no weight decay): timm's Lars adapting the matrices, plain momentum SGD for the vector."
    from timm.optim import Lars
    w0 = torch.randn(16, 32, generator=torch.Generator().manual_seed(0)); b0 = torch.randn(16, generator=torch.Generator().manual_seed(1))
    def run(make, steps=8):
        w, b = w0.clone().requires_grad_(), b0.clone().requires_grad_()
        opt = make(w, b)
        for s in range(steps):
            g = torch.Generator().manual_seed(100 + s)
            w.grad, b.grad = torch.randn(16, 32, generator=g), torch.randn(16, generator=g)
            opt.step()
        return w.detach(), b.detach()
    ours = run(lambda w, b: LARS([w, b], lr=6.4))
    theirs = run(lambda w, b: Lars([dict(params=[w], always_adapt=True), dict(params=[b])], lr=6.4, momentum=0.9))
    # the rules differ only by timm's eps=1e-8 added to ||g|| (about 23 here: below float32's resolution there); a
    # different summation order of the two 512-term norms moves the trust ratio by at most 2·512·eps32 ≈ 1.2e-4 (relative),
    # carried through 8 momentum steps (gain <= 1/(1 - 0.9) = 10) of size lr·0.001·||w|| ≈ 0.15:
    bound = 8 * 10 * 0.15 * 2 * 512 * EPS32
    assert (ours[0] - theirs[0]).abs().max() <= bound
    assert torch.equal(ours[1], theirs[1])        # the vector: plain momentum SGD, the same operations in both

def test_lr_at_is_continuous_and_monotone_pieces():
    assert lr_at(0, 1., 10, 2) == 0. and lr_at(2, 1., 10, 2) == 1. and math.isclose(lr_at(10, 1., 10, 2, 0.1), 0.1)
    assert abs(lr_at(2 - 1e-9, 1., 10, 2) - lr_at(2, 1., 10, 2)) < 1e-8   # no jump where the warm-up ends
