"""Random-masking MAE pre-training on a candidate testbed with the library's model and pieces (micro MAE, norm-pix
loss, AdamW 0.9/0.95 wd 0.05, lr = blr * batch / 256, linear warm-up then half-cosine per step (or constant), MAE's
RandomResizedCrop + flip), the converged probe (mean-pooled and CLS) at log-spaced steps: a learning curve.
The loop is `semmae_edu.train.pretrain`'s recipe written flat so that the model can be probed mid-run.

python mae_curve.py --cand shared --n-train 8192 --steps 4000 --eval 250,500,1000,2000,4000 --tag NAME
Writes bench/testbed/curves/<tag>.json (and the final weights to /tmp/testbed_runs/<tag>.pth)."""
import argparse, json, math, sys, time
from pathlib import Path
import torch
HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from synth import CANDIDATES, render_set
from semmae_edu.mae import MaskedAutoencoder
from semmae_edu.data import rrc_boxes, crop_batch, normalize
from semmae_edu.optim import lr_at, make_optimizer
from semmae_edu.batches import generator_for, seed_for
from semmae_edu.evaluate import lbfgs_probe, PROBE_LAMS as LAMS

MODELS = dict(  # name -> encoder / decoder sizes, patch 4
    micro=dict(embed_dim=128, depth=4, num_heads=4, decoder_embed_dim=64, decoder_depth=2, decoder_num_heads=4),
    nano=dict(embed_dim=96, depth=3, num_heads=3, decoder_embed_dim=64, decoder_depth=1, decoder_num_heads=4),
    small=dict(embed_dim=192, depth=6, num_heads=3, decoder_embed_dim=96, decoder_depth=2, decoder_num_heads=4),
)

def build(model, size, patch, seed):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed_for(seed, 'init'))
        return MaskedAutoencoder(img_size=size, patch_size=patch, norm_pix_loss=True, **MODELS[model])

@torch.no_grad()
def features(enc, images, mean, std, batch=512):
    "(mean-pooled patch tokens, CLS token) [n, D] each, from one pass of the frozen encoder."
    m, c = [], []
    for i in range(0, len(images), batch):
        t = enc.forward_features(normalize(images[i:i + batch], mean, std))
        m.append(t[:, 1:].mean(1)); c.append(t[:, 0])
    return torch.cat(m).double(), torch.cat(c).double()

def probe_model(mae, tr, te, n_probe, mean, std):
    enc = mae.encoder().eval()
    out = {}
    t0 = time.process_time()
    fa, fb = features(enc, tr['image'][:n_probe], mean, std), features(enc, te['image'], mean, std)
    out['feat_cpu_s'] = time.process_time() - t0
    for k, pool in enumerate(('mean', 'cls')):
        p = lbfgs_probe(fa[k], tr['label'][:n_probe], fb[k], te['label'], lams=LAMS[:9])   # 1 .. 1e-4
        out[pool] = dict(acc=p['acc'], se=p['se'], lam=p['lam'], grad=p['grad'], train_acc=p['train_acc'], converged=p['converged'])
    out['eval_cpu_s'] = time.process_time() - t0
    return out

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--cand', default='shared'); ap.add_argument('--n-train', type=int, default=8192)
    ap.add_argument('--n-test', type=int, default=2000); ap.add_argument('--n-probe', type=int, default=0, help='labelled training images for the probe (0: all)')
    ap.add_argument('--steps', type=int, default=2000); ap.add_argument('--eval', default='')
    ap.add_argument('--batch', type=int, default=64); ap.add_argument('--blr', type=float, default=1.5e-4 * 16)
    ap.add_argument('--warmup', type=float, default=0.05, help='share of the steps'); ap.add_argument('--schedule', default='cosine')
    ap.add_argument('--model', default='micro'); ap.add_argument('--patch', type=int, default=4)
    ap.add_argument('--mask-ratio', type=float, default=0.75); ap.add_argument('--crop-min', type=float, default=0.2)
    ap.add_argument('--seed', type=int, default=0); ap.add_argument('--tag', required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    spec = CANDIDATES[a.cand]
    tr, te = render_set(spec, a.n_train, 0), render_set(spec, a.n_test, 1)
    mean, std = tuple(tr['image'].mean((0, 2, 3)).tolist()), tuple(tr['image'].std((0, 2, 3)).tolist())
    n_probe = a.n_probe or a.n_train
    mae = build(a.model, spec.size, a.patch, a.seed)
    lr = a.blr * a.batch / 256
    opt = make_optimizer(mae, lr, 0.05, (0.9, 0.95))
    evals = sorted({int(s) for s in a.eval.split(',') if s} | {a.steps})
    warm = a.warmup * a.steps
    rec = dict(args=vars(a), spec=spec.__dict__, data_mean=mean, data_std=std, n_params=sum(p.numel() for p in mae.parameters()),
               curve=[])
    g = generator_for(a.seed, 'mask')
    perm, pos, losses = None, a.n_train, []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    train_cpu = 0.
    mae.train()
    if 0 in evals:
        mae.eval(); pr = probe_model(mae, tr, te, n_probe, mean, std); mae.train()
        rec['curve'].append(dict(step=0, **pr)); print(a.tag, 'step 0', pr['mean']['acc'], pr['cls']['acc'], pr['eval_cpu_s'], flush=True)
    for step in range(a.steps):
        c0 = time.process_time()
        if pos + a.batch > a.n_train:
            perm, pos = torch.randperm(a.n_train, generator=generator_for(a.seed, 'perm', step)), 0
        idx = perm[pos:pos + a.batch]; pos += a.batch
        b = dict(image=tr['image'][idx])
        boxes, flips = rrc_boxes(len(idx), spec.size, spec.size, (a.crop_min, 1.0), generator=generator_for(a.seed, 'aug', step))
        if a.crop_min < 1: b = crop_batch(b, boxes, flips, (spec.size, spec.size))
        x = normalize(b['image'], mean, std)
        t = step / max(a.steps, 1)
        cur = (lr * min(1., (step + 1) / max(warm, 1)) if a.schedule == 'const' else lr_at(step + 1 if step < warm else step, lr, a.steps, warm))
        for gr in opt.param_groups: gr['lr'] = cur
        loss = mae(x, mask_ratio=a.mask_ratio, generator=g)[0]
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        losses.append(loss.item())
        train_cpu += time.process_time() - c0
        if step + 1 in evals:
            mae.eval()
            pr = probe_model(mae, tr, te, n_probe, mean, std)
            mae.train()
            k = max(1, min(200, len(losses) // 4))
            rec['curve'].append(dict(step=step + 1, images=(step + 1) * a.batch, epochs=(step + 1) * a.batch / a.n_train,
                                     loss=sum(losses[-k:]) / k, train_cpu_s=train_cpu, wall_s=time.perf_counter() - wall0, **pr))
            print(a.tag, f"step {step + 1} loss {rec['curve'][-1]['loss']:.4f} probe mean {pr['mean']['acc']:.3f} cls {pr['cls']['acc']:.3f} "
                  f"train cpu {train_cpu:.0f}s ({(step + 1) * a.batch / train_cpu:.0f} img/cpu-s)", flush=True)
            out = HERE / 'curves' / f'{a.tag}.json'; out.parent.mkdir(exist_ok=True); out.write_text(json.dumps(rec, indent=1))
            Path('/tmp/testbed_runs').mkdir(exist_ok=True); torch.save(mae.state_dict(), f'/tmp/testbed_runs/{a.tag}-s{step + 1}.pth')
    Path('/tmp/testbed_runs').mkdir(exist_ok=True)
    torch.save(mae.state_dict(), f'/tmp/testbed_runs/{a.tag}.pth')

if __name__ == '__main__':
    main()
