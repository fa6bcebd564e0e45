"Heavier checks of SemMAE masking (chapter 06_semmae): a loop reference, big grids, statistics, the strategy with a DataLoader."
import math, pickle
import pytest
import torch
from tolerance import EPS64
from semmae_edu.semmae import semantic_masking, part_sizes, intra_part_counts, inter_part_counts, mix_counts, fix_counts, mask_in_parts, lam_schedule, lam_at, PartBank, SemMAEStrategy
from semmae_edu.data import patch_parts


def layouts(g, N, L):
    "Part layouts [N, L] of many kinds, with their n_parts."
    yield 'random5', torch.randint(0, 5, (N, L), generator=g), 5
    yield 'random-with-empty-parts', torch.randint(0, 3, (N, L), generator=g), 9
    yield 'single', torch.zeros(N, L, dtype=torch.long), 1
    yield 'two-parts-one-tiny', (torch.rand(N, L, generator=g) < 1.5 / L).long(), 2
    yield 'many', torch.randint(0, L, (N, L), generator=g), L
    yield 'all-size-1', torch.argsort(torch.rand(N, L, generator=g), 1), L
    cut = torch.randint(1, max(L, 2), (N, 5), generator=g).sort(1).values
    yield 'blocks', (torch.arange(L) >= cut[:, :, None]).sum(1), 6
    k = torch.randint(1, 20, (N, 1), generator=g)                              # a different K per image
    yield 'varying-K', (torch.rand(N, L, generator=g) * k).long(), 20


RATIOS = [0.05, 0.1, 0.25, 1 / 3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9]
LAMS = [0., 0.1, 0.25, 0.5, 0.6, 0.75, 0.9, 1.]


def masked_per_part(plan, parts, K):
    return torch.zeros(parts.shape[0], K, dtype=torch.long).scatter_add_(1, parts, plan.masked.long())


@pytest.mark.parametrize('L', [2, 7, 16, 49, 196])
def test_exact_count_and_structure_grid(L):
    g = torch.Generator().manual_seed(L)
    for kind, parts, K in layouts(g, 32, L):
        sizes = part_sizes(parts, K)
        for r in RATIOS:
            if int(L * (1 - r)) < 1: continue
            M = L - int(L * (1 - r))
            a = intra_part_counts(sizes, r)
            for lam in LAMS:
                plan = semantic_masking(parts, r, lam, g, n_parts=K)
                assert (plan.n_visible, plan.n_masked, plan.n_thrown) == (L - M, M, 0), (kind, r, lam)
                got = masked_per_part(plan, parts, K)
                assert ((got >= 0) & (got <= sizes)).all()
                if lam == 1.:   # the precise bound: each part within one patch of round(r n_k); |D| patches move in all
                    d = (M - a.sum(1)).abs()
                    assert ((got - a).abs() <= 1).all(), (kind, r)
                    assert torch.equal((got - a).abs().sum(1), d), (kind, r)
                    assert (d < (sizes > 0).sum(1) / 2 + 1).all(), (kind, r)
                if lam == 0.:   # whole parts, at most one partly masked
                    partial = ((got > 0) & (got < sizes)).sum(1)
                    assert (partial <= 1).all(), (kind, r)


def reference_masking(parts, r, lam, g, K):
    "The rule image by image in plain Python, drawing the same random numbers in the same order."
    N, L = parts.shape
    visit_noise = torch.rand(N, K, generator=g)
    turn_noise = torch.rand(N, K, generator=g)
    keys = torch.rand(N, L, generator=g, dtype=torch.float64)
    M = L - int(L * (1 - r))
    states = torch.zeros(N, L, dtype=torch.int8)
    for i in range(N):
        p = parts[i].tolist()
        n = [p.count(k) for k in range(K)]
        a = [int(torch.round(torch.tensor(n[k] * r, dtype=torch.float64))) for k in range(K)]  # float64 like the module
        b, left = [0] * K, M
        for k in torch.argsort(visit_noise[i]).tolist():
            b[k] = min(n[k], max(left, 0)); left -= n[k]
        c = [int(torch.round(torch.tensor(lam * a[k] + (1 - lam) * b[k], dtype=torch.float64))) for k in range(K)]
        d = M - sum(c)
        turn = torch.argsort(turn_noise[i]).tolist()
        while d != 0:
            for k in turn:
                if d > 0 and c[k] < n[k]: c[k] += 1; d -= 1
                elif d < 0 and c[k] > 0: c[k] -= 1; d += 1
                if d == 0: break
        for k in range(K):
            ids = [j for j in range(L) if p[j] == k]
            ids.sort(key=lambda j: keys[i, j].item())
            for j in ids[:c[k]]: states[i, j] = 1
    return states


@pytest.mark.parametrize('lam', [0., 0.3, 0.5, 1.])
def test_vectorised_equals_loop_reference(lam):
    g = torch.Generator().manual_seed(7)
    for kind, parts, K in layouts(g, 12, 49):
        for r in (0.5, 0.6, 0.75):
            s = g.get_state()
            plan = semantic_masking(parts, r, lam, g, n_parts=K)
            g2 = torch.Generator(); g2.set_state(s)
            assert torch.equal(plan.states, reference_masking(parts, r, lam, g2, K)), (kind, r, lam)


def test_seeds():
    parts = torch.randint(0, 7, (16, 196), generator=torch.Generator().manual_seed(0))
    for lam in (0., 0.5, 1.):
        p1 = semantic_masking(parts, 0.75, lam, torch.Generator().manual_seed(1))
        assert p1 == semantic_masking(parts, 0.75, lam, torch.Generator().manual_seed(1))
        assert not torch.equal(p1.states, semantic_masking(parts, 0.75, lam, torch.Generator().manual_seed(2)).states)
    g = torch.Generator().manual_seed(3)   # consecutive calls on one generator differ
    assert not torch.equal(semantic_masking(parts, generator=g).states, semantic_masking(parts, generator=g).states)


def test_statistics_intra_part_share_is_r():
    g = torch.Generator().manual_seed(0)
    N, L, K = 4000, 196, 6
    parts = torch.randint(0, K, (N, L), generator=g)
    for r in (0.5, 0.75, 0.9):
        plan = semantic_masking(parts, r, 1., g, n_parts=K)
        got, sizes = masked_per_part(plan, parts, K), part_sizes(parts, K)
        share = got.sum(0).double() / sizes.sum(0)
        # sampling: per image each part's count is within 1.5 of r·n_k (n_k ~ L/K = 33, next line), with random sign, so
        # the share over N images moves by ~(1.5/33)/sqrt(N) = 7e-4; 0.005 is 7 standard errors
        assert torch.allclose(share, torch.full((K,), (L - int(L * (1 - r))) / L, dtype=torch.float64), atol=0.005), (r, share)
        # each image: every part close to r (within 1 patch of r n_k + 1/2); r·n_k is one float64 product (L·eps64 covers it)
        assert ((got - r * sizes).abs() <= 1.5 + L * EPS64).all()
    # inside a part every patch is equally likely to be masked
    parts = torch.tensor([[0] * 4 + [1] * 8]).repeat(20000, 1)
    m = semantic_masking(parts, 0.5, 1., g).masked.double().mean(0)
    assert torch.allclose(m[4:], torch.full((8,), 0.5, dtype=torch.float64), atol=0.02)   # 20,000 draws: s.e. 0.0035, 0.02 = 5.7 s.e.


def test_statistics_inter_part_order_is_uniform():
    "At lambda=0 with four equal parts and M = 3 parts' worth, each part is the visible one a quarter of the time."
    g = torch.Generator().manual_seed(1)
    parts = torch.arange(4).repeat_interleave(4)[None].repeat(20000, 1)     # L=16, parts of 4
    plan = semantic_masking(parts, 0.75, 0., g)
    got = masked_per_part(plan, parts, 4)
    assert ((got == 0) | (got == 4)).all()
    kept = (got == 0).double().mean(0)
    # 20,000 draws of a 1-in-4 event: s.e. sqrt(.25·.75/20000) = 0.0031; 0.015 = 4.9 s.e.
    assert torch.allclose(kept, torch.full((4,), 0.25, dtype=torch.float64), atol=0.015), kept


def test_lambda_moves_from_spread_to_whole_parts():
    "The fraction of parts wholly masked or wholly visible grows as lambda goes from 1 to 0."
    g = torch.Generator().manual_seed(2)
    parts = torch.randint(0, 5, (2000, 49), generator=g)
    whole = []
    for lam in (1., 0.75, 0.5, 0.25, 0.):
        got, s = masked_per_part(semantic_masking(parts, 0.75, lam, g), parts, 5), part_sizes(parts, 5)
        whole.append(((got == 0) | (got == s)).double().mean().item())
    assert all(x <= y + 1e4 * EPS64 for x, y in zip(whole, whole[1:])), whole   # float64 means of 10,000 zeros/ones
    assert whole[0] < 0.05 and whole[-1] > 0.75, whole


def test_official_budget_difference():
    "Our inter-part budget is M = L - int(L(1-r)) (the official code spends int(L*r), one less here)."
    sizes = torch.tensor([[196]])
    assert inter_part_counts(sizes, 196 - int(196 * 0.4)).item() == 118
    plan = semantic_masking(torch.zeros(1, 196, dtype=torch.long), 0.6, 0., torch.Generator().manual_seed(0))
    assert plan.n_masked == 118 and plan.n_masked != int(196 * 0.6)   # MAE's count L - int(L(1-r)); the official budget would be 117


def test_devices_and_dtypes():
    parts = torch.randint(0, 4, (3, 16), dtype=torch.int32)
    plan = semantic_masking(parts, generator=torch.Generator().manual_seed(0))
    assert plan.states.dtype == torch.int8 and plan.order.dtype == torch.long
    assert plan == semantic_masking(parts.long(), generator=torch.Generator().manual_seed(0))
    assert torch.equal(plan.ids_restore.gather(1, plan.order), torch.arange(16).expand(3, 16))


@pytest.mark.parametrize('bad, err, msg', [
    (dict(parts=torch.tensor([[0, 3]]), n_parts=3), ValueError, '[0, 3)'),
    (dict(parts=torch.tensor([[0, -2]])), ValueError, 'ids in [0'),
    (dict(parts=torch.zeros(2, 3, 3, dtype=torch.long)), ValueError, '[N, L]'),
    (dict(parts=torch.zeros(5, dtype=torch.long)), ValueError, '[N, L]'),
    (dict(parts=torch.zeros(0, 4, dtype=torch.long)), ValueError, 'non-empty'),
    (dict(parts=torch.zeros(2, 4)), TypeError, 'integer part ids'),
    (dict(parts=torch.zeros(2, 4, dtype=torch.bool)), TypeError, 'integer part ids'),
    (dict(parts=[[0, 1]]), TypeError, 'torch.Tensor'),
    (dict(parts=torch.zeros(2, 4, dtype=torch.long), lam=1.01), ValueError, 'lam must be in [0, 1]'),
    (dict(parts=torch.zeros(2, 4, dtype=torch.long), lam='half'), TypeError, 'lam must be a number'),
    (dict(parts=torch.zeros(2, 4, dtype=torch.long), lam=float('nan')), ValueError, 'lam must be in [0, 1]'),
    (dict(parts=torch.zeros(2, 4, dtype=torch.long), mask_ratio=0.), ValueError, 'mask_ratio'),
    (dict(parts=torch.zeros(2, 4, dtype=torch.long), mask_ratio=1.2), ValueError, 'mask_ratio'),
    (dict(parts=torch.zeros(2, 4, dtype=torch.long), mask_ratio=0.8), ValueError, 'no visible patch'),
    (dict(parts=torch.zeros(2, 4, dtype=torch.long), n_parts=2.5), TypeError, 'n_parts'),
])
def test_bad_input(bad, err, msg):
    with pytest.raises(err, match=None) as e: semantic_masking(**bad)
    assert msg in str(e.value), str(e.value)


def test_schedules():
    E = 800
    for kind, f in [('quadratic', lambda t: 1 - t * t), ('linear', lambda t: 1 - t), ('cosine', lambda t: (1 + math.cos(math.pi * t)) / 2)]:
        for e in (0, 1, 399, 640, 799):
            # values <= 1 from a handful of float64 operations (another order may differ by a few ulps of 1)
            assert lam_schedule(e, E, kind) == pytest.approx(f((e + 1) / E), rel=0, abs=8 * EPS64)
    assert lam_schedule(3.5, 10) == pytest.approx(1 - 0.45 ** 2, rel=0, abs=8 * EPS64)   # fractional epochs for a per-step schedule
    with pytest.raises(ValueError, match='must be one of'): lam_schedule(0, 10, 'Quadratic')
    with pytest.raises(ValueError, match='t \\(training progress\\)'): lam_at(1.5)
    with pytest.raises(ValueError, match='epoch must be'): lam_schedule(-1, 10)


def test_patch_parts_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    px = torch.randint(0, 5, (3, 12, 8), generator=g)
    out = patch_parts(px, 4, 5)
    for n in range(3):
        for i in range(3):
            for j in range(2):
                votes = torch.bincount(px[n, 4*i:4*i+4, 4*j:4*j+4].flatten(), minlength=5)
                assert out[n, i * 2 + j] == int(votes.argmax())   # first maximum on ties, like patch_parts


class ToyParts(torch.utils.data.Dataset):
    "Module-level so that it pickles (DataLoader workers)."
    def __len__(self): return 10
    def __getitem__(self, i):
        parts = (torch.arange(16)[None, :] // 4).repeat(16, 1)          # four vertical stripes of width 4
        return {'image': torch.rand(3, 16, 16), 'label': 0, 'index': i, 'parts': parts}


def crop_flip(item):
    "A joint transform: the same crop (rows 0..7, cols 4..11) and flip for every per-pixel key."
    return {k: (v[..., 0:8, 4:12].flip(-1) if k in ('image', 'parts') else v) for k, v in item.items()}


def test_strategy_with_dataloader_oracle_and_bank():
    oracle = SemMAEStrategy(mask_ratio=0.5, schedule='linear', n_parts=4)
    ds = oracle.wrap_dataset(ToyParts(), crop_flip)
    assert pickle.loads(pickle.dumps(ds))[0]['parts'].shape == (8, 8)
    assert ds[0]['parts'][0].tolist() == [2, 2, 2, 2, 1, 1, 1, 1]       # the parts followed the crop and flip
    dl = torch.utils.data.DataLoader(ds, batch_size=5)
    oracle.epoch_start(4, 5)
    assert oracle.lam == 0.
    for batch in dl:
        plan = oracle(batch, 2, torch.Generator().manual_seed(0))       # 4x4 patches: columns 0-1 part 2, 2-3 part 1
        assert plan.counts == dict(visible=8, masked=8, thrown=0)
        cols = plan.masked.view(-1, 4, 4).sum(1)
        assert ((cols[:, :2].sum(1) == 8) | (cols[:, 2:].sum(1) == 8)).all()   # one whole part masked
    # a bank on the 4x4 patch grid of the 16x16 images: parts = rows
    bank = PartBank.from_maps(torch.arange(4)[:, None].expand(4, 4)[None].repeat(10, 1, 1))
    s = SemMAEStrategy(bank, mask_ratio=0.5)
    item = s.wrap_dataset(ToyParts(), crop_flip)[3]
    assert item['parts'][:, 0].tolist() == [0] * 4 + [1] * 4             # bank map upsampled, then cropped
    sd = s.state_dict()
    s2 = SemMAEStrategy(PartBank(10, (4, 4), 4), mask_ratio=0.5); s2.load_state_dict(sd)
    assert torch.equal(s2.bank.maps, bank.maps) and s2.lam == s.lam


def test_strategy_on_synthetic_parts_with_mae_transform():
    "The oracle (true parts) and a bank (the same parts on the patch grid) give the same plans after the same crops."
    from semmae_edu.data import mae_transform, patch_parts as data_patch_parts
    from semmae_edu.synthetic import SyntheticParts
    base = SyntheticParts(n=12, size=32)
    K, P = SyntheticParts.n_parts, 4
    # bank: the true parts pooled to the 8x8 patch grid
    maps = data_patch_parts(torch.stack([base[i]['parts'] for i in range(len(base))]), P, K).view(-1, 8, 8)
    bank = PartBank.from_maps(maps, n_parts=K)
    plans = []
    for strategy in (SemMAEStrategy(), SemMAEStrategy(bank)):
        ds = strategy.wrap_dataset(base, mae_transform(32, mean=None, std=None, generator=torch.Generator().manual_seed(0), scale=(1., 1.)))
        batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
        assert batch['parts'].shape == (12, 32, 32) and strategy.n_parts == K   # K from the bank or from SyntheticParts.n_parts
        strategy.epoch_start(0, 10)
        plans.append(strategy(batch, P, torch.Generator().manual_seed(1)))
        assert plans[-1].counts == dict(visible=16, masked=48, thrown=0)
    # scale=(1,1) crops keep the whole image (only flips), so the bank's blocky parts pool back to the true majority parts
    assert plans[0] == plans[1]
