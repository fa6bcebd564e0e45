"The controls on the same MaskPlan: block-wise masking and AttMask-High, their counts, their choice of patches, and both in the training loop."
import pytest, torch
from semmae_edu.masking import block_masking, random_masking, BlockStrategy, MASKED
from semmae_edu.amt import attmask_masking, AttMaskStrategy, AttentionBank, amt_schedule
from semmae_edu.train import pretrain, STRATEGIES
from semmae_edu.config import preset
from semmae_edu.checkpoint import read_metrics
from semmae_edu.synthetic import SyntheticParts

THREADS = 1   # one intra-op thread (tests/conftest.py)

@pytest.mark.parametrize('grid, ratio', [((8, 8), 0.75), ((14, 14), 0.4), ((4, 6), 0.6), ((8, 8), 0.1)])
def test_block_exact_counts(grid, ratio):
    L = grid[0] * grid[1]
    p = block_masking(50, grid, ratio, generator=torch.Generator().manual_seed(0))
    assert p.counts == dict(visible=int(L * (1 - ratio)), masked=L - int(L * (1 - ratio)), thrown=0)   # random masking's counts

def test_block_masks_rectangles():
    "At BEiT's ratio (0.4 of 14x14) the budget is met by blocks alone in most images: the masked set is a union of rectangles."
    p = block_masking(200, 14, 0.4, min_block=16, generator=torch.Generator().manual_seed(1))
    m = (p.states == MASKED).reshape(-1, 14, 14).float()
    # a masked patch's 4-neighbours are masked far more often than under random masking (0.4 by chance);
    # over 200 x 78 masked patches the standard error is < 0.01, so 0.6 is a safe margin
    nb = torch.nn.functional.conv2d(m[:, None], torch.tensor([[[[0., 1, 0], [1, 0, 1], [0, 1, 0]]]]), padding=1)[:, 0]
    inner = torch.zeros(14, 14, dtype=torch.bool); inner[1:-1, 1:-1] = True
    share = (nb * m)[:, inner].sum() / (4 * m[:, inner].sum())
    assert share > 0.6, share

def test_attmask_masks_the_top_patches():
    w = torch.rand(30, 64, generator=torch.Generator().manual_seed(2))
    p = attmask_masking(w, 0.75)
    assert p.counts == dict(visible=16, masked=48, thrown=0)
    assert torch.equal(p.masked, torch.zeros(30, 64, dtype=torch.bool).scatter_(1, w.topk(48, 1).indices, True))
    assert torch.equal(attmask_masking(torch.ones(1, 8), 0.5).masked[0], torch.tensor([True] * 4 + [False] * 4))   # ties: lower index

@pytest.mark.slow
def test_both_in_the_registry_and_the_loop(tmp_path):
    assert {'block', 'attmask'} <= set(STRATEGIES)
    for name in ('block', 'attmask'):
        cfg = preset('cpu', n_synthetic=64, batch_size=32, epochs=3, strategy=name, out=str(tmp_path / name), progress=False)
        res = pretrain(cfg)
        assert len([r for r in read_metrics(res.out) if r.get('kind') == 'step']) == 3 * 2
    attm = pretrain(preset('cpu', n_synthetic=64, batch_size=32, epochs=3, strategy='attmask', out=str(tmp_path / 'a2'), progress=False))
    rnd = pretrain(preset('cpu', n_synthetic=64, batch_size=32, epochs=3, strategy='random', out=str(tmp_path / 'r'), progress=False))
    la = [r['loss'] for r in read_metrics(attm.out) if r.get('kind') == 'step']; lr = [r['loss'] for r in read_metrics(rnd.out) if r.get('kind') == 'step']
    assert la[:2] == lr[:2] and la[2:] != lr[2:]      # epoch 0: random masking (the same draw); from epoch 1 (5 % of 3, at least 1): AttMask

@pytest.mark.slow
def test_amt_example_trains_amt(tmp_path):
    "The README's `semmae-edu pretrain --strategy amt --epochs 5` masks by attention (from epoch 1), so its losses differ from random's."
    from semmae_edu import cli
    assert cli.main(['pretrain', '--strategy', 'amt', '--epochs', '5', '--out', str(tmp_path / 'amt'), '--no-progress', '--n-synthetic', '128']) == 0
    assert cli.main(['pretrain', '--epochs', '5', '--out', str(tmp_path / 'rnd'), '--no-progress', '--n-synthetic', '128']) == 0
    la = [r['loss'] for r in read_metrics(tmp_path / 'amt') if r.get('kind') == 'step']
    lr = [r['loss'] for r in read_metrics(tmp_path / 'rnd') if r.get('kind') == 'step']
    spe = 128 // 64
    assert la[:spe] == lr[:spe]                      # epoch 0: both random masking at 0.75, the same draws
    assert all(a != b for a, b in zip(la[spe:], lr[spe:]))
    assert amt_schedule(5) == (1, 1)

def test_amt_settings_that_cannot_take_effect_are_refused(tmp_path):
    from semmae_edu import cli
    assert cli.main(['pretrain', '--strategy', 'amt', '--epochs', '5', '--strategy-kw', '{"amt_start_epoch": 40}', '--out', str(tmp_path / 'x')]) == 2
    assert not (tmp_path / 'x').exists()
    with pytest.raises(ValueError, match='refresh_every <= 27'): amt_schedule(30, 2, 40)
