"""The training loop (nbs/07_train.ipynb): exact resume after SIGKILL, one short run per strategy,
non-finite loss, checkpoint refusals, DataLoader workers. CPU only, tiny models, a few steps each."""
import json, math, os, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
from semmae_edu.train import pretrain, NonFiniteLossError, STRATEGIES
from semmae_edu.config import PretrainConfig, ConfigError
from semmae_edu.checkpoint import read_checkpoint, read_metrics, CheckpointError
from semmae_edu.batches import epoch_permutation

ROOT = Path(__file__).resolve().parents[1]
# A tiny run: 48 images, micro-batches of 8, 2 accumulated -> 16 images per step, 3 steps per epoch.
# device='cpu': bitwise resume checks need the CPU's deterministic kernels, also on a machine with a GPU.
TINY = dict(n_synthetic=48, batch_size=8, accum_iter=2, epochs=3, warmup_epochs=1, progress=False, seed=3, device='cpu')

THREADS = 1   # bitwise comparisons need the same kernels in every run: one intra-op thread (tests/conftest.py)

def env():
    return {**os.environ, 'PYTHONPATH': str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''), 'OMP_NUM_THREADS': '1'}

def step_losses(out): return [r['loss'] for r in read_metrics(out) if r['kind'] == 'step']

def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    diff = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not diff, f"tensors differ: {diff[:5]}"

DRIVER = """
import json, sys, time, torch
torch.set_num_threads(1)
from semmae_edu.train import pretrain
from semmae_edu.config import PretrainConfig
pretrain(PretrainConfig(**json.loads(sys.argv[1])), on_step=lambda rec: time.sleep(float(sys.argv[2])))
"""

@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    cfg = dict(TINY, ckpt_every_steps=2)
    # the run that is killed: a subprocess that sleeps after each step so the kill lands mid-run
    killed = tmp_path / 'killed'
    p = subprocess.Popen([sys.executable, '-c', DRIVER, json.dumps(dict(cfg, out=str(killed))), '0.5'], env=env(),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while not (killed / 'checkpoint.pth').exists():
            assert p.poll() is None, p.stdout.read().decode()
            assert time.time() < deadline, "no checkpoint within 60 s"
            time.sleep(0.02)
        p.send_signal(signal.SIGKILL)
    finally:
        p.wait()
    assert p.returncode == -signal.SIGKILL
    ck = read_checkpoint(killed)
    assert (ck['epoch'], ck['step'], ck['global_step']) == (0, 2, 2), "the checkpoint to resume from is mid-epoch"
    assert not (killed / 'model.pth').exists(), "the killed run must not have finished"
    # the uninterrupted run and the resumed one
    full = pretrain(PretrainConfig(**cfg, out=str(tmp_path / 'full')))
    resumed = pretrain(resume=killed)
    assert_same_weights(full.model, resumed.model)
    assert step_losses(killed) == step_losses(tmp_path / 'full')          # the log continues where the checkpoint was
    a, b = read_checkpoint(tmp_path / 'full'), read_checkpoint(killed)
    for k, v in a['optimizer']['state'].items():
        assert all(torch.equal(v[n], b['optimizer']['state'][k][n]) for n in v)
    assert (b['epoch'], b['step'], b['global_step']) == (3, 0, 9)

@pytest.mark.parametrize('strategy', list(STRATEGIES))
def test_short_pretraining_loss_falls(tmp_path, strategy):
    cfg = PretrainConfig(strategy=strategy, n_synthetic=64, batch_size=16, epochs=4, warmup_epochs=1, progress=False, device='cpu',
                         out=str(tmp_path / strategy), strategy_kw=STRATEGY_KW.get(strategy, {}))
    res = pretrain(cfg)
    ep = [r['loss'] for r in read_metrics(res.out) if r['kind'] == 'epoch']
    assert len(ep) == 4 and ep[-1] < 0.8 * ep[0], ep

# strategy arguments that make AMT / SemMAE act within 4 epochs (their defaults wait for longer runs)
STRATEGY_KW = {'amt': dict(amt_start_epoch=1, refresh_every=1)}

class Crash(Exception): pass

@pytest.mark.parametrize('strategy', ['amt', 'semmae'])
def test_strategy_state_survives_a_crash(tmp_path, strategy):
    "AMT's attention bank and SemMAE's λ live in the checkpoint: a crash mid-epoch after AMT started changes nothing."
    cfg = dict(TINY, strategy=strategy, strategy_kw=STRATEGY_KW.get(strategy, {}), ckpt_every_steps=1)
    full = pretrain(PretrainConfig(**cfg, out=str(tmp_path / 'full')))
    def crash(rec):
        if rec['global_step'] == 6: raise Crash          # epoch 1, step 2: after the checkpoint of global step 5
    with pytest.raises(Crash): pretrain(PretrainConfig(**cfg, out=str(tmp_path / 'crash')), on_step=crash)
    ck = read_checkpoint(tmp_path / 'crash')
    assert (ck['epoch'], ck['step']) == (1, 2)
    if strategy == 'amt': assert ck['strategy']['state']['bank']['refreshed_at'] == 1
    resumed = pretrain(resume=tmp_path / 'crash')
    assert_same_weights(full.model, resumed.model)
    assert step_losses(tmp_path / 'crash') == step_losses(tmp_path / 'full')

class Poisoned(torch.utils.data.Dataset):
    "SyntheticParts with one image full of NaN."
    def __init__(self, base, bad): self.base, self.bad = base, bad
    def __len__(self): return len(self.base)
    def __getitem__(self, i):
        item = dict(self.base[i])
        if i == self.bad: item['image'] = torch.full_like(item['image'], float('nan'))
        return item

def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    from semmae_edu.synthetic import SyntheticParts
    cfg = PretrainConfig(**dict(TINY, epochs=1, accum_iter=1, ckpt_every_steps=1), out=str(tmp_path / 'nan'))
    bad = int(epoch_permutation(48, cfg.seed, 0)[8 * 3 + 2])                   # an image of step 3 (0-based) of epoch 0
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at epoch 0, step 3 .*last good checkpoint is .*checkpoint.pth"):
        pretrain(cfg, train_set=Poisoned(SyntheticParts(n=48, size=32, seed=0), bad))
    ck = read_checkpoint(tmp_path / 'nan')
    assert ck['global_step'] == 3 and all(torch.isfinite(v).all() for v in ck['model'].values())
    recs = read_metrics(tmp_path / 'nan')
    assert recs[-1]['kind'] == 'stop' and recs[-1]['global_step'] == 4
    assert not (tmp_path / 'nan' / 'model.pth').exists()

@pytest.fixture(scope='module')
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp('done') / 'run'
    n = torch.get_num_threads(); torch.set_num_threads(1)
    pretrain(PretrainConfig(**dict(TINY, epochs=1), out=str(out)))
    torch.set_num_threads(n)
    return out

def test_refuses_broken_or_foreign_checkpoints(finished, tmp_path):
    cfg = dict(TINY, epochs=1, out=str(finished))
    with pytest.raises(CheckpointError, match="another architecture: .*embed_dim: 128 in the checkpoint, 192 now"):
        pretrain(PretrainConfig(**dict(cfg, model='tiny')), resume=finished)
    with pytest.raises(CheckpointError, match="strategy 'random', this run uses 'amt'"):
        pretrain(PretrainConfig(**dict(cfg, strategy='amt')), resume=finished)
    with pytest.raises(CheckpointError, match="blr: 0.004 in the checkpoint, 0.001 now"):
        pretrain(PretrainConfig(**dict(cfg, blr=1e-3)), resume=finished)
    with pytest.raises(CheckpointError, match="effective batch: 16 in the checkpoint, 8 now"):
        pretrain(PretrainConfig(**dict(cfg, accum_iter=1)), resume=finished)
    from semmae_edu.synthetic import SyntheticParts
    with pytest.raises(CheckpointError, match="the training set has 64 images, the checkpoint's had 48"):
        pretrain(PretrainConfig(**cfg), resume=finished, train_set=SyntheticParts(n=64, size=32))
    cut = tmp_path / 'cut.pth'
    cut.write_bytes((finished / 'checkpoint.pth').read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"): pretrain(resume=cut)
    torch.save({'model': {}}, tmp_path / 'official.pth')
    with pytest.raises(CheckpointError, match="not a semmae_edu training checkpoint"): pretrain(resume=tmp_path / 'official.pth')
    with pytest.raises(ConfigError, match="already holds a run"): pretrain(PretrainConfig(**cfg))

def test_bad_settings_write_nothing(tmp_path):
    out = tmp_path / 'never'
    for bad, msg in [(dict(data='cifar10', data_path=str(tmp_path / 'nowhere')), 'does not exist'),
                     (dict(data='imagenet'), 'unknown data set'), (dict(strategy='blocks'), 'unknown strategy'),
                     (dict(eff_batch_size=20, batch_size=8), 'eff_batch_size=20 is not a whole number'),
                     (dict(n_synthetic=10), 'fewer than one optimizer step'), (dict(mask_ratio=1.0), 'mask_ratio')]:
        with pytest.raises((ConfigError, ValueError), match=msg): pretrain(PretrainConfig(**dict(TINY, out=str(out), **bad)))
        assert not out.exists()
    from semmae_edu.synthetic import SyntheticParts     # SemMAE without part maps (no PartBank, items without 'parts')
    class NoParts(torch.utils.data.Dataset):
        def __init__(self): self.base = SyntheticParts(n=48, size=32)
        def __len__(self): return 48
        def __getitem__(self, i): return {k: v for k, v in self.base[i].items() if k not in ('parts', 'fg')}
    with pytest.raises(ConfigError, match="strategy 'semmae' cannot mask data='synthetic': KeyError: .*no 'parts' map"):
        pretrain(PretrainConfig(**dict(TINY, strategy='semmae', out=str(out))), train_set=NoParts())
    assert not out.exists()

def test_dataloader_workers_change_nothing(tmp_path):
    from semmae_edu.data import AugmentedItems
    from semmae_edu.synthetic import SyntheticParts
    cfg = dict(TINY, epochs=1)
    items = lambda: AugmentedItems(SyntheticParts(n=48, size=32))   # item by item: the DataLoader path, where workers exist
    a = pretrain(PretrainConfig(**cfg, out=str(tmp_path / 'w0')), train_set=items())
    b = pretrain(PretrainConfig(**cfg, num_workers=2, out=str(tmp_path / 'w2')), train_set=items())
    assert step_losses(tmp_path / 'w0') == step_losses(tmp_path / 'w2')
    assert_same_weights(a.model, b.model)

@pytest.mark.parametrize('strategy', ['amt', 'semmae'])
@pytest.mark.slow
def test_workers_for_map_strategies(tmp_path, strategy, monkeypatch):
    "Workers change no number for AMT and SemMAE; the loader is rebuilt only when the maps the workers read change."
    import semmae_edu.train as train
    built, make = [], train._make_loader
    monkeypatch.setattr(train, '_make_loader', lambda *a: built.append(1) or make(*a))
    cfg = dict(TINY, strategy=strategy, strategy_kw=STRATEGY_KW.get(strategy, {}))
    from semmae_edu.data import AugmentedItems
    from semmae_edu.synthetic import SyntheticParts
    items = lambda: AugmentedItems(SyntheticParts(n=48, size=32))   # not tensor-backed: the DataLoader path, where workers exist
    a = pretrain(PretrainConfig(**cfg, out=str(tmp_path / 'w0')), train_set=items())
    assert len(built) == 1                                      # no workers: one loader
    b = pretrain(PretrainConfig(**cfg, num_workers=2, out=str(tmp_path / 'w2')), train_set=items())
    assert step_losses(tmp_path / 'w0') == step_losses(tmp_path / 'w2')
    assert_same_weights(a.model, b.model)
    # AMT refreshes its bank at epochs 1 and 2 (start 1, every 1): two rebuilds; SemMAE's maps never change: none
    assert len(built) - 1 == {'amt': 3, 'semmae': 1}[strategy]
    # a tensor-backed set (SyntheticParts itself) needs no DataLoader: batches are gathered and cropped in the process,
    # so workers cannot take effect and are refused before anything is written
    built.clear()
    pretrain(PretrainConfig(**cfg, out=str(tmp_path / 't0')))
    assert built == []
    with pytest.raises(ConfigError, match=r'num_workers=2 cannot take effect.*use num_workers=0'):
        pretrain(PretrainConfig(**cfg, num_workers=2, out=str(tmp_path / 't2')))
    assert not (tmp_path / 't2').exists()

def _grad_norms(norms):
    "A hook on every optimizer's step that records the global gradient norm the step sees."
    def hook(opt, args, kwargs):
        g = [p.grad.detach().float().norm() for group in opt.param_groups for p in group['params'] if p.grad is not None]
        norms.append(torch.stack(g).norm().item())
    from torch.optim.optimizer import register_optimizer_step_pre_hook
    return register_optimizer_step_pre_hook(hook)

@pytest.mark.parametrize('amp', ['none', pytest.param('fp16', marks=pytest.mark.slow)])   # fp16 on a CPU: slow; test_fp16_gradscaler_path stays quick
def test_clip_grad_bounds_the_step(tmp_path, amp):
    "With clip_grad the optimizer never sees a larger gradient norm (with fp16: after the GradScaler unscaled it)."
    free, clipped = [], []
    cfg = dict(TINY, epochs=1, device='cpu', amp=amp)
    h = _grad_norms(free)
    try: pretrain(PretrainConfig(**cfg, out=str(tmp_path / 'free')))
    finally: h.remove()
    clip = min(free) / 2                                    # every step of the free run would be clipped
    h = _grad_norms(clipped)
    try: pretrain(PretrainConfig(**cfg, clip_grad=clip, out=str(tmp_path / 'clip')))
    finally: h.remove()
    assert len(clipped) == len(free) == 3
    # clip_grad_norm_ scales by clip / (norm + 1e-6) <= clip / norm; the float32 norm of ~1e5 squares carries a
    # relative rounding error of about log2(1e5) * 6e-8 ~ 1e-6 (pairwise sums): 1e-4 is a wide margin.
    assert max(clipped) <= clip * (1 + 1e-4), (clipped, clip)
    assert min(clipped) >= clip * (1 - 1e-3)                # and the step does see the clipped norm (not a tiny one)

def test_fp16_gradscaler_path(tmp_path):
    "amp='fp16' runs under autocast with a GradScaler (CPU float16 autocast where torch supports it), and resumes it."
    try:
        with torch.autocast('cpu', dtype=torch.float16): torch.ones(2, 2) @ torch.ones(2, 2)
    except RuntimeError as e: pytest.skip(f"this torch has no float16 autocast on the CPU: {e}")
    cfg = dict(TINY, epochs=1, device='cpu')
    ref = pretrain(PretrainConfig(**cfg, out=str(tmp_path / 'fp32')))
    half = pretrain(PretrainConfig(**cfg, amp='fp16', out=str(tmp_path / 'fp16')))
    ck = read_checkpoint(tmp_path / 'fp16')
    assert ck['scaler'] is not None and ck['scaler']['scale'] == 2. ** 16      # finite gradients: the initial scale stays
    assert read_checkpoint(tmp_path / 'fp32')['scaler'] is None
    l32, l16 = step_losses(tmp_path / 'fp32'), step_losses(tmp_path / 'fp16')
    # step 0: the same weights, batch and masks; float16 keeps 11 significant bits (unit roundoff 4.9e-4) and the
    # micro MAE's forward chains about 20 rounded operations: a relative error below 20 * 4.9e-4 ~ 1e-2.
    assert abs(l16[0] - l32[0]) <= 1e-2 * abs(l32[0]), (l16[0], l32[0])
    assert all(math.isfinite(v) for v in l16)
    assert not all(torch.equal(a, b) for a, b in zip(ref.model.state_dict().values(), half.model.state_dict().values()))

def test_compile_changes_no_number(tmp_path, monkeypatch):
    "compile=True puts the model through torch.compile; with dynamo's eager backend (no C++ toolchain, seconds) every loss is the eager one."
    real, calls = torch.compile, []
    monkeypatch.setattr(torch, 'compile', lambda m, **kw: calls.append(m) or real(m, backend='eager'))
    cfg = dict(TINY, epochs=1, device='cpu')
    eager = pretrain(PretrainConfig(**cfg, out=str(tmp_path / 'eager')))
    comp = pretrain(PretrainConfig(**cfg, compile=True, out=str(tmp_path / 'compiled')))
    assert len(calls) == 1
    assert step_losses(tmp_path / 'compiled') == step_losses(tmp_path / 'eager')
    assert_same_weights(eager.model, comp.model)
