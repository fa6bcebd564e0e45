"Heavier tests of semmae_edu.amt (subprocesses, DataLoader workers); the chapter nbs/04_amt.ipynb links here."
import os, subprocess, sys, textwrap, time
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from semmae_edu.amt import AttentionBank, AMTStrategy, amt_masking
from semmae_edu.vit import VisionTransformer, cls_attention
from tolerance import layers, reduction

ROOT = Path(__file__).resolve().parents[1]

def _model(): return VisionTransformer(img_size=32, patch_size=4, embed_dim=48, depth=2, num_heads=3, seed=0)
def _dataset(n=11): return [dict(image=torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(i)), index=i) for i in range(n)]

SCRIPT = textwrap.dedent('''
    import datetime, sys, torch, torch.distributed as dist
    sys.path.insert(0, {tests!r})
    from test_amt import _model, _dataset
    from semmae_edu.amt import AttentionBank
    rank = int(sys.argv[1])
    # a bounded wait: a rank whose partner died fails after 90 s, not after gloo's default 30 minutes
    dist.init_process_group('gloo', init_method='file://' + {out!r} + '/rendezvous', rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=90))
    ds = _dataset()
    bank = AttentionBank(len(ds), (8, 8))
    bank.refresh(_model(), ds, batch_size=2, epoch=40)   # 11 items on 2 ranks: shards of 6, the last padded
    torch.save(bank.maps, {out!r} + f'/maps{{rank}}.pt')
    dist.barrier(); dist.destroy_process_group()   # the barrier: torch 2.4 can hang in destroy when a rank leaves first
''')

@pytest.mark.slow
def test_refresh_distributed_gathers_every_shard(tmp_path):
    "Two gloo processes compute one shard each; after all_gather both hold exactly the single-process maps."
    script = tmp_path / 'refresh.py'
    script.write_text(SCRIPT.format(tests=str(ROOT / 'tests'), out=str(tmp_path)))
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    logs = [tmp_path / f'rank{rank}.log' for rank in (0, 1)]
    files = [log.open('w') for log in logs]
    procs = [subprocess.Popen([sys.executable, str(script), str(rank)], env=env, stdout=f, stderr=subprocess.STDOUT)
             for rank, f in zip((0, 1), files)]
    deadline = time.monotonic() + 300   # both ranks share one deadline; neither can block the other's output
    for p in procs:
        try: p.wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired: pass
    for p in procs:
        if p.poll() is None: p.kill(); p.wait()
    for f in files: f.close()
    report = '\n'.join(f'--- rank {r} (exit {p.returncode}):\n' + log.read_text()[-3000:] for r, (p, log) in enumerate(zip(procs, logs)))
    assert all(p.returncode == 0 for p in procs), report
    ds = _dataset()
    single = AttentionBank(len(ds), (8, 8)); single.refresh(_model(), ds, batch_size=4)
    # Batches of 2 and 4 round differently (GEMM blocking). A probability's budget is p_err: 2 blocks whose longest
    # reduction is 4·48 (the MLP; tolerance.layers, amplification not counted), then the logits (16 terms) and the
    # softmax (65). Min–max normalisation divides by the head's range over the patches, so a map value may move
    # 4·p_err / range (numerator and denominator 2·p_err each).
    p_err = layers(4 * 48, 2) + reduction(16 + 65)
    with torch.no_grad():
        a = cls_attention(_model().eval().get_last_selfattention(torch.stack([d['image'] for d in ds])), (8, 8)).flatten(2)
    tol = 4 * p_err / (a.amax(-1) - a.amin(-1)).min().item()
    for rank in (0, 1):
        torch.testing.assert_close(torch.load(tmp_path / f'maps{rank}.pt'), single.maps, atol=tol, rtol=0)
    assert not torch.equal(single.maps, torch.ones_like(single.maps))

def test_persistent_workers_see_a_refresh():
    "The maps live in shared memory and are updated in place: a worker started before a refresh reads the new maps."
    ds = _dataset(4)
    bank = AttentionBank(len(ds), (8, 8), amt_start_epoch=1)
    loader = DataLoader(AMTStrategy(bank).wrap_dataset(ds), batch_size=4, num_workers=1, persistent_workers=True)
    assert torch.equal(next(iter(loader))['weights'], torch.ones(4, 32, 32))
    bank.refresh(_model(), ds, batch_size=4, epoch=1)
    w = next(iter(loader))['weights']
    assert torch.equal(w, torch.stack([bank.pixel_map(i, 32, 32) for i in range(4)]))
    assert not torch.equal(w, torch.ones_like(w))

def test_strategy_checkpoint_round_trip(tmp_path):
    "A strategy restored from a checkpoint resumes with the same maps and epoch, so it does not refresh again."
    ds = _dataset(6)
    s = AMTStrategy(AttentionBank(len(ds), (8, 8), amt_start_epoch=2, refresh_every=3), throw='middle')
    for e in range(4): s.epoch_start(e, 10, _model(), ds)
    torch.save(s.state_dict(), tmp_path / 'ck.pt')
    r = AMTStrategy(AttentionBank(len(ds), (8, 8), amt_start_epoch=2, refresh_every=3), throw='middle')
    r.load_state_dict(torch.load(tmp_path / 'ck.pt'))
    assert torch.equal(r.bank.maps, s.bank.maps) and r.epoch == 3 and r.bank.refreshed_at == 2
    calls = []
    r.bank.refresh = lambda *a, **k: calls.append(k.get('epoch'))
    r.epoch_start(4, 10, _model(), ds)        # not scheduled, maps present: no refresh
    r.epoch_start(5, 10, _model(), ds)        # scheduled
    assert calls == [5]
    batch = dict(image=torch.rand(6, 3, 32, 32), weights=torch.stack([s.bank.pixel_map(i, 32, 32) for i in range(6)]))
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert s(batch, 4, g1) == r(batch, 4, g2)

def test_resume_without_maps_refreshes_at_once():
    "After a resume that brought no maps (epoch past amt_start_epoch, bank never filled), the bank is filled at once."
    ds = _dataset(3)
    s = AMTStrategy(AttentionBank(len(ds), (8, 8), amt_start_epoch=2, refresh_every=5))
    s.epoch_start(4, 10, _model(), ds)
    assert s.bank.refreshed_at == 4 and not torch.equal(s.bank.maps, torch.ones(3, 8, 8))

def test_bad_arguments():
    import pytest
    bank = AttentionBank(3, (8, 8))
    with pytest.raises(TypeError, match='bank must be an AttentionBank'): AMTStrategy(None)
    with pytest.raises(ValueError, match='throw must be one of'): AMTStrategy(bank, throw='high')
    with pytest.raises(ValueError, match='random_ratio must be in'): AMTStrategy(bank, random_ratio=1.0)
    with pytest.raises(ValueError, match='must be < 1'): AMTStrategy(bank, 0.6, 0.5)
    with pytest.raises(ValueError, match='holds 3 maps but the data set has 2'): AMTStrategy(bank).wrap_dataset(_dataset(2))
    with pytest.raises(ValueError, match='generator is on'):
        amt_masking(torch.rand(2, 16, device='meta'), generator=torch.Generator())

def test_mae_trains_on_amt_plans():
    "The MAE of chapter 03 takes AMT's plans (thrown patches included): finite loss, gradients, and fewer decoder tokens."
    from semmae_edu.mae import mae_vit_micro_patch4
    from semmae_edu.data import mae_transform
    from semmae_edu.synthetic import SyntheticParts
    torch.manual_seed(0)
    base = SyntheticParts(n=8, size=32, seed=0)
    bank = AttentionBank(len(base), (8, 8), amt_start_epoch=0)
    s = AMTStrategy(bank)
    model = mae_vit_micro_patch4()
    s.epoch_start(0, 1, model, base)
    assert bank.refreshed_at == 0
    batch = torch.utils.data.default_collate([s.wrap_dataset(base, mae_transform(32, mean=base.mean, std=base.std))[i] for i in range(8)])
    plan = s(batch, 4, torch.Generator().manual_seed(0))
    assert plan.counts == dict(visible=10, masked=28, thrown=26)
    seen = {}
    hooks = [model.blocks[0].register_forward_pre_hook(lambda m, a: seen.update(encoder=a[0].shape[1])),
             model.decoder_blocks[0].register_forward_pre_hook(lambda m, a: seen.update(decoder=a[0].shape[1]))]
    loss, pred, _ = model(batch['image'], plan)
    for h in hooks: h.remove()
    assert seen == dict(encoder=1 + 10, decoder=1 + 10 + 28)          # CLS + visible; CLS + visible + masked: 26 thrown are absent
    assert pred.shape == (8, 64, 48) and (pred[plan.thrown] == 0).all()   # zeros where a patch was thrown
    loss.backward()
    assert torch.isfinite(loss) and model.blocks[0].attn.qkv.weight.grad is not None
