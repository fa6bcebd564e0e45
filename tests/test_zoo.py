"""ColorMAE and HPM (chapter 09_zoo): exact counts, the filters' spectra, HPM's ranking loss and schedule, plans fixed
by their generator, the three training-loop hooks with a checkpoint and resume in the middle of a run. Where masks
fall on the true parts is tests/test_alignment.py; both strategies in `train.pretrain` are tests/test_train.py."""
import copy, math
import pytest
import torch
from semmae_edu.masking import MaskPlan, RandomStrategy, random_masking
from semmae_edu.synthetic import rendered, SyntheticParts
from semmae_edu.data import normalize
from semmae_edu.mae import mae_vit_micro_patch4
from semmae_edu.zoo import (NOISE_COLOURS, noise_filter, colour_noise, radial_power, noise_windows, colormae_masking,
                            ColorMAEStrategy, relative_loss, masked_patch_losses, hard_share_at, hpm_masking,
                            ema_decay_at, ema_for, HPMHead, HPMStrategy, strategy_steps)

def gen(seed=0): return torch.Generator().manual_seed(seed)
def norm(x): return normalize(x, SyntheticParts.mean, SyntheticParts.std)

@pytest.fixture(scope='module')
def images(): return rendered(seed=0, n=64, size=32)


# ---------------------------------------------------------------- ColorMAE

@pytest.mark.parametrize('L,r', [(64, 0.75), (196, 0.75), (196, 0.6), (64, 0.9), (256, 0.5), (49, 0.75)])
def test_colormae_counts_are_mae_counts(L, r):
    h = int(round(L ** .5))
    plan = ColorMAEStrategy(r)({'image': torch.zeros(5, 3, 4 * h, 4 * h)}, 4, gen())
    assert plan.counts == dict(visible=int(L * (1 - r)), masked=L - int(L * (1 - r)), thrown=0)

def test_colormae_keeps_the_strongest_visible():
    win = torch.randn(6, 8, 8, generator=gen())
    plan = colormae_masking(win, 0.75)
    top16 = torch.argsort(win.flatten(1), dim=1, descending=True)[:, :16]
    assert plan.visible.gather(1, top16).all()

def test_colormae_plans_fixed_by_the_generator(images):
    s, batch = ColorMAEStrategy(), {'image': images['image'][:16]}
    assert s(batch, 4, gen(1)) == s(batch, 4, gen(1))
    assert not s(batch, 4, gen(1)) == s(batch, 4, gen(2))
    # the bank is fixed by the strategy's seed, and rebuilt from the state
    s2 = ColorMAEStrategy(colour='blue', seed=3)
    s2.load_state_dict(s.state_dict())
    assert torch.equal(s2.bank, s.bank) and s2(batch, 4, gen(1)) == s(batch, 4, gen(1))

def test_green_is_band_pass_on_the_radial_power():
    _, p = radial_power(colour_noise(64, 64, 'green', generator=gen()))
    peak = int(p.argmax())
    assert 0 < peak < len(p) - 1
    assert p[0] < p.max() / 10 and p[-1] < p.max() / 3          # predicted ratio at the edge: (0.20/0.47)^2 ~ 0.18

def test_red_blue_white_spectra():
    spec = {c: radial_power(colour_noise(64, 64, c, generator=gen()))[1] for c in ('red', 'blue', 'white')}
    assert (spec['red'].diff() < 0).all() and (spec['blue'].diff() > 0).all()
    assert spec['white'].max() / spec['white'].min() < 1.2

def test_filter_values():
    f = {c: noise_filter(c, 32) for c in NOISE_COLOURS}
    assert f['white'].eq(1).all() and f['red'][0, 0] == 1 and f['blue'][0, 0] == 0 and f['green'][0, 0] == 0
    assert torch.allclose(f['purple'], 1 - f['green'])

def test_windows_are_flipped_slices():
    bank = torch.arange(3 * 10 * 10, dtype=torch.float32).view(3, 10, 10)
    win = noise_windows(bank, 64, (4, 5), gen())
    for w in win:
        v = int(w.min())                                           # the slice's smallest value is its top-left corner
        k, t, l = v // 100, (v % 100) // 10, v % 10
        s = bank[k, t:t + 4, l:l + 5]
        assert any(torch.equal(w, c) for c in (s, s.flip(0), s.flip(1), s.flip(0).flip(1)))

def test_colormae_bad_options_named():
    with pytest.raises(ValueError, match=r"colour must be one of \('white', 'red', 'green', 'blue', 'purple'\) \(the noise filter\), got 'pink'"):
        ColorMAEStrategy(colour='pink')
    with pytest.raises(ValueError, match='sigma must be'):
        ColorMAEStrategy(sigma=(1.0, 0.5))
    with pytest.raises(ValueError, match='pattern_size >= 8'):
        ColorMAEStrategy(pattern_size=6)({'image': torch.zeros(1, 3, 32, 32)}, 4, gen())


# ---------------------------------------------------------------- HPM pieces

def test_relative_loss_is_log2_for_constant_predictions():
    t = torch.rand(3, 48, generator=gen())
    for c in (0., -2.5, 7.):
        assert abs(relative_loss(torch.full((3, 48), c), t).item() - math.log(2)) < 1e-6

def test_relative_loss_falls_toward_zero_as_predictions_order_the_patches():
    t = torch.rand(3, 48, generator=gen())
    curve = [relative_loss(k * t, t).item() for k in (0., 1., 4., 16., 256., 4096.)]
    assert all(a > b for a, b in zip(curve, curve[1:])) and curve[-1] < 1e-3
    assert relative_loss(-16 * t, t).item() > math.log(2)        # the reverse order is worse than guessing
    assert relative_loss(torch.randn(2, 4), torch.ones(2, 4)).item() == 0   # nothing to rank

def test_masked_patch_losses_average_to_the_mae_loss(images):
    torch.manual_seed(0)
    mae = mae_vit_micro_patch4(norm_pix_loss=True)
    x = norm(images['image'][:6])
    plan = random_masking(6, 64, 0.75, generator=gen())
    with torch.no_grad(): loss, pred, _ = mae(x, plan)
    per = masked_patch_losses(x, pred, plan, 4, True)
    assert per.shape == (6, 48) and abs(per.mean().item() - loss.item()) <= 1e-5 * loss.item()

@pytest.mark.parametrize('E', [1, 3, 8, 800])
def test_hard_share_follows_its_schedule(E):
    shares = [hard_share_at(e, E) for e in range(E)]
    assert shares == [float((e + 1) / E) * 0.5 for e in range(E)] and shares[-1] == 0.5
    assert all(a < b for a, b in zip(shares, shares[1:]))
    assert hard_share_at(E - 1, E, 0.3, 'constant') == 0.3

@pytest.mark.parametrize('bad', [1.5, -0.01, '0.5', True])
def test_hard_share_outside_unit_interval_refused_naming_the_option(bad):
    with pytest.raises(ValueError, match=r'hard_share .* must be a number in \[0, 1\]'):
        HPMStrategy(hard_share=bad)
    with pytest.raises(ValueError, match='hard_share'):
        hpm_masking(torch.randn(2, 64), 0.75, bad)

@pytest.mark.parametrize('share', [0., 0.1, 0.25, 0.5, 0.75, 1.])
@pytest.mark.parametrize('L,r', [(64, 0.75), (196, 0.75), (196, 0.6)])
def test_hpm_plans_exact_counts_hardest_masked(share, L, r):
    scores = torch.randn(8, L, generator=gen())
    plan = hpm_masking(scores, r, share, gen(1))
    M = L - int(L * (1 - r))
    assert plan.counts == dict(visible=L - M, masked=M, thrown=0)
    top = torch.argsort(scores, 1, descending=True)[:, :int(M * share)]
    assert plan.masked.gather(1, top).all()
    assert plan == hpm_masking(scores, r, share, gen(1))
    if int(M * share) == 0: assert plan == random_masking(8, L, r, generator=gen(1))

def test_hpm_random_rest_is_uniform():
    "The masked patches that are not hard are spread uniformly over the other patches."
    scores = torch.arange(64.).expand(4000, 64)                   # patches 40..63 are the hardest 24
    plan = hpm_masking(scores, 0.75, 0.5, gen())
    freq = plan.masked[:, :40].float().mean(0)                    # 24 random of the other 40: 0.6 each
    assert ((freq - 0.6).abs() < 5 * (0.6 * 0.4 / 4000) ** .5).all()

def test_ema_schedule_and_scaling():
    assert ema_decay_at(0, 800) == 0.999 and ema_decay_at(100, 800) == 0.9999
    assert abs(ema_decay_at(25, 800) - (0.999 + 0.25 * 0.0009)) < 1e-12
    assert all(abs(a - b) < 1e-12 for a, b in zip(ema_for(5004), (0.999, 0.9999)))
    d0, d1 = ema_for(10)
    assert abs(1 / (1 - d0) / 10 - 1000 / 5004) < 1e-9 and abs(1 / (1 - d1) / 10 - 10000 / 5004) < 1e-9
    with pytest.raises(ValueError, match=r'ema must be \(start, end\) decays in \[0, 1\)'):
        HPMStrategy(ema=(0.9, 1.0))

def test_head_keeps_the_mae_plain_and_teacher_starts_as_student(images):
    torch.manual_seed(0)
    mae = mae_vit_micro_patch4()
    keys = set(mae.state_dict())
    s = HPMStrategy(image_transform=norm)
    head = s.attach(mae)
    assert set(mae.state_dict()) == keys                          # nothing added to the MAE
    x = norm(images['image'][:4])
    with torch.no_grad():
        mae(x, MaskPlan(torch.zeros(4, 64, dtype=torch.int8)))
        student = head.predictor(head._tokens)
    head._tokens = None
    assert torch.allclose(head.teacher_scores(x), student, atol=1e-5)
    head.remove_hook()

def test_hpm_needs_attach_first(images):
    with pytest.raises(RuntimeError, match=r'call strategy.attach\(model\)'):
        HPMStrategy()({'image': images['image'][:2]}, 4, gen())


# ---------------------------------------------------------------- the loop

def test_new_plans_change_training(images):
    kw = dict(epochs=2, steps_per_epoch=2, batch_size=8, seed=0)
    losses = {k: torch.tensor(strategy_steps(s, images['image'], **kw)['losses'])
              for k, s in (('random', RandomStrategy()), ('colormae', ColorMAEStrategy()),
                           ('hpm', HPMStrategy(image_transform=norm, ema=ema_for(2))))}
    for a, b in (('random', 'colormae'), ('random', 'hpm'), ('colormae', 'hpm')):
        assert (losses[a] - losses[b]).abs().max() > 1e-4, (a, b)

def test_runs_are_reproducible(images):
    kw = dict(epochs=2, steps_per_epoch=2, batch_size=8, seed=3)
    for make in (ColorMAEStrategy, lambda: HPMStrategy(image_transform=norm, ema=ema_for(2))):
        a, b = (strategy_steps(make(), images['image'], **kw) for _ in range(2))
        assert a['losses'] == b['losses'] and a['aux_losses'] == b['aux_losses']

def _loop(strategy, imgs, epochs, steps, state=None, stop_after=None):
    """The hooks in the order train.pretrain would call them: attach before the optimizer, the head's loss added
    before backward, after_step after the optimizer step; a checkpoint holds model, optimizer and strategy states."""
    torch.manual_seed(0)
    mae = mae_vit_micro_patch4()
    if state: strategy.load_state_dict(state['strategy'])         # before attach: the head's weights wait for it
    head = strategy.attach(mae)                                   # hook 1
    opt = torch.optim.AdamW(list(mae.parameters()) + [p for p in head.parameters() if p.requires_grad], lr=1e-3)
    if state: mae.load_state_dict(state['model']); opt.load_state_dict(state['optimizer'])
    losses, start = [], state['epoch'] if state else 0
    for epoch in range(start, epochs):
        strategy.epoch_start(epoch, epochs, mae, None)
        for step in range(steps):
            idx = torch.arange(8) + 8 * ((epoch * steps + step) % 8)
            plan = strategy({'image': imgs[idx]}, 4, gen(100 * epoch + step))
            x = norm(imgs[idx])
            out = mae(x, plan)
            aux = head(x, out)                                    # hook 2
            opt.zero_grad(); (out[0] + aux).backward(); opt.step()
            strategy.after_step(mae)                              # hook 3
            losses.append((out[0].item(), aux.item()))
        if stop_after is not None and epoch + 1 == stop_after:
            return losses, copy.deepcopy(dict(model=mae.state_dict(), optimizer=opt.state_dict(),
                                              strategy=strategy.state_dict(), epoch=epoch + 1))
    head.remove_hook()
    return losses, None

def test_hpm_resume_equals_an_uninterrupted_run(images):
    imgs = images['image']
    whole, _ = _loop(HPMStrategy(image_transform=norm, ema=ema_for(2)), imgs, 3, 2)
    first, ckpt = _loop(HPMStrategy(image_transform=norm, ema=ema_for(2)), imgs, 3, 2, stop_after=1)
    rest, _ = _loop(HPMStrategy(image_transform=norm, ema=ema_for(2)), imgs, 3, 2, state=ckpt)
    assert first + rest == whole
