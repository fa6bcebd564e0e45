"""Heavier checks of `semmae_edu.vit` (chapter nbs/01_vit.ipynb): full-depth equality with timm, the
official MAE position table, attention probabilities block by block, training-time behaviour, bad input."""
import io, math

import numpy as np
import pytest
import torch
from timm.models.vision_transformer import VisionTransformer as TimmViT

from tolerance import EPS32, EPS_BF16, EPS_TF32, layers, reduction
from semmae_edu.vit import (VIT_SIZES, Attention, Block, DropPath, PatchEmbed, VisionTransformer, cls_attention,
                            drop_path, get_1d_sincos_pos_embed, get_2d_sincos_pos_embed, vit_base, vit_huge,
                            vit_large, vit_small, vit_tiny)

THREADS = min(2, torch.get_num_threads())   # at most two intra-op threads (tests/conftest.py)


def _hw(s): return (s, s) if isinstance(s, int) else tuple(s)


def _images(cfg, n=2, seed=0):
    return torch.rand(n, cfg.get('in_chans', 3), *_hw(cfg['img_size']), generator=torch.Generator().manual_seed(seed))


def _timm_cfg(cfg):
    "Our config as timm kwargs (timm's default num_classes is 1000, ours 0)."
    return {k: v for k, v in {**dict(num_classes=0), **cfg}.items() if k not in ('seed',)}


# ---------------------------------------------------------------- equality with timm, full depth
FULL = [
    ('tiny 32/4 token', vit_tiny, dict(img_size=32, patch_size=4), dict(embed_dim=192, depth=12, num_heads=3)),
    ('small 64/8 avg+head', vit_small, dict(img_size=64, patch_size=8, num_classes=10, global_pool='avg'),
     dict(embed_dim=384, depth=12, num_heads=6)),
    ('tiny 32x48/8 token+head 1 channel', vit_tiny, dict(img_size=(32, 48), patch_size=8, in_chans=1, num_classes=7),
     dict(embed_dim=192, depth=12, num_heads=3)),
    ('tiny 24x32 patch (4,8) avg', vit_tiny, dict(img_size=(24, 32), patch_size=(4, 8), global_pool='avg'),
     dict(embed_dim=192, depth=12, num_heads=3)),
]


@pytest.mark.parametrize('name,factory,cfg,size', FULL, ids=[f[0] for f in FULL])
def test_equal_to_timm_both_ways(name, factory, cfg, size):
    ours = factory(**cfg, seed=1).eval()
    theirs = TimmViT(**_timm_cfg({**cfg, **size})).eval()
    assert set(ours.state_dict()) == set(theirs.state_dict())
    for k, v in theirs.state_dict().items(): assert ours.state_dict()[k].shape == v.shape, k
    x = _images(cfg)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    # the same float32 operations, possibly summed in another order (fused vs explicit kernels): each block's longest
    # reduction is the MLP's 4D-long one; the budget is depth × 4D × eps of the outputs' size (tolerance.layers: each
    # block's own rounding, not its amplification by the blocks after it)
    tol = lambda ref: layers(4 * size['embed_dim'], size['depth'], ref.abs().max())
    with torch.no_grad():
        ref = theirs.forward_features(x); assert (ours.forward_features(x) - ref).abs().max() <= tol(ref)
        ref = theirs(x); assert (ours(x) - ref).abs().max() <= tol(ref)
        ref = theirs.forward_head(theirs.forward_features(x), pre_logits=True)
        assert (ours.forward_head(ours.forward_features(x), pre_logits=True) - ref).abs().max() <= tol(ref)
    fresh = TimmViT(**_timm_cfg({**cfg, **size})).eval()   # timm's own init, learned-style positions
    ours.load_state_dict(fresh.state_dict(), strict=True)
    with torch.no_grad(): ref = fresh(x); assert (ours(x) - ref).abs().max() <= tol(ref)


@pytest.mark.slow
def test_vit_base_224_equal_to_timm():
    "ViT-B/16 at 224, the MAE model's encoder size."
    ours = vit_base(img_size=224, patch_size=16, seed=0).eval()
    theirs = TimmViT(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12, num_classes=0).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(): ref = theirs.forward_features(x); d = (ours.forward_features(x) - ref).abs().max()
    assert d <= layers(4 * 768, 12, ref.abs().max())   # 12 blocks, longest reduction 4·768 (the MLP), outputs' size
    assert ours.pos_embed.shape == (1, 197, 768)


def test_state_dict_survives_save_and_load():
    m = vit_tiny(img_size=32, patch_size=4, num_classes=3, seed=0)
    buf = io.BytesIO(); torch.save(m.state_dict(), buf); buf.seek(0)
    m2 = vit_tiny(img_size=32, patch_size=4, num_classes=3, seed=1)
    m2.load_state_dict(torch.load(buf), strict=True)
    for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items()): assert torch.equal(a, b), k


# ---------------------------------------------------------------- attention probabilities
def _timm_probs_by_hand(blk, x):
    "Attention probabilities of a timm block computed by hand from its qkv weights."
    a = blk.attn
    y = blk.norm1(x)
    N, T, C = y.shape
    qkv = (y @ a.qkv.weight.T + a.qkv.bias).reshape(N, T, 3, a.num_heads, C // a.num_heads).permute(2, 0, 3, 1, 4)
    q, k = qkv[0], qkv[1]
    return ((q @ k.transpose(-2, -1)) / math.sqrt(C // a.num_heads)).softmax(-1)


def test_attention_probabilities_every_block_equal_timm():
    cfg = dict(img_size=32, patch_size=4, num_classes=0)
    ours = vit_tiny(**cfg, seed=2).eval()
    theirs = TimmViT(**_timm_cfg({**cfg, **dict(embed_dim=192, depth=12, num_heads=3)})).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = _images(cfg, seed=2)
    with torch.no_grad():
        t_ours, t_theirs = ours.prepare_tokens(x), theirs._pos_embed(theirs.patch_embed(x))
        # the patch embedding is a 3·4·4 = 48-term dot product (then + the position, one more rounding)
        assert (t_ours - t_theirs).abs().max() <= reduction(48 + 1, t_theirs.abs().max())
        for i, (b_ours, b_theirs) in enumerate(zip(ours.blocks, theirs.blocks)):
            p_theirs = _timm_probs_by_hand(b_theirs, t_theirs)
            t_ours, p_ours = b_ours(t_ours, return_attn=True)
            t_theirs = b_theirs(t_theirs)
            assert p_ours.shape == (2, 3, 65, 65)
            # probabilities (<= 1) of block i carry the token differences of the i blocks before it (longest
            # reduction 4·192, the MLP) plus this block's logits (a 64-term dot product) and softmax (65 terms)
            assert (p_ours - p_theirs).abs().max() <= layers(4 * 192, i + 1) + reduction(64 + 65)
        assert (ours.get_last_selfattention(x) - p_theirs).abs().max() <= layers(4 * 192, 12) + reduction(64 + 65)


def test_fused_and_explicit_paths_agree_whole_model():
    m = vit_small(img_size=64, patch_size=8, seed=0).eval()
    x = _images(dict(img_size=64), seed=1)
    with torch.no_grad():
        fused = m.forward_features(x)
        for b in m.blocks: b.attn.fused_attn = False
        explicit = m.forward_features(x)
    assert (fused - explicit).abs().max() <= layers(4 * 384, 12, explicit.abs().max())   # 12 blocks, the MLP's 4D-long reduction


def test_attention_is_permutation_equivariant_and_rows_sum_to_one():
    att = Attention(64, num_heads=4).eval()
    x = torch.randn(3, 10, 64, generator=torch.Generator().manual_seed(0))
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y, p = att(x, return_attn=True)
        y2, p2 = att(x[:, perm], return_attn=True)
    # one attention layer: the qkv/proj dot products have 64 terms, the attention sums 10 tokens
    assert (y2 - y[:, perm]).abs().max() <= layers(64, 3, y.abs().max())              # qkv, A·V, proj
    assert (p2 - p[:, :, perm][:, :, :, perm]).abs().max() <= reduction(16 + 10)     # logits (head_dim 16), softmax over 10
    assert (p.sum(-1) - 1).abs().max() <= reduction(10 + 10)                          # softmax's normalisation + this sum


def test_cls_attention_layout():
    m = vit_tiny(img_size=(16, 24), patch_size=8, seed=0).eval()   # 2 x 3 grid
    a = m.get_last_selfattention(torch.rand(2, 3, 16, 24))
    maps = cls_attention(a, m.grid_size)
    assert maps.shape == (2, 3, 2, 3)
    for r in range(2):
        for c in range(3): assert torch.equal(maps[:, :, r, c], a[:, :, 0, 1 + r * 3 + c])
    assert not a.requires_grad


# ---------------------------------------------------------------- MAE's fixed position table
def _mae_official(embed_dim, h, w, cls_token, omega_dtype):
    "The official MAE util/pos_embed.py formula in numpy (np.float = float64 at release; float32 later)."
    def one_d(d, pos):
        omega = np.arange(d // 2, dtype=omega_dtype); omega /= d / 2.; omega = 1. / 10000 ** omega
        out = np.einsum('m,d->md', pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)
    grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), axis=0)
    grid = grid.reshape([2, 1, h, w])
    emb = np.concatenate([one_d(embed_dim // 2, grid[0]), one_d(embed_dim // 2, grid[1])], axis=1)
    if cls_token: emb = np.concatenate([np.zeros([1, embed_dim]), emb], axis=0)
    return torch.from_numpy(emb).float()


@pytest.mark.parametrize('D', [16, 48, 64, 192, 256, 384, 512, 768, 1024, 1280])
@pytest.mark.parametrize('hw', [(1, 1), (2, 2), (8, 8), (14, 14), (16, 16), (3, 7), (7, 3)])
def test_pos_embed_equals_official_mae(D, hw):
    ours = get_2d_sincos_pos_embed(D, hw, cls_token=True)
    assert torch.equal(ours, _mae_official(D, *hw, True, np.float64))                            # bit for bit
    # The later revision computes in float32, so its argument pos·ω is rounded: ω = 1/10000^(k/(D/4)) carries the
    # float32 rounding of the exponent amplified by ln(10^4)·(k/(D/4)) <= 9.21 (half an ulp each: 4.6 eps), pow and the
    # reciprocal (~2 eps), the product half an ulp more; at |pos| <= max(h, w) - 1 that is an absolute error of
    # max_pos·7.1 eps in the argument. sin/cos pass it on (derivative <= 1) and add their own <= 4 ulps (numpy's SIMD
    # float32 sin/cos differ by CPU), our float64 value half an ulp when cast. A 2-core CPU shows 1.79e-6 at 14x14.
    max_pos = max(hw) - 1
    bound = (max_pos * (math.log(1e4) / 2 + 2.5) + 4.5) * EPS32
    assert (ours - _mae_official(D, *hw, True, np.float32)).abs().max() <= bound


def test_pos_embed_halves_and_model_table():
    pe = get_2d_sincos_pos_embed(32, (4, 5)).reshape(4, 5, 32)
    col = get_1d_sincos_pos_embed(16, torch.arange(5.)).float()
    row = get_1d_sincos_pos_embed(16, torch.arange(4.)).float()
    assert torch.equal(pe[:, :, :16], col[None].expand(4, 5, 16))   # first half: column
    assert torch.equal(pe[:, :, 16:], row[:, None].expand(4, 5, 16))  # second half: row
    m = vit_tiny(img_size=(32, 40), patch_size=8)
    assert torch.equal(m.pos_embed[0], get_2d_sincos_pos_embed(192, (4, 5), cls_token=True))


# ---------------------------------------------------------------- training-time behaviour
def test_pos_embed_frozen_and_everything_else_trains():
    m = vit_tiny(img_size=32, patch_size=4, num_classes=5, seed=0).train()
    before = m.pos_embed.detach().clone()
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1)
    loss = torch.nn.functional.cross_entropy(m(torch.rand(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert m.pos_embed.grad is None
    no_grad = [n for n, p in m.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert no_grad == []
    opt.step()
    assert torch.equal(m.pos_embed.detach(), before)


def test_drop_path_rates_match_timm_and_act_only_in_training():
    cfg = dict(img_size=32, patch_size=4, drop_path_rate=0.1)
    ours = vit_tiny(**cfg, seed=0)
    theirs = TimmViT(**_timm_cfg({**cfg, **dict(embed_dim=192, depth=12, num_heads=3)}))
    rates = lambda model: [getattr(b.drop_path1, 'drop_prob', 0.) for b in model.blocks]
    assert np.allclose(rates(ours), rates(theirs)) and rates(ours)[0] == 0. and math.isclose(rates(ours)[-1], 0.1)
    x = torch.rand(8, 3, 32, 32)
    ours.eval()
    with torch.no_grad(): assert torch.equal(ours(x), ours(x))
    ours.train()
    torch.manual_seed(0)
    with torch.no_grad(): a, b = ours(x), ours(x)
    assert not torch.equal(a, b)


def test_seed_gives_same_weights_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a = vit_tiny(img_size=32, patch_size=4, num_classes=3, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    b = vit_tiny(img_size=32, patch_size=4, num_classes=3, seed=5)
    c = vit_tiny(img_size=32, patch_size=4, num_classes=3, seed=6)
    for k in a.state_dict(): assert torch.equal(a.state_dict()[k], b.state_dict()[k]), k
    assert not torch.equal(a.blocks[0].attn.qkv.weight, c.blocks[0].attn.qkv.weight)


def test_mae_init_statistics():
    m = vit_base(img_size=64, patch_size=16, seed=0)
    w = m.patch_embed.proj.weight.reshape(768, -1)           # like a Linear 768 x 768
    bound = math.sqrt(6 / (768 + 768))
    assert w.abs().max() <= bound and math.isclose(w.std().item(), bound / math.sqrt(3), rel_tol=0.02)
    fc1 = m.blocks[3].mlp.fc1.weight
    assert math.isclose(fc1.std().item(), math.sqrt(2 / (768 + 3072)), rel_tol=0.02)
    assert math.isclose(m.cls_token.std().item(), 0.02, rel_tol=0.2)
    assert torch.equal(m.norm.weight.detach(), torch.ones(768)) and torch.equal(m.norm.bias.detach(), torch.zeros(768))


def test_pieces_build_an_encoder_on_visible_tokens():
    "What the MAE chapter does: embed, add positions, keep some tokens, prepend CLS, blocks, norm."
    m = vit_tiny(img_size=32, patch_size=4, seed=0).eval()
    x = torch.rand(2, 3, 32, 32)
    keep = torch.tensor([[0, 5, 9, 63], [1, 2, 40, 41]])
    with torch.no_grad():
        t = m.patch_embed(x) + m.pos_embed[:, 1:]
        t = torch.gather(t, 1, keep[..., None].expand(-1, -1, 192))
        cls = (m.cls_token + m.pos_embed[:, :1]).expand(2, -1, -1)
        t = torch.cat([cls, t], 1)
        for blk in m.blocks: t = blk(t)
        t = m.norm(t)
        # keeping every patch in order is exactly forward_features
        full = m.patch_embed(x) + m.pos_embed[:, 1:]
        full = torch.cat([cls, full], 1)
        for blk in m.blocks: full = blk(full)
        assert torch.equal(m.norm(full), m.forward_features(x))
    assert t.shape == (2, 5, 192)


def test_bfloat16_autocast_runs():
    m = vit_tiny(img_size=32, patch_size=4, seed=0).eval()
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        y = m.forward_features(torch.rand(2, 3, 32, 32))
    assert torch.isfinite(y.float()).all()


def test_meta_device_builds_without_memory():
    with torch.device('meta'):
        m = vit_huge(img_size=224, patch_size=14)
    assert m.patch_embed.num_patches == 256 and m.pos_embed.is_meta


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_gpu_matches_cpu_and_flash_path():
    m = vit_base(img_size=224, patch_size=16, seed=0).eval()
    x = torch.rand(4, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cpu = m.forward_features(x)
        g = m.cuda()
        gpu = g.forward_features(x.cuda()).cpu()
        # cuDNN convolutions default to TF32: the 768-term patch embedding carries ~EPS_TF32 relative error (random
        # signs: ~sqrt(768)·2^-11 of the size of its terms); the float32 blocks add far less
        assert (cpu - gpu).abs().max() <= 1e-3   # = EPS_TF32 of the outputs' size (|out| <~ 1): not yet run on a GPU here
        with torch.autocast('cuda', dtype=torch.bfloat16):
            y16 = g.forward_features(x.cuda()).float().cpu()
        assert (y16 - cpu).abs().max() <= 0.1   # bfloat16 keeps 8 bits: 12 blocks of ~EPS_BF16-relative rounding on |out| <~ 3
        a = g.get_last_selfattention(x.cuda())
        assert (a.sum(-1) - 1).abs().max() <= reduction(197 + 197)   # softmax over 197 tokens, then this sum, float32


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize('make,exc,words', [
    (lambda: PatchEmbed(img_size=30, patch_size=4), ValueError, 'img_size 30 must be divisible by patch_size 4'),
    (lambda: PatchEmbed(img_size=(32, 30), patch_size=(4, 4)), ValueError, 'patch_size'),
    (lambda: PatchEmbed(img_size=32.0), TypeError, 'img_size'),
    (lambda: PatchEmbed(img_size=(32, 32, 3)), TypeError, 'img_size'),
    (lambda: PatchEmbed(patch_size=0), ValueError, 'patch_size'),
    (lambda: PatchEmbed(in_chans=0), ValueError, 'in_chans'),
    (lambda: PatchEmbed(embed_dim='768'), TypeError, 'embed_dim'),
    (lambda: Attention(dim=50, num_heads=3), ValueError, 'num_heads'),
    (lambda: DropPath(-0.1), ValueError, 'drop_prob'),
    (lambda: VisionTransformer(img_size=32, patch_size=4, embed_dim=48, depth=2, num_heads=3, global_pool='mean'),
     ValueError, 'global_pool'),
    (lambda: VisionTransformer(img_size=32, patch_size=4, embed_dim=48, depth=0, num_heads=3), ValueError, 'depth'),
    (lambda: VisionTransformer(img_size=32, patch_size=4, embed_dim=48, depth=2, num_heads=3, num_classes=-1),
     ValueError, 'num_classes'),
    (lambda: VisionTransformer(img_size=32, patch_size=4, embed_dim=48, depth=2, num_heads=3, drop_path_rate=1.0),
     ValueError, 'drop_path_rate'),
    (lambda: VisionTransformer(img_size=32, patch_size=4, embed_dim=50, depth=2, num_heads=5), ValueError,
     'multiple of 4'),
    (lambda: vit_small(num_heads=4), TypeError, 'vit_small fixes'),
    (lambda: get_2d_sincos_pos_embed(34, 4), ValueError, 'multiple of 4'),
    (lambda: get_2d_sincos_pos_embed(32, (4, 0)), ValueError, 'grid_size'),
])
def test_bad_construction(make, exc, words):
    with pytest.raises(exc, match=None) as e: make()
    assert words in str(e.value)


@pytest.mark.parametrize('x,exc,words', [
    ([[0.]], TypeError, 'torch.Tensor'),
    (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), TypeError, 'floating-point'),
    (torch.zeros(3, 32, 32), ValueError, '4-D'),
    (torch.zeros(1, 1, 32, 32), ValueError, 'in_chans=3'),
    (torch.zeros(1, 3, 32, 16), ValueError, 'img_size=(32, 32)'),
])
def test_bad_images(x, exc, words):
    m = vit_tiny(img_size=32, patch_size=4)
    for f in (m, m.forward_features, m.get_last_selfattention, m.patch_embed):
        with pytest.raises(exc) as e: f(x)
        assert words in str(e.value)


def test_bad_tokens_and_maps():
    with pytest.raises(ValueError, match=r'\[N, T, 48\]'): Block(48, 3)(torch.zeros(2, 5, 40))
    with pytest.raises(ValueError, match='grid_size'): cls_attention(torch.zeros(1, 3, 17, 17), (4, 5))
    with pytest.raises(ValueError, match='attn must be'): cls_attention(torch.zeros(3, 17, 17), (4, 4))


def test_sizes_table():
    for name, f in dict(tiny=vit_tiny, small=vit_small, base=vit_base, large=vit_large, huge=vit_huge).items():
        with torch.device('meta'): m = f(img_size=32, patch_size=16)
        D, depth, heads = VIT_SIZES[name]
        assert (m.embed_dim, len(m.blocks), m.blocks[0].attn.num_heads) == (D, depth, heads)
