"""Fine-tuning vs scratch on a candidate testbed with the library's `semmae_edu.evaluate.finetune` (global pool + fc_norm,
layer-wise lr decay, AdamW, warm-up + cosine, flips, label smoothing 0.1).
python ft.py --cand shared --weights /tmp/testbed_runs/X.pth|scratch --n-ft 1000 --epochs 20 --tag NAME
Appends a row to bench/testbed/finetune.json."""
import argparse, json, sys, time, fcntl
from pathlib import Path
import torch
HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from synth import CANDIDATES, render_set
from mae_curve import build
from semmae_edu.evaluate import finetune
from semmae_edu.data import TensorItems

ap = argparse.ArgumentParser()
ap.add_argument('--cand', default='shared'); ap.add_argument('--weights', default='scratch'); ap.add_argument('--model', default='micro')
ap.add_argument('--n-ft', type=int, default=1000); ap.add_argument('--n-test', type=int, default=2000)
ap.add_argument('--epochs', type=int, default=20); ap.add_argument('--blr', type=float, default=4e-3)
ap.add_argument('--layer-decay', type=float, default=0.75); ap.add_argument('--batch', type=int, default=64)
ap.add_argument('--drop-path', type=float, default=0.0); ap.add_argument('--warmup', type=int, default=1)
ap.add_argument('--seed', type=int, default=0); ap.add_argument('--tag', required=True)
a = ap.parse_args()
torch.set_num_threads(1)
spec = CANDIDATES[a.cand]
tr, te = render_set(spec, a.n_ft, 0), render_set(spec, a.n_test, 1)   # the first n_ft training images (data seed 0)
stats = json.loads((HERE / 'curves' / 'shared-micro-const-b64.json').read_text()) if a.cand == 'shared' else None
mean, std = (tuple(stats['data_mean']), tuple(stats['data_std'])) if stats else (tuple(tr['image'].mean((0, 2, 3)).tolist()), tuple(tr['image'].std((0, 2, 3)).tolist()))
mae = build(a.model, spec.size, 4, a.seed)
if a.weights != 'scratch': mae.load_state_dict(torch.load(a.weights, weights_only=True))
c0, w0 = time.process_time(), time.perf_counter()
r = finetune(mae, TensorItems(dict(image=tr['image'], label=tr['label'])), TensorItems(dict(image=te['image'], label=te['label'])),
             epochs=a.epochs, blr=a.blr, layer_decay=a.layer_decay, batch_size=a.batch, warmup_epochs=a.warmup, drop_path=a.drop_path,
             mean=mean, std=std, seed=a.seed)
row = dict(tag=a.tag, args=vars(a), acc=r['acc'], se=(r['acc'] * (1 - r['acc']) / a.n_test) ** .5, losses=r['losses'],
           cpu_s=time.process_time() - c0, wall_s=time.perf_counter() - w0, images_per_cpu_s=a.n_ft * a.epochs / (time.process_time() - c0))
print(json.dumps({k: v for k, v in row.items() if k != 'losses'}), [round(x, 3) for x in r['losses']], flush=True)
out = HERE / 'finetune.json'
with open(HERE / '.finetune.lock', 'w') as lk:
    fcntl.flock(lk, fcntl.LOCK_EX)
    rows = json.loads(out.read_text()) if out.exists() else []
    out.write_text(json.dumps(rows + [row], indent=1))
