"""Where masks fall on the true parts (chapter 09a_alignment): hand-made truths whose answers can be counted, a plan
that masks exactly the object, random masking at chance, the sweep row's fields, and the real-loss tools."""
import pytest
import torch
from semmae_edu.masking import random_masking, RandomStrategy
from semmae_edu.synthetic import rendered, SyntheticParts
from semmae_edu.data import normalize
from semmae_edu.mae import mae_vit_micro_patch4
from semmae_edu.zoo import HPMStrategy
from semmae_edu.alignment import (mask_alignment, patch_truth, rank_agreement, loss_map, ALIGNMENT_COLUMNS, alignment_fields,
                                  ranking_scores)

def gen(seed=0): return torch.Generator().manual_seed(seed)
def norm(x): return normalize(x, SyntheticParts.mean, SyntheticParts.std)

@pytest.fixture(scope='module')
def images(): return rendered(seed=0, n=64, size=32)


def test_mask_alignment_hand_made():
    parts = torch.tensor([[0, 0, 1, 1, 1, 2, 2, 3, 3, 4]])
    fg = parts > 0
    states = torch.tensor([[1, 1, 1, 0, 0, 1, 1, 0, 0, 0]])
    r = mask_alignment(states, parts, fg)
    assert abs(r['mask_on_object'] - 3 / 5) < 1e-7 and abs(r['object_share'] - 0.8) < 1e-7
    assert (r['parts_whole'], r['parts_partly'], r['parts_untouched']) == (1 / 3, 1 / 3, 1 / 3)
    r1 = mask_alignment(states, parts, fg, min_size=1)
    assert (r1['parts_whole'], r1['parts_partly'], r1['parts_untouched']) == (1 / 4, 1 / 4, 2 / 4)
    r2 = mask_alignment(states, parts, fg, scores=-torch.arange(10.)[None])
    assert abs(r2['choice_on_object'] - 6 / 8) < 1e-7

def test_mask_alignment_whole_parts_and_random_chance():
    truth = rendered(seed=1, n=64, size=32)
    parts, fg = patch_truth(truth['parts'], truth['fg'], 4, SyntheticParts.n_parts)
    # a plan that masks exactly the object: every part whole, everything masked on the object
    n_fg = fg.sum(1)
    keep = n_fg == n_fg[0]                                        # rectangular plans need equal counts
    r = mask_alignment(fg[keep].to(torch.int8), parts[keep], fg[keep])
    assert r['mask_on_object'] == 1. and r['parts_whole'] == 1.
    rnd = mask_alignment(random_masking(64, 64, 0.75, generator=gen()), parts, fg)
    assert abs(rnd['mask_on_object'] - rnd['object_share']) < 0.05
    assert abs(rnd['parts_whole'] + rnd['parts_partly'] + rnd['parts_untouched'] - 1) < 1e-9

def test_rank_agreement_and_loss_map(images):
    a = torch.randn(4, 20, generator=gen())
    assert torch.allclose(rank_agreement(a, 3 * a + 1), torch.ones(4)) and torch.allclose(rank_agreement(a, -a), -torch.ones(4))
    torch.manual_seed(0)
    m = loss_map(mae_vit_micro_patch4(), norm(images['image'][:3]), n_plans=32, generator=gen())
    assert m.shape == (3, 64) and torch.isfinite(m).all()

def test_sweep_fields(images):
    truth = rendered(seed=1, n=32, size=32)
    plan = random_masking(32, 64, 0.75, generator=gen())
    row = alignment_fields(plan, truth, 4, SyntheticParts.n_parts)
    parts, fg = patch_truth(truth['parts'], truth['fg'], 4, SyntheticParts.n_parts)
    full = mask_alignment(plan, parts, fg, SyntheticParts.n_parts)
    assert tuple(row) == ALIGNMENT_COLUMNS and row['choice_on_object'] is None
    assert all(row[k] == full[k] for k in ALIGNMENT_COLUMNS[:4])
    assert ranking_scores(RandomStrategy(), {'image': truth['image']}, 4) is None
    s = HPMStrategy(image_transform=norm)
    torch.manual_seed(0); mae = mae_vit_micro_patch4()
    head = s.attach(mae)
    scores = ranking_scores(s, {'image': truth['image']}, 4)
    assert torch.equal(scores, head.teacher_scores(norm(truth['image'])))
    with_scores = alignment_fields(plan, truth, 4, SyntheticParts.n_parts, scores=scores)
    assert with_scores['choice_on_object'] == mask_alignment(plan, parts, fg, SyntheticParts.n_parts, scores=scores)['choice_on_object']
    head.remove_hook()
