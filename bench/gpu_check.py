"""A GPU check anyone can run in about five minutes; it writes one JSON file and exits 1 if any check failed.

    python bench/gpu_check.py                      # on the GPU: the full check (~5 min on an H100/H200-class GPU)
    python bench/gpu_check.py --device cpu --tiny  # the same path on a CPU in under a minute (CI runs this)

What it checks, each step timed and recorded (a failing step is recorded with its error, and the rest still run):
1. `semmae-edu pretrain` for every masking strategy with mixed precision (bf16 where the GPU has it, else fp16).
2. A resume: a run stopped mid-epoch and resumed equals the uninterrupted run (bitwise on a CPU; on a GPU the
   largest weight difference is recorded, since GPU kernels need not be deterministic).
3. `--compile`: the same CLI run with `torch.compile` (inductor; `aot_eager` in a CPU `--tiny` run).
4. A short `semmae-edu demo` on the device.
5. The ViT-B/16 MAE training step (224 px, mask 0.75, AdamW, bf16 autocast): ours, the same model built from timm's
   `Block`s, and Hugging Face `ViTMAEForPreTraining` when `transformers` is installed: images/s and model FLOP
   utilisation (MFU: the model's matmul FLOPs x 3 for forward + backward, over the GPU's dense bf16 peak).
`--tiny` shrinks every budget (micro models, 32 px, a few steps) so the path runs on a CPU; MFU is null there.

The package needs fastcore (a requirement). On a machine that cannot reach a package index, carry its wheel:
`pip download fastcore -d wheels` here, then `pip install wheels/*.whl` there (bench/RESULTS.md, "GPU check").
"""
import argparse, contextlib, io, json, math, os, platform, sys, tempfile, time, traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))          # run from a checkout without installing

# GPU peak dense bf16 FLOP/s by device name (vendor data sheets; SXM parts). Unknown GPUs get no MFU.
PEAK_BF16 = {'H200': 989e12, 'H100': 989e12, 'A100': 312e12, 'L40S': 362e12, 'L4': 121e12, 'A10G': 70e12, 'RTX 4090': 165e12,
             'V100': 125e12, 'T4': 65e12}


def missing_requirements() -> list:
    out = []
    for mod in ('torch', 'torchvision', 'timm', 'numpy', 'fastcore'):
        try: __import__(mod)
        except ImportError: out.append(mod)
    return out


def environment(device) -> dict:
    import torch, torchvision, timm, numpy
    env = dict(python=platform.python_version(), torch=torch.__version__, torchvision=torchvision.__version__,
               timm=timm.__version__, numpy=numpy.__version__, machine=platform.machine(), cpus=os.cpu_count())
    try:
        import transformers; env['transformers'] = transformers.__version__
    except ImportError: env['transformers'] = None
    if device.type == 'cuda':
        p = torch.cuda.get_device_properties(device)
        env.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version(), bf16=torch.cuda.is_bf16_supported())
    return env


class Steps:
    "Run named checks, each timed; a failure is recorded with its error and the next check still runs."
    def __init__(self): self.records = []
    def run(self, name, fn):
        t = time.perf_counter()
        try:
            detail = fn() or {}
            rec = dict(name=name, ok=True, seconds=round(time.perf_counter() - t, 2), **detail)
        except Exception as e:
            rec = dict(name=name, ok=False, seconds=round(time.perf_counter() - t, 2), error=f"{type(e).__name__}: {e}",
                       traceback=traceback.format_exc()[-2000:])
        self.records.append(rec)
        print(f"{'ok  ' if rec['ok'] else 'FAIL'} {name} ({rec['seconds']} s)" + ('' if rec['ok'] else f": {rec['error']}"), flush=True)
        return rec


def cli(*args) -> str:
    "`semmae-edu <args>` in this process; its stdout, or RuntimeError with its stderr."
    from semmae_edu import cli as C
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e): rc = C.main([str(a) for a in args])
    if rc != 0: raise RuntimeError(f"semmae-edu {' '.join(map(str, args))} exited {rc}: {e.getvalue()[-1500:]}")
    return o.getvalue()


def run_size(tiny): return ['--n-synthetic', 64 if tiny else 2048, '--batch-size', 16 if tiny else 256, '--epochs', 2,
                            '--warmup-epochs', 1, '--model', 'micro' if tiny else 'tiny']


def amp_mode(device):
    import torch
    if device.type != 'cuda': return 'bf16'                     # CPU autocast runs bf16 too (slowly): the same path
    return 'bf16' if torch.cuda.is_bf16_supported() else 'fp16'


def check_strategy(strategy, device, tiny, work):
    from semmae_edu.checkpoint import read_metrics
    kw = {'amt': '{"amt_start_epoch": 1}'}.get(strategy)   # AMT from the second of the two epochs (one map: no refresh to schedule)
    out = work / f'pretrain_{strategy}'
    cli('pretrain', '--strategy', strategy, *(['--strategy-kw', kw] if kw else []), *run_size(tiny), '--device', device,
        '--amp', amp_mode(device), '--no-progress', '--out', out)
    ep = [r for r in read_metrics(out) if r['kind'] == 'epoch']
    assert len(ep) == 2 and all(math.isfinite(r['loss']) for r in ep), ep
    return dict(amp=amp_mode(device), epoch_losses=[round(r['loss'], 4) for r in ep])


def check_resume(device, tiny, work):
    import torch
    from semmae_edu.train import pretrain
    from semmae_edu.config import PretrainConfig
    from semmae_edu.checkpoint import read_checkpoint
    cfg = dict(n_synthetic=64 if tiny else 2048, batch_size=16 if tiny else 256, epochs=2, warmup_epochs=1, model='micro' if tiny else 'tiny',
               device=str(device), amp=amp_mode(device), ckpt_every_steps=1, progress=False, seed=0)
    full = pretrain(PretrainConfig(**cfg, out=str(work / 'resume_full')))
    steps = full.history[-1]['global_step']
    class Stop(Exception): pass
    def stop(rec):
        if rec['global_step'] == steps // 2 + 1: raise Stop   # mid-epoch, after the checkpoint of the step before
    try: pretrain(PretrainConfig(**cfg, out=str(work / 'resume_cut')), on_step=stop); raise AssertionError("the run was not stopped")
    except Stop: pass
    at = read_checkpoint(work / 'resume_cut')['global_step']
    resumed = pretrain(resume=work / 'resume_cut')
    a, b = full.model.state_dict(), resumed.model.state_dict()
    diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    # CPU kernels are deterministic: bitwise. GPU ones need not be (atomics in backward): bf16 rounding of one step's update.
    assert diff == 0 if device.type == 'cpu' else diff <= 1e-2, diff
    assert resumed.history[-1]['global_step'] == steps
    return dict(stopped_after_step=at, steps=steps, max_weight_diff=diff)


def check_compile(device, tiny, work):
    import torch
    from semmae_edu.checkpoint import read_metrics
    out = work / 'compile'
    # inductor everywhere but a CPU --tiny run, where its C++ build alone takes minutes on 2 cores: there `aot_eager`
    # (dynamo's tracing and AOT autograd, the part that breaks on graph changes) keeps the check under a minute
    backend = 'aot_eager' if tiny and device.type == 'cpu' else 'inductor'
    real = torch.compile
    torch.compile = lambda model, **kw: real(model, **{'backend': backend, **kw})
    t = time.perf_counter()
    try: cli('pretrain', *run_size(tiny), '--device', device, '--amp', amp_mode(device), '--compile', '--no-progress', '--out', out)
    finally: torch.compile = real
    ep = [r for r in read_metrics(out) if r['kind'] == 'epoch']
    assert len(ep) == 2 and all(math.isfinite(r['loss']) for r in ep), ep
    return dict(backend=backend, epoch_losses=[round(r['loss'], 4) for r in ep], seconds_with_compilation=round(time.perf_counter() - t, 1))


def check_demo(device, tiny, work):
    from semmae_edu.demo import run_demo
    budget = (dict(n_train=96, n_test=40, epochs=2, batch_size=32, amt_start_epoch=1, part_steps=10, n_finetune=96, finetune_epochs=1, finetune_from=1)
              if tiny else dict(epochs=10))
    m = run_demo(work / 'demo', **budget, device=str(device), progress=False)
    return dict(budget=budget, probe_cls={k: round(v['probe_cls'], 4) for k, v in m['methods'].items() if v.get('probe_cls') is not None},
                report=str(work / 'demo' / 'report.html'))


# ---------------------------------------------------------------- the ViT-B/16 MAE training step
def mae_train_flops(img=224, patch=16, D=768, depth=12, Dd=512, ddepth=8, mask=0.75, chans=3) -> float:
    "Matmul FLOPs of one MAE training step per image (forward x 3: the backward costs twice the forward)."
    L = (img // patch) ** 2
    keep = int(L * (1 - mask))
    def blocks(T, d, n): return n * (24 * T * d * d + 4 * T * T * d)          # qkv+proj+mlp(4x) = 12 d^2 per token, x2 FLOPs; QK^T and AV
    fwd = (2 * L * patch * patch * chans * D                                     # patch embedding (all patches, as MAE does)
           + blocks(keep + 1, D, depth)                                          # encoder on visible tokens + CLS
           + 2 * (keep + 1) * D * Dd                                             # decoder embedding
           + blocks(L + 1, Dd, ddepth)                                           # decoder on all tokens + CLS
           + 2 * L * Dd * patch * patch * chans)                                 # prediction head
    return 3.0 * fwd


def timm_twin(model):
    "The same MAE with every block replaced by timm's `Block` (identical parameter names, so the weights load)."
    import timm, torch
    from functools import partial
    for blocks in (model.blocks, model.decoder_blocks):
        for i, b in enumerate(blocks):
            blocks[i] = timm.models.vision_transformer.Block(b.norm1.normalized_shape[0], b.attn.num_heads, mlp_ratio=4., qkv_bias=True,
                                                             norm_layer=partial(torch.nn.LayerNorm, eps=1e-6))
    return model


def step_rate(make, batch, img, device, steps, warmup=2):
    "images/s of forward + backward + AdamW under bf16 autocast (CUDA) or fp32 (CPU), timed after `warmup` steps."
    import torch
    from semmae_edu.masking import random_masking
    model, forward = make()
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95))
    x = torch.randn(batch, 3, img, img, device=device)
    g = torch.Generator().manual_seed(0)
    ctx = (lambda: torch.autocast('cuda', dtype=torch.bfloat16)) if device.type == 'cuda' else contextlib.nullcontext
    def one():
        with ctx(): loss = forward(model, x, g)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    for _ in range(warmup): one()
    if device.type == 'cuda': torch.cuda.synchronize(device)
    t = time.perf_counter()
    for _ in range(steps): one()
    if device.type == 'cuda': torch.cuda.synchronize(device)
    dt = time.perf_counter() - t
    del model, opt
    if device.type == 'cuda': torch.cuda.empty_cache()
    return batch * steps / dt


def check_vit_b16(device, tiny):
    import torch
    from semmae_edu.mae import mae_vit_base_patch16, mae_vit_micro_patch4
    from semmae_edu.masking import random_masking
    if tiny: img, batch, steps, arch = 32, 8, 2, dict(img=32, patch=4, D=128, depth=4, Dd=64, ddepth=2)
    else: img, batch, steps, arch = 224, 128, 10, dict()
    build = (lambda: mae_vit_micro_patch4()) if tiny else (lambda: mae_vit_base_patch16(img_size=224))
    L = (img // (4 if tiny else 16)) ** 2
    def ours_forward(m, x, g): return m(x, random_masking(x.shape[0], L, 0.75, generator=g).to(x.device))[0]
    cases = {'ours': lambda: (build(), ours_forward), 'timm_blocks': lambda: (timm_twin(build()), ours_forward)}
    try:
        from transformers import ViTMAEConfig, ViTMAEForPreTraining
        def hf():
            cfg = ViTMAEConfig(image_size=img, patch_size=4, hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512,
                               decoder_hidden_size=64, decoder_num_hidden_layers=2, decoder_num_attention_heads=4, decoder_intermediate_size=256,
                               mask_ratio=0.75) if tiny else ViTMAEConfig(mask_ratio=0.75)          # the default config is MAE ViT-B/16
            return ViTMAEForPreTraining(cfg), lambda m, x, g: m(pixel_values=x).loss
        cases['hf_vitmae'] = hf
    except ImportError: pass
    flops = mae_train_flops(**arch)
    peak = next((v for k, v in PEAK_BF16.items() if device.type == 'cuda' and k in torch.cuda.get_device_name(device)), None)
    out = dict(image_size=img, batch=batch, timed_steps=steps, train_gflops_per_image=round(flops / 1e9, 2),
               peak_bf16_tflops=peak / 1e12 if peak else None, models={})
    for name, make in cases.items():
        ips = step_rate(make, batch, img, device, steps)
        out['models'][name] = dict(images_per_s=round(ips, 1), mfu=round(ips * flops / peak, 4) if peak else None)
    if 'hf_vitmae' not in cases: out['models']['hf_vitmae'] = 'not installed (pip install transformers to include it)'
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--device', default='cuda', help="cuda (default) | cuda:1 | cpu")
    ap.add_argument('--tiny', action='store_true', help="tiny budgets: the whole path in under a minute on a CPU")
    ap.add_argument('--out', default='gpu_check.json', help="the JSON file to write (default: gpu_check.json)")
    ap.add_argument('--skip', default='', help="comma-separated steps to leave out, e.g. compile,demo")
    a = ap.parse_args(argv)
    miss = missing_requirements()
    if miss:
        print(f"gpu_check: missing {', '.join(miss)}. On a machine without a package index, carry the wheels: "
              f"`pip download {' '.join(miss)} -d wheels` where pip works, copy wheels/ over, `pip install wheels/*.whl` "
              f"(see bench/RESULTS.md, 'GPU check').", file=sys.stderr)
        return 2
    import torch
    device = torch.device(a.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        print("gpu_check: --device cuda but this machine has no CUDA GPU; use --device cpu --tiny for the CPU path", file=sys.stderr); return 2
    skip = {s for s in a.skip.split(',') if s}
    t0 = time.perf_counter()
    report = dict(command=' '.join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])), device=str(device),
                  tiny=a.tiny, environment=environment(device))
    print(json.dumps(report['environment']), flush=True)
    steps = Steps()
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        from semmae_edu.train import STRATEGIES
        if 'pretrain' not in skip:
            for s in STRATEGIES: steps.run(f'pretrain --strategy {s} (mixed precision)', lambda s=s: check_strategy(s, device, a.tiny, work))
        if 'resume' not in skip: steps.run('resume equals the uninterrupted run', lambda: check_resume(device, a.tiny, work))
        if 'compile' not in skip: steps.run('pretrain --compile', lambda: check_compile(device, a.tiny, work))
        if 'demo' not in skip: steps.run('demo', lambda: check_demo(device, a.tiny, work))
        if 'vit_b16' not in skip: steps.run('MAE ViT-B/16 training step' if not a.tiny else 'MAE training step (micro, --tiny)',
                                            lambda: check_vit_b16(device, a.tiny))
    report.update(steps=steps.records, seconds=round(time.perf_counter() - t0, 1), ok=all(r['ok'] for r in steps.records))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1) + '\n')
    n_bad = sum(not r['ok'] for r in steps.records)
    print(f"{len(steps.records) - n_bad}/{len(steps.records)} checks passed in {report['seconds']} s; wrote {a.out}")
    return 0 if report['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
