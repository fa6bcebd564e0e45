"""Training-step time of the tiny MAE, measured side by side in one run (ratios, not absolute times).

    python bench/bench_mae.py [--batch 128] [--reps 5]

1. mask ratio 0.75 vs 0.0: the encoder sees only the visible tokens, so 0.75 should cost well under 0.5x.
2. our blocks vs the same architecture built from timm's `Block` (same weights): ours must not be slower.
"""
import argparse, statistics, time
from functools import partial
import torch, timm
from semmae_edu.mae import mae_vit_tiny_patch4
from semmae_edu.masking import MaskPlan, random_masking

def step_fn(model, imgs, plan):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95))
    def step():
        loss, _, _ = model(imgs, plan); opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    return step

def timm_twin(model):
    "The same MAE with every block replaced by timm's Block (identical names, so the weights load)."
    twin = mae_vit_tiny_patch4()
    for blocks in (twin.blocks, twin.decoder_blocks):
        for i, b in enumerate(blocks):
            d, h = b.norm1.normalized_shape[0], b.attn.num_heads
            blocks[i] = timm.models.vision_transformer.Block(d, h, mlp_ratio=4., qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6))
    twin.load_state_dict(model.state_dict(), strict=True)
    return twin

def main(batch=128, reps=5):
    torch.manual_seed(0)
    imgs = torch.randn(batch, 3, 32, 32)
    ours = mae_vit_tiny_patch4(); twin = timm_twin(ours)
    L = ours.num_patches
    p75 = random_masking(batch, L, 0.75, generator=torch.Generator().manual_seed(0))
    p0 = MaskPlan(torch.zeros(batch, L, dtype=torch.int8))
    cases = {'ours r=0.75': step_fn(ours, imgs, p75), 'ours r=0.00': step_fn(ours, imgs, p0), 'timm r=0.75': step_fn(twin, imgs, p75)}
    for f in cases.values(): f()  # warm-up
    times = {k: [] for k in cases}
    for _ in range(reps):  # interleaved, so machine noise hits every case alike
        for k, f in cases.items():
            t = time.perf_counter(); f(); times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items(): print(f"{k}: {v*1000:.0f} ms/step (median of {reps})")
    print(f"ratio mask 0.75 / mask 0.0 : {med['ours r=0.75'] / med['ours r=0.00']:.2f}  (target well under 0.5)")
    print(f"ratio ours / timm blocks   : {med['ours r=0.75'] / med['timm r=0.75']:.2f}  (target <= 1.0)")
    return med

if __name__ == '__main__':
    ap = argparse.ArgumentParser(); ap.add_argument('--batch', type=int, default=128); ap.add_argument('--reps', type=int, default=5)
    a = ap.parse_args(); torch.set_num_threads(max(1, torch.get_num_threads())); main(a.batch, a.reps)
