"""The training loop (nbs/07_train.ipynb): exact resume after SIGKILL, one short run per strategy,
non-finite loss, checkpoint refusals, DataLoader workers, and the hooks of a strategy that trains a head (HPM).
CPU only, tiny models, a few steps each."""
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

@pytest.mark.parametrize('strategy', ['amt', 'semmae', 'colormae', 'hpm'])
def test_strategy_state_survives_a_crash(tmp_path, strategy):
    """AMT's attention bank, SemMAE's λ, ColorMAE's bank and HPM's predictor, teacher and share live in the checkpoint
    (HPM's predictor in the optimizer's state too): a crash mid-epoch changes nothing."""
    cfg = dict(TINY, strategy=strategy, strategy_kw=STRATEGY_KW.get(strategy, {}), ckpt_every_steps=1)
    full = pretrain(PretrainConfig(**cfg, out=str(tmp_path / 'full')))
    def crash(rec):
        if rec['global_step'] == 6: raise Crash          # epoch 1, step 2: after the checkpoint of global step 5
    with pytest.raises(Crash): pretrain(PretrainConfig(**cfg, out=str(tmp_path / 'crash')), on_step=crash)
    ck = read_checkpoint(tmp_path / 'crash')
    assert (ck['epoch'], ck['step']) == (1, 2)
    if strategy == 'amt': assert ck['strategy']['state']['bank']['refreshed_at'] == 1
    if strategy == 'hpm': assert {'predictor', 'teacher', 'teacher_predictor'} <= {k.split('.')[0] for k in ck['strategy']['state']['head']}
    resumed = pretrain(resume=tmp_path / 'crash')
    assert_same_weights(full.model, resumed.model)
    assert step_losses(tmp_path / 'crash') == step_losses(tmp_path / 'full')
    if strategy == 'hpm':
        aux = lambda out: [r['loss_aux'] for r in read_metrics(out) if r['kind'] == 'step']
        assert aux(tmp_path / 'crash') == aux(tmp_path / 'full')
        assert_same_weights(full.strategy.head, resumed.strategy.head)      # predictor and teacher alike

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

@pytest.mark.parametrize('amp,strategy', [('none', 'random'), ('fp16', 'random'), ('none', 'hpm')])
def test_clip_grad_bounds_the_step(tmp_path, amp, strategy):
    "With clip_grad the optimizer never sees a larger gradient norm (with fp16: after the GradScaler unscaled it); HPM: MAE and predictor together."
    free, clipped = [], []
    cfg = dict(TINY, epochs=1, device='cpu', amp=amp, strategy=strategy)
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

@pytest.mark.parametrize('strategy', ['random', 'hpm'])
def test_compile_changes_no_number(tmp_path, monkeypatch, strategy):
    """compile=True puts the model through torch.compile; with dynamo's eager backend (no C++ toolchain, seconds) every loss is the
    eager one. HPM: the hook that hands the decoder's tokens to its head works inside the compiled model (the head is not compiled)."""
    real, calls = torch.compile, []
    monkeypatch.setattr(torch, 'compile', lambda m, **kw: calls.append(m) or real(m, backend='eager'))
    cfg = dict(TINY, epochs=1, device='cpu', strategy=strategy)
    eager = pretrain(PretrainConfig(**cfg, out=str(tmp_path / 'eager')))
    comp = pretrain(PretrainConfig(**cfg, compile=True, out=str(tmp_path / 'compiled')))
    assert len(calls) == 1
    assert step_losses(tmp_path / 'compiled') == step_losses(tmp_path / 'eager')
    assert [r.get('loss_aux') for r in read_metrics(tmp_path / 'compiled')] == [r.get('loss_aux') for r in read_metrics(tmp_path / 'eager')]
    assert_same_weights(eager.model, comp.model)


# ---------------------------------------------------------------- ColorMAE and HPM in the loop (chapter 09)

def _spy_plans(monkeypatch, cls):
    "Record every plan a strategy class draws."
    plans, call = [], cls.__call__
    monkeypatch.setattr(cls, '__call__', lambda self, *a, **kw: plans.append(call(self, *a, **kw)) or plans[-1])
    return plans

@pytest.mark.parametrize('strategy', ['colormae', 'hpm'])
def test_new_strategy_runs_in_the_loop(tmp_path, strategy, monkeypatch):
    "MAE's exact counts in every plan; losses differ from random's; only HPM logs a finite loss_aux."
    from semmae_edu.zoo import ColorMAEStrategy, HPMStrategy
    plans = _spy_plans(monkeypatch, {'colormae': ColorMAEStrategy, 'hpm': HPMStrategy}[strategy])
    cfg = dict(TINY, epochs=2)
    pretrain(PretrainConfig(**cfg, strategy=strategy, out=str(tmp_path / strategy)))
    pretrain(PretrainConfig(**cfg, out=str(tmp_path / 'random')))
    assert len(plans) == 1 + 2 * 3 * 2                              # the preflight, then 2 epochs x 3 steps x 2 micro-batches
    for p in plans:
        assert p.states.shape == (8, 64)
        assert (p.visible.sum(1) == 16).all() and (p.masked.sum(1) == 48).all()   # int(64 * 0.25) visible, the rest masked
    mine, rnd = step_losses(tmp_path / strategy), step_losses(tmp_path / 'random')
    assert mine[0] != rnd[0] and len(mine) == len(rnd) == 6         # other plans from the first step on
    recs = read_metrics(tmp_path / strategy)
    aux = [r.get('loss_aux') for r in recs if r['kind'] in ('step', 'epoch')]
    if strategy == 'colormae': assert aux == [None] * 8
    else: assert all(a is not None and math.isfinite(a) for a in aux) and len(aux) == 8

def test_hpm_teacher_follows_the_student_after_each_step(tmp_path, monkeypatch):
    """The teacher moves once per optimizer step, exactly teacher <- decay·teacher + (1-decay)·student, and nothing
    else touches it; the predictor is in the optimizer (and learns), the frozen teacher is not."""
    from semmae_edu.zoo import HPMStrategy, ema_decay_at, ema_for
    calls, after_step = [], HPMStrategy.after_step
    def spy(self, model):
        student = dict(model.named_parameters())
        before = {n: p.detach().clone() for n, p in self.head.teacher.named_parameters()}
        expect = {n: b.lerp(student[n].detach(), 1 - self.decay) for n, b in before.items()}
        after_step(self, model)
        calls.append((before, expect, {n: p.detach().clone() for n, p in self.head.teacher.named_parameters()}, self.decay))
    monkeypatch.setattr(HPMStrategy, 'after_step', spy)
    res = pretrain(PretrainConfig(**dict(TINY, epochs=2), strategy='hpm', out=str(tmp_path / 'hpm')))
    assert len(calls) == 6                                                # one per optimizer step
    for k, (before, expect, after, decay) in enumerate(calls):
        assert all(torch.equal(after[n], expect[n]) for n in after), k
        if k: assert any(not torch.equal(after[n], before[n]) for n in after), k   # the student moved (lr 0 at step 0), so did the teacher
        if k: assert all(torch.equal(before[n], calls[k - 1][2][n]) for n in before), k   # untouched between steps
        assert decay == ema_decay_at(k // 3, 2, ema_for(3))              # 3 steps per epoch: the official lag in epochs
    head = res.strategy.head
    assert not any(p.requires_grad for p in head.teacher.parameters()) and not any(p.requires_grad for p in head.teacher_predictor.parameters())
    opt = read_checkpoint(tmp_path / 'hpm')['optimizer']
    n_opt = sum(len(g['params']) for g in opt['param_groups'])
    n_mae = sum(1 for p in res.model.parameters() if p.requires_grad)
    assert n_opt == n_mae + len(list(head.predictor.parameters()))      # MAE + predictor; no teacher parameter
    assert len(opt['state']) == n_opt                                   # and every one of them was stepped
    fresh = HPMStrategy(seed=res.strategy.seed); fresh.attach(type(res.model)(**res.model.config))
    assert not torch.equal(fresh.head.predictor.head.weight, head.predictor.head.weight)   # the predictor learned
    fresh.head.remove_hook()
