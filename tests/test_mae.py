"Learning actually happens: a tiny MAE overfits 64 SyntheticParts images on the CPU."
import pytest
import time, torch
from semmae_edu.synthetic import SyntheticParts
from semmae_edu.mae import mae_vit_micro_patch4

@pytest.mark.slow
def test_micro_mae_overfits_64_images():
    t0 = time.time()
    torch.manual_seed(0); g = torch.Generator().manual_seed(0)
    ds = SyntheticParts(n=64, size=32, seed=1)
    mean, std = torch.tensor(ds.mean).view(1, 3, 1, 1), torch.tensor(ds.std).view(1, 3, 1, 1)
    X = (torch.stack([ds[i]['image'] for i in range(64)]) - mean) / std
    model = mae_vit_micro_patch4()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.95), weight_decay=0.0)
    losses, max_steps = [], 600
    for step in range(max_steps):
        loss, _, _ = model(X, mask_ratio=0.75, generator=g)
        opt.zero_grad(); loss.backward(); opt.step(); losses.append(loss.item())
        if step >= 40 and sum(losses[-20:]) / 20 <= 0.5 * sum(losses[:20]) / 20: break
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    print(f"steps {len(losses)}, loss {first:.3f} -> {last:.3f}, {time.time() - t0:.1f}s")
    assert last <= 0.5 * first, (first, last, len(losses))
