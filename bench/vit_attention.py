"""Fused (`F.scaled_dot_product_attention`) vs explicit softmax attention in our ViT, side by side.

    OMP_NUM_THREADS=2 python bench/vit_attention.py [--size small] [--img 224] [--patch 16] [--batch 8] [--reps 5]

Times the forward pass of the same model with every block on the fused path and then on the explicit
path, interleaved (fused, explicit, fused, ...) so that load from other processes hits both alike, and
prints the median of each and their ratio. Also checks the two outputs agree.
"""
import argparse, statistics, time

import torch

from semmae_edu import vit


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--size', default='small', choices=list(vit.VIT_SIZES))
    ap.add_argument('--img', type=int, default=224)
    ap.add_argument('--patch', type=int, default=16)
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    a = ap.parse_args()
    m = getattr(vit, f'vit_{a.size}')(img_size=a.img, patch_size=a.patch, seed=0).eval().to(a.device)
    x = torch.rand(a.batch, 3, a.img, a.img, generator=torch.Generator().manual_seed(0)).to(a.device)

    def run(fused):
        for b in m.blocks: b.attn.fused_attn = fused
        if a.device == 'cuda': torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.no_grad(): y = m.forward_features(x)
        if a.device == 'cuda': torch.cuda.synchronize()
        return time.perf_counter() - t, y

    run(True); run(False)                      # warm-up
    times = {True: [], False: []}
    for _ in range(a.reps):
        for fused in (True, False): times[fused].append(run(fused)[0])
    diff = (run(True)[1] - run(False)[1]).abs().max().item()
    f, e = statistics.median(times[True]), statistics.median(times[False])
    print(f"vit_{a.size} img {a.img} patch {a.patch} batch {a.batch} tokens {1 + m.patch_embed.num_patches} "
          f"on {a.device} ({torch.get_num_threads()} threads), median of {a.reps}")
    print(f"fused    {f*1000:8.1f} ms")
    print(f"explicit {e*1000:8.1f} ms")
    print(f"explicit / fused = {e/f:.2f}   max |difference| = {diff:.1e}")


if __name__ == '__main__': main()
