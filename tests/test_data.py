"""Heavier tests for `semmae_edu.data`, `semmae_edu.synthetic` and `semmae_edu.datasets` (chapters nbs/00_data, 00a_synthetic,
00b_datasets): DataLoader workers, pickling,
fake real-data layouts written to temporary folders (never a download), statistics of SyntheticParts and of the testbed
variant SharedPaletteParts (exact part maps, classes by parts, colours that no longer tell the class), transforms, and bad input."""
import importlib.util, pickle, sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from tolerance import reduction

from semmae_edu.data import (IMAGENET_MEAN, IMAGENET_STD, MAETransform, crop_item, mae_transform, normalize,
                             patch_parts, patchify, patchify_map, pool_map, rrc_params, unpatchify, unpool_map)
from semmae_edu.synthetic import CLASS_NAMES, PART_NAMES, VARIANTS, SharedPaletteParts, SyntheticParts
from semmae_edu.datasets import DATASETS, ImageItems, get_dataset


# ---------------------------------------------------------------- patches

def official_patchify(imgs, p):
    "The official MAE rule restated: reshape, einsum('nchpwq->nhwpqc'), reshape."
    N, C, H, W = imgs.shape
    x = imgs.reshape(N, C, H // p, p, W // p, p)
    return torch.einsum('nchpwq->nhwpqc', x).reshape(N, (H // p) * (W // p), p * p * C)

def official_unpatchify(x, p, h, w, C=3):
    x = x.reshape(x.shape[0], h, w, p, p, C)
    return torch.einsum('nhwpqc->nchpwq', x).reshape(x.shape[0], C, h * p, w * p)

@pytest.mark.parametrize('shape,p', [((2, 3, 32, 32), 4), ((1, 3, 224, 224), 16), ((3, 3, 24, 40), 8),
                                     ((2, 1, 16, 8), 2), ((1, 5, 12, 12), 3), ((2, 3, 8, 8), 1), ((2, 3, 8, 8), 8)])
def test_patchify_matches_official_rule(shape, p):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=g)
    ours = patchify(x, p)
    assert torch.equal(ours, official_patchify(x, p))
    N, C, H, W = shape
    assert torch.equal(unpatchify(ours, p, C, grid=(H // p, W // p)), x)
    assert torch.equal(official_unpatchify(ours, p, H // p, W // p, C), x)

def test_patchify_dtypes_and_maps():
    m = torch.randint(0, 7, (2, 12, 16))
    assert torch.equal(patchify_map(m, 4), patchify(m[:, None], 4))
    assert patchify_map(m, 4).dtype == torch.int64
    assert torch.equal(pool_map(torch.ones(1, 8, 8, dtype=torch.bool), 4), torch.ones(1, 4))
    x = torch.rand(3, 12)
    # pooling averages the 2x2 copies of each value: a 4-term sum (then an exact /4)
    assert ((pool_map(unpool_map(x, 2, grid=(3, 4)), 2) - x).abs() <= reduction(4, x.abs())).all()

def test_patch_parts_against_counting():
    g = torch.Generator().manual_seed(1)
    parts = torch.randint(0, 5, (4, 12, 12), generator=g)
    got = patch_parts(parts, 3, 5)
    for n in range(4):
        for k, (i, j) in enumerate((i, j) for i in range(0, 12, 3) for j in range(0, 12, 3)):
            counts = torch.bincount(parts[n, i:i + 3, j:j + 3].flatten(), minlength=5)
            assert got[n, k] == int(torch.nonzero(counts == counts.max())[0])      # ties: smallest label

@pytest.mark.parametrize('call,exc,words', [
    (lambda: patchify(torch.zeros(3, 8, 8), 4), ValueError, ['imgs', '4-D']),
    (lambda: patchify(np.zeros((1, 3, 8, 8)), 4), TypeError, ['imgs', 'torch.Tensor']),
    (lambda: patchify(torch.zeros(1, 3, 8, 10), 4), ValueError, ['patch_size', 'divisible']),
    (lambda: patchify(torch.zeros(1, 3, 8, 8), 0), ValueError, ['patch_size', '>= 1']),
    (lambda: patchify(torch.zeros(1, 3, 8, 8), 2.0), TypeError, ['patch_size', 'must be an int']),
    (lambda: unpatchify(torch.zeros(1, 4, 48), 4, channels=1), ValueError, ['channels', 'p*p*channels']),
    (lambda: unpatchify(torch.zeros(1, 4, 48), 4, grid=(3, 3)), ValueError, ['grid']),
    (lambda: unpatchify(torch.zeros(1, 6, 48), 4), ValueError, ['grid', 'square']),
    (lambda: unpatchify(torch.zeros(4, 48), 4), ValueError, ['x', '3-D']),
    (lambda: patchify_map(torch.zeros(1, 1, 8, 8), 4), ValueError, ['maps', '3-D']),
    (lambda: patch_parts(torch.full((1, 4, 4), 3), 2, 3), ValueError, ['n_labels']),
    (lambda: patch_parts(torch.full((1, 4, 4), -1), 2, 3), ValueError, ['n_labels']),
    (lambda: patch_parts(torch.zeros(1, 4, 4), 2, 3), TypeError, ['parts', 'integer']),
])
def test_patch_bad_input(call, exc, words):
    with pytest.raises(exc) as e: call()
    for w in words: assert w in str(e.value)


# ---------------------------------------------------------------- SyntheticParts

def test_synthetic_determinism_and_form():
    a, b = SyntheticParts(n=50, seed=3), SyntheticParts(n=50, seed=3)
    for i in (0, 7, 49):
        x, y = a[i], b[i]
        for k in ('image', 'parts', 'fg'): assert torch.equal(x[k], y[k])
        assert x['label'] == y['label'] == i % 10 and x['index'] == i
    assert not torch.equal(a[0]['image'], a[10]['image'])                   # same class, other index
    assert not torch.equal(a[0]['image'], SyntheticParts(n=50, seed=4)[0]['image'])
    x = a[5]
    assert x['image'].shape == (3, 32, 32) and x['image'].dtype == torch.float32
    assert 0 <= x['image'].min() and x['image'].max() <= 1
    assert x['parts'].dtype == torch.int64 and x['fg'].dtype == torch.bool
    assert torch.equal(x['fg'], x['parts'] > 0)
    assert a.n_parts == len(a.part_names) == 11 and a.part_names[0] == 'background'
    assert len(a.classes) == 10 and a.classes == CLASS_NAMES and a.part_names == PART_NAMES

def test_synthetic_every_class_and_parts_in_fg():
    ds = SyntheticParts(n=300, size=64)
    labels = set()
    for i in range(0, 300, 3):
        x = ds[i]
        labels.add(x['label'])
        assert x['image'].shape == (3, 64, 64)
        assert not (x['parts'] > 0)[~x['fg']].any()                           # parts ⊂ fg
        names = {ds.part_names[k] for k in x['parts'].unique().tolist()} - {'background'}
        assert names <= set(ds.class_parts[ds.classes[x['label']]])
    assert labels == set(range(10))

@pytest.mark.parametrize('variant', list(VARIANTS))
def test_synthetic_mean_std_as_documented(variant):
    for size in (32, 64):
        ds = VARIANTS[variant](n=2000, size=size)
        x = torch.stack([ds[i]['image'] for i in range(1000)])      # every class equally often
        # sampling, not rounding: the documented values come from 2,000 images, these are 1,000 of them. Per image the
        # channel mean spreads by s (measured here), so the estimates differ by ~s/sqrt(1000); allow 4 standard errors
        # (and the same for the std, whose per-image spread is of the same order).
        se = x.mean((2, 3)).std(0) / 1000 ** 0.5
        assert ((x.mean((0, 2, 3)) - torch.tensor(ds.mean)).abs() <= 4 * se).all(), (x.mean((0, 2, 3)), ds.mean, se)
        se_std = x.std((2, 3)).std(0) / 1000 ** 0.5
        assert ((x.std((0, 2, 3)) - torch.tensor(ds.std)).abs() <= 4 * (se + se_std)).all(), (x.std((0, 2, 3)), ds.std)

def test_synthetic_parts_cover_patches():
    "At p=4 on 32x32 every animal spans several patches and most part types win >= 1 patch when present."
    ds = SyntheticParts(n=500)
    P = torch.stack([ds[i]['parts'] for i in range(500)])
    pp = patch_parts(P, 4, ds.n_parts)
    assert (pp > 0).sum(1).min() >= 6                                        # measured: min 8, mean ~16 of 64
    cover = []
    for k in range(1, ds.n_parts):
        has = (P == k).flatten(1).any(1)
        cover.append(((pp == k).any(1) & has).sum().item() / max(has.sum().item(), 1))
    assert sum(c >= 0.6 for c in cover) >= 9, dict(zip(ds.part_names[1:], cover))
    assert min(cover) >= 0.5, dict(zip(ds.part_names[1:], cover))

# ---- the testbed variant: SharedPaletteParts ----

def test_shared_determinism_and_form():
    a, b = SharedPaletteParts(n=40, seed=3), SharedPaletteParts(n=40, seed=3)
    for i in (0, 7, 39):
        x, y = a[i], b[i]
        for k in ('image', 'parts', 'fg'): assert torch.equal(x[k], y[k])                   # same (seed, index): same bytes
        assert x['label'] == i % 10 and x['index'] == i
        assert not torch.equal(x['image'], SharedPaletteParts(n=40, seed=4)[i]['image'])   # another seed: another image
    assert not torch.equal(a[0]['image'], a[10]['image'])                                  # same class, other index
    x = SharedPaletteParts(n=2, size=64)[1]
    assert (x['image'].shape, x['image'].dtype, x['parts'].shape, x['parts'].dtype, x['fg'].dtype) == \
           ((3, 64, 64), torch.float32, (64, 64), torch.int64, torch.bool)
    assert 0 <= x['image'].min() and x['image'].max() <= 1 and torch.equal(x['fg'], x['parts'] > 0)
    assert pickle.loads(pickle.dumps(a))[5]['image'].equal(a[5]['image'])

@pytest.mark.parametrize('seed, size, clutter', [(0, 32, 5), (2, 48, 0), (1, 64, 12)])
def test_shared_paints_the_same_parts(seed, size, clutter):
    "The variant changes colours only: for every (seed, index) its part map is SyntheticParts', pixel for pixel."
    a, b = SharedPaletteParts(n=60, size=size, seed=seed, clutter=clutter), SyntheticParts(n=60, size=size, seed=seed, clutter=clutter)
    for i in range(60):
        x, y = a[i], b[i]
        assert torch.equal(x['parts'], y['parts']) and not torch.equal(x['image'], y['image']), i

def _layer_code(types, u, rng):
    "Colour pairs that name the layer: layer k wears bit j of k in channel j, flat (colour0 = colour1, no jitter)."
    bits = ((np.arange(len(types))[:, None] >> np.arange(3)) & 1).astype(np.float32)
    return np.concatenate([bits, bits], 1)

class LayerCoded(SyntheticParts):
    _colours = staticmethod(_layer_code)   # a variant is one subclass: here, one that paints each layer's number

@pytest.mark.parametrize('size, clutter', [(32, 0), (32, 1), (64, 1)])
def test_part_map_is_the_part_painted_there(size, clutter):
    """Exact part maps: every pixel's colour comes from the layer whose part id the map holds. Painted in flat colours
    that spell the layer's number in bits (at most 8 layers: background, <= 1 blob, <= 6 parts), a bit-1 channel is
    >= 0.8 (brightness >= 0.8) minus the grain (<= 0.07 * sqrt(3) < 0.13), a bit-0 channel <= 0.13: 0.5 decodes them."""
    ds = LayerCoded(n=100, size=size, clutter=clutter)
    for i in range(100):
        x = ds[i]
        layer = ((x['image'] > 0.5).long() * torch.tensor([1, 2, 4])[:, None, None]).sum(0)   # [H, W] layer number
        ids = torch.from_numpy(ds._canvas[2][x['label']][2])                                 # layer -> part id
        assert torch.equal(ids[layer], x['parts']), i
    assert torch.equal(SyntheticParts(n=100, size=size, clutter=clutter)[7]['parts'], ds[7]['parts'])   # the same geometry

def test_classes_are_their_parts():
    "Each class shows exactly the part types of its row in the table (all of them over 40 images, no others), in both variants."
    ds = SharedPaletteParts(n=400)
    assert ds.class_parts == SyntheticParts.class_parts and len(set(ds.class_parts.values())) == 10   # ten distinct part sets
    seen = {c: set() for c in ds.classes}
    for i in range(400):
        x = ds[i]
        names = {ds.part_names[k] for k in x['parts'].unique().tolist()} - {'background'}
        assert names <= set(ds.class_parts[ds.classes[x['label']]]), (i, names)
        seen[ds.classes[x['label']]] |= names
    assert seen == {c: set(p) for c, p in ds.class_parts.items()}

def test_shared_colours_do_not_tell_the_class():
    """The object's mean colour per image, compared across classes by one-way ANOVA (F test, 100 images a class):
    equal class means cannot be rejected for SharedPaletteParts (p > 1e-3 in each channel; measured 0.76-0.96),
    while SyntheticParts' paint gives its classes away (p < 1e-20; measured < 1e-187)."""
    def pvalues(cls):
        ds = cls(n=1000)
        items = [ds[i] for i in range(1000)]
        fg = torch.stack([x['fg'] for x in items])[:, None].double()
        m = (torch.stack([x['image'] for x in items]).double() * fg).sum((2, 3)) / fg.sum((2, 3))   # [n, 3]
        y = torch.tensor([x['label'] for x in items])
        return [stats.f_oneway(*[m[y == k, c].numpy() for k in range(10)]).pvalue for c in range(3)]
    assert min(pvalues(SharedPaletteParts)) > 1e-3
    assert max(pvalues(SyntheticParts)) < 1e-20

def test_screens_ran_on_the_library_data(monkeypatch):
    "bench/testbed/synth.py's prototype renderer (the screens' candidates) gives the library's images bit for bit: 'original' is SyntheticParts, 'shared' SharedPaletteParts."
    path = Path(__file__).resolve().parents[1] / 'bench' / 'testbed' / 'synth.py'
    spec = importlib.util.spec_from_file_location('testbed_synth', path)
    synth = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, synth)             # its dataclass looks its module up while it loads
    spec.loader.exec_module(synth)
    for name, cls in (('original', SyntheticParts), ('shared', SharedPaletteParts)):
        cand = synth.CANDIDATES[name]
        cv, ds = synth.canvas(cand), cls(n=30, size=cand.size, seed=2)
        for i in range(30):
            img, parts = synth.render(cand, cv, 2, i, i % 10)
            assert np.array_equal(img, ds[i]['image'].numpy()) and np.array_equal(parts, ds[i]['parts'].numpy()), (name, i)

def _lookup(train, test, key, n_labels, bins=8):
    def codes(items):
        q = torch.stack([t['image'] for t in items]).mul(bins - 1e-4).long()
        return (q[:, 0] * bins * bins + q[:, 1] * bins + q[:, 2]).flatten()
    def labels(items):
        return torch.stack([torch.as_tensor(t[key]).expand(t['image'].shape[1:]) for t in items]).long().flatten()
    table = torch.zeros(bins ** 3, n_labels).index_put_((codes(train), labels(train)), torch.tensor(1.), accumulate=True)
    return table.argmax(1)[codes(test)], labels(test)

def _balanced(pred, true):
    return torch.stack([(pred[true == k] == k).float().mean() for k in true.unique()]).mean().item()

def test_single_pixel_colour_is_not_enough():
    """A per-pixel colour -> label lookup (512 colours, fit on 300 images, scored on 200 others).
    Measured (seed 0): class accuracy 0.125 (chance 0.10); the part of an object pixel: balanced
    accuracy 0.138 (chance 1/10); object vs background: balanced accuracy 0.684 (chance 0.50)."""
    ds = SyntheticParts(n=500)
    tr, te = [ds[i] for i in range(300)], [ds[i] for i in range(300, 500)]
    pred, true = _lookup(tr, te, 'label', 10)
    acc_cls = (pred == true).float().mean().item()
    obj = torch.stack([t['fg'] for t in te]).flatten()
    pred, true = _lookup(tr, te, 'parts', ds.n_parts)
    acc_part = _balanced(pred[obj], true[obj])
    pred, true = _lookup(tr, te, 'fg', 2)
    acc_fg = _balanced(pred, true)
    assert 0.08 < acc_cls < 0.2, acc_cls
    assert acc_part < 0.35, acc_part
    assert acc_fg < 0.8, acc_fg
    print(f"class {acc_cls:.3f}, part {acc_part:.3f}, fg {acc_fg:.3f}")
    # the class *is* in the image as a whole: the set of part types differs between most classes
    assert len({frozenset(ds.class_parts[c]) for c in ds.classes}) >= 8

def test_synthetic_pickle_and_dataloader_workers():
    ds = SyntheticParts(n=64, transform=mae_transform(16, train=False))
    ds2 = pickle.loads(pickle.dumps(ds))
    assert torch.equal(ds2[9]['image'], ds[9]['image'])
    plain = SyntheticParts(n=64)
    b0 = next(iter(torch.utils.data.DataLoader(plain, batch_size=16, num_workers=0)))
    b2 = next(iter(torch.utils.data.DataLoader(plain, batch_size=16, num_workers=2)))
    for k in ('image', 'label', 'parts', 'fg', 'index'): assert torch.equal(b0[k], b2[k]), k
    assert b0['image'].shape == (16, 3, 32, 32) and b0['parts'].shape == (16, 32, 32)

def test_random_transform_with_workers_is_seeded_by_the_loader():
    "Global-RNG transforms: the DataLoader's generator fixes every worker's seed, so runs repeat."
    ds = SyntheticParts(n=32, transform=mae_transform(16))
    def batch(workers):
        dl = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=workers,
                                         generator=torch.Generator().manual_seed(5))
        return next(iter(dl))
    a, b = batch(2), batch(2)
    assert torch.equal(a['image'], b['image']) and torch.equal(a['parts'], b['parts'])

@pytest.mark.parametrize('kw,exc,words', [
    (dict(n=0), ValueError, ['`n`']), (dict(n=-5), ValueError, ['`n`']), (dict(n=2.5), TypeError, ['`n`']),
    (dict(size=0), ValueError, ['`size`']), (dict(size=36), ValueError, ['`size`', 'multiple of 8']),
    (dict(size=8), ValueError, ['`size`']), (dict(seed=-1), ValueError, ['`seed`']),
    (dict(transform=3), TypeError, ['`transform`']), (dict(clutter=-1), ValueError, ['`clutter`']),
])
def test_synthetic_bad_input(kw, exc, words):
    with pytest.raises(exc) as e: SyntheticParts(**kw)
    for w in words: assert w in str(e.value)

def test_synthetic_index_errors():
    ds = SyntheticParts(n=5)
    with pytest.raises(IndexError): ds[5]
    with pytest.raises(IndexError): ds[-6]
    assert ds[-1]['index'] == 4


# ---------------------------------------------------------------- real data sets (fakes only)

def write_cifar(root, name, n=6):
    if name == 'cifar10':
        base = root / 'cifar-10-batches-py'; files = [f'data_batch_{k}' for k in range(1, 6)] + ['test_batch']
        key, meta, names = b'labels', 'batches.meta', b'label_names'; n_cls = 10
    else:
        base = root / 'cifar-100-python'; files = ['train', 'test']
        key, meta, names = b'fine_labels', 'meta', b'fine_label_names'; n_cls = 100
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k, f in enumerate(files):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8); data[:, 1] = k
        with open(base / f, 'wb') as fh:
            pickle.dump({b'data': data, key: [(3 * i) % n_cls for i in range(n)]}, fh)
    with open(base / meta, 'wb') as fh:
        pickle.dump({names: [f'class{i}'.encode() for i in range(n_cls)]}, fh)
    return base, files

@pytest.mark.parametrize('name', ['cifar10', 'cifar100'])
def test_cifar_fake_layout(tmp_path, name):
    base, files = write_cifar(tmp_path, name)
    tr, te = get_dataset(name, tmp_path), get_dataset(name, tmp_path, train=False)
    n_train = 6 * (len(files) - 1)
    assert (len(tr), len(te)) == (n_train, 6)
    assert len(tr.classes) == (10 if name == 'cifar10' else 100) and tr.classes[2] == 'class2'
    x = te[4]
    assert x['image'].shape == (3, 32, 32) and x['label'] == 12 % len(tr.classes) and x['index'] == 4
    with open(base / files[-1], 'rb') as fh: raw = pickle.load(fh, encoding='bytes')[b'data'][4]
    assert torch.equal(x['image'], torch.from_numpy(raw.reshape(3, 32, 32).astype(np.float32) / 255))
    assert tr[n_train - 1]['image'][0, 0, 1] * 255 == len(files) - 2       # the last training batch
    assert (tr.mean, tr.std) == (IMAGENET_MEAN, IMAGENET_STD)
    small = get_dataset(name, tmp_path, size=16, transform=mae_transform(8, train=False))
    assert small[0]['image'].shape == (3, 8, 8)
    assert pickle.loads(pickle.dumps(tr))[3]['label'] == tr[3]['label']
    b = next(iter(torch.utils.data.DataLoader(tr, batch_size=4, num_workers=2)))
    assert b['image'].shape == (4, 3, 32, 32)

def write_tiny_imagenet(root, wnids=('n02', 'n01', 'n03'), per_class=3):
    for c, w in enumerate(sorted(wnids)):
        d = root / 'train' / w / 'images'; d.mkdir(parents=True)
        (root / 'train' / w / f'{w}_boxes.txt').write_text(f'{w}_0.JPEG\t0\t0\t10\t10\n')
        for k in range(per_class):
            Image.new('RGB', (64, 64), (40 * c + 10 * k, 128, 0)).save(d / f'{w}_{k}.JPEG', quality=100)
    (root / 'val' / 'images').mkdir(parents=True)
    lines = []
    for j, w in enumerate(['n03', 'n01', 'n02', 'n03']):
        Image.new('RGB', (64, 64), (0, 0, 50 * j)).save(root / 'val' / 'images' / f'val_{j}.JPEG', quality=100)
        lines.append(f'val_{j}.JPEG\t{w}\t1\t2\t30\t40')
    (root / 'val' / 'val_annotations.txt').write_text('\n'.join(lines) + '\n')
    (root / 'wnids.txt').write_text('\n'.join(wnids) + '\n')

def test_tiny_imagenet_fake_layout(tmp_path):
    write_tiny_imagenet(tmp_path)
    tr, va = get_dataset('tiny-imagenet', tmp_path), get_dataset('tiny-imagenet', tmp_path, train=False)
    assert tr.classes == ('n01', 'n02', 'n03') and va.classes == tr.classes
    assert len(tr) == 9 and len(va) == 4
    assert [va[j]['label'] for j in range(4)] == [2, 0, 1, 2]
    assert [tr[j]['label'] for j in range(9)] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    x = va[2]
    assert x['image'].shape == (3, 64, 64) and abs(x['image'][2, 30, 30].item() * 255 - 100) < 3
    assert get_dataset('tiny-imagenet', tmp_path, train=False, size=32)[0]['image'].shape == (3, 32, 32)
    (tmp_path / 'val' / 'val_annotations.txt').write_text('val_0.JPEG\tn09\t0\t0\t1\t1\n')
    with pytest.raises(ValueError, match='n09'): get_dataset('tiny-imagenet', tmp_path, train=False)

def test_image_folder_fake(tmp_path):
    for c in ('cat', 'dog'):
        (tmp_path / c).mkdir()
        for k in range(2):
            Image.new('RGB', (20 + 10 * k, 30), (255 * (c == 'dog'), 0, 0)).save(tmp_path / c / f'{k}.png')
    ds = get_dataset('folder', tmp_path, size=24)
    assert ds.classes == ('cat', 'dog') and len(ds) == 4
    assert all(ds[i]['image'].shape == (3, 24, 24) for i in range(4))
    assert [ds[i]['label'] for i in range(4)] == [0, 0, 1, 1]
    assert ds[3]['image'][0].mean() > 0.99 and ds[0]['image'][0].mean() < 0.01
    raw = get_dataset('folder', tmp_path)
    assert raw[1]['image'].shape == (3, 30, 30) and raw[0]['image'].shape == (3, 30, 20)

@pytest.mark.parametrize('name,words', [
    ('cifar10', ['download=True', 'cifar-10-batches-py']), ('cifar100', ['download=True', 'cifar-100-python']),
    ('stl10', ['download=True', 'stl10_binary']), ('tiny-imagenet', ['val_annotations.txt', 'cannot download']),
    ('folder', ['root/<class name>/<image file>']),
])
def test_missing_data_sets_say_how_to_get_them(tmp_path, name, words):
    with pytest.raises(FileNotFoundError) as e: get_dataset(name, tmp_path / 'absent')
    for w in words: assert w in str(e.value), str(e.value)
    assert not (tmp_path / 'absent').exists() or name == 'stl10'              # nothing downloaded

def test_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match='root/<class name>'): get_dataset('folder', tmp_path)

@pytest.mark.parametrize('kw,exc,words', [
    (dict(name='imagenet', root='.'), ValueError, ['name', 'synthetic', 'cifar10', 'tiny-imagenet', 'folder']),
    (dict(name='cifar10'), ValueError, ['root']),
    (dict(name='cifar10', root='.', n=5), ValueError, ['`n`', 'synthetic']),
    (dict(name='cifar10', root='.', split='train'), ValueError, ['split', 'stl10']),
    (dict(name='stl10', root='.', split='val'), ValueError, ['split', 'train+unlabeled']),
    (dict(name='synthetic', size=20), ValueError, ['size', 'multiple of 8']),
    (dict(name='synthetic', n=0), ValueError, ['`n`']),
    (dict(name='cifar10', root='.', size=0), ValueError, ['size']),
    (dict(name='cifar10', root='.', transform='x'), TypeError, ['transform']),
])
def test_get_dataset_bad_input(kw, exc, words):
    with pytest.raises(exc) as e: get_dataset(**kw)
    for w in words: assert w in str(e.value), str(e.value)

def test_synthetic_through_get_dataset():
    tr, te = get_dataset('synthetic'), get_dataset('synthetic', train=False, size=64)
    assert (len(tr), len(te), te.size, tr.seed, te.seed) == (10000, 2000, 64, 0, 1)
    assert set(DATASETS) == {'synthetic', 'synthetic-shared', 'cifar10', 'cifar100', 'stl10', 'tiny-imagenet', 'folder'}
    sh = get_dataset('synthetic-shared', train=False, n=20)
    assert type(sh) is SharedPaletteParts and (len(sh), sh.seed) == (20, 1)
    assert torch.equal(sh[3]['parts'], SyntheticParts(n=20, seed=1)[3]['parts'])


# ---------------------------------------------------------------- transforms

def _landing(r, c, box, S, flip):
    top, left, h, w = box
    rows = [i for i in range(S) if top + int((i + 0.5) * h / S) == r]
    cols = [j for j in range(S) if left + int((j + 0.5) * w / S) == c]
    return rows, ([S - 1 - j for j in cols] if flip else cols)

def test_hot_patch_follows_random_crops():
    "A one-hot *patch* (4x4 pixels) as a weight map lands where the drawn box says, for many boxes."
    H = W = 32
    gen = torch.Generator().manual_seed(0)
    tfm = MAETransform(32, generator=gen, mean=None, std=None)
    for trial in range(40):
        k = trial % 64
        w = torch.zeros(1, 64); w[0, k] = 1
        item = dict(image=torch.rand(3, H, W), weights=unpool_map(w, 4)[0])
        state = gen.get_state()
        out = tfm(item)
        gen.set_state(state)
        box, flip = tfm.params(H, W)
        want = torch.zeros(32, 32)
        for r in range(4 * (k // 8), 4 * (k // 8) + 4):
            for c in range(4 * (k % 8), 4 * (k % 8) + 4):
                rows, cols = _landing(r, c, box, 32, flip)
                for i in rows:
                    for j in cols: want[i, j] = 1
        assert torch.equal(out['weights'], want), (trial, box, flip)

def test_transform_keeps_image_and_maps_aligned():
    "Pixel coordinates written into the image and into maps agree after the transform (within 0.5 px)."
    H, W = 32, 48
    yy, xx = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing='ij')
    item = dict(image=torch.stack([yy / H, xx / W, torch.zeros(H, W)]), row=yy, col=xx,
                rowcol=torch.stack([yy, xx]))
    torch.manual_seed(0)
    tfm = mae_transform(24, mean=None, std=None)
    for _ in range(30):
        out = tfm(item)
        inner = slice(3, -3)
        flipped = out['col'][0, 0] > out['col'][0, -1]
        img_col = out['image'][1] * W
        # half a source pixel (the maps' nearest rule), plus rounding: the antialiased bicubic kernel reproduces a
        # linear ramp exactly in exact arithmetic; in float32 its normalised weights (<= 4·2 taps per axis at this <= 2x
        # shrink, two passes) and the ramp's own rounding add <= (2·8 + 1) eps of a value <= 1, times H or W pixels
        ramp = lambda n: 0.5 + reduction(2 * 8 + 1, n)
        assert (out['image'][0] * H - out['row'])[inner, inner].abs().max() <= ramp(H)
        assert (img_col - out['col'])[inner, inner].abs().max() <= ramp(W)
        assert torch.equal(out['rowcol'], torch.stack([out['row'], out['col']]))   # [K, H, W] maps too
        assert flipped == (out['col'][0, 0] > out['col'][0, -1])

def test_float_mask_values_are_never_blended():
    w = torch.rand(32, 32)
    item = dict(image=torch.rand(3, 32, 32), weights=w)
    torch.manual_seed(1)
    for _ in range(10):
        out = mae_transform(56)(item)
        assert set(out['weights'].flatten().tolist()) <= set(w.flatten().tolist())

def test_eval_transform_is_resize_center_crop():
    from torchvision.transforms import v2
    from torchvision.transforms import InterpolationMode
    img = torch.rand(3, 40, 64)
    ref = v2.Compose([v2.Resize(20, interpolation=InterpolationMode.BICUBIC, antialias=True), v2.CenterCrop(20)])(img)
    ours = mae_transform(20, train=False, mean=None, std=None)(dict(image=img))['image']
    assert ours.shape == ref.shape == (3, 20, 20)
    assert (ours - ref.clamp(0, 1)).abs().mean() < 0.02          # same region; resampling differs slightly

def test_normalisation():
    item = dict(image=torch.full((3, 8, 8), 0.5))
    out = mae_transform(8, train=False)(item)
    want = (0.5 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    # the same two float32 operations, after a resize of a constant image (normalised weights: <= 8 taps' rounding of
    # 0.5), which the division by std (>= 0.224) enlarges
    assert ((out['image'][:, 0, 0] - want).abs() <= reduction(8 + 2, 0.5 / min(IMAGENET_STD))).all()
    assert torch.equal(normalize(torch.ones(2, 3, 4, 4), (1, 1, 1), (2, 2, 2)), torch.zeros(2, 3, 4, 4))   # exact: (1-1)/2

def test_rrc_params_statistics():
    "Areas of the drawn boxes spread over scale=(0.2, 1) like torchvision's, and the seed repeats them."
    from torchvision.transforms import v2
    g = torch.Generator().manual_seed(0)
    ours = torch.tensor([float(h * w) for _, _, h, w in (rrc_params(64, 64, generator=g) for _ in range(2000))]) / 4096
    torch.manual_seed(0)
    theirs = torch.tensor([float(p[2] * p[3]) for p in (v2.RandomResizedCrop.get_params(torch.zeros(3, 64, 64),
                                                        [0.2, 1.0], [3 / 4, 4 / 3]) for _ in range(2000))]) / 4096
    assert abs(ours.mean() - theirs.mean()) < 0.03 and abs(ours.std() - theirs.std()) < 0.03
    assert ours.min() >= 0.18 and ours.max() <= 1.0

@pytest.mark.parametrize('call,exc,words', [
    (lambda: mae_transform(0), ValueError, ['size']),
    (lambda: mae_transform((8, 0)), ValueError, ['size']),
    (lambda: mae_transform(8, scale=(0.5, 0.2)), ValueError, ['scale']),
    (lambda: MAETransform(8, flip_p=2), ValueError, ['flip_p']),
    (lambda: MAETransform(8, crop_pct=0), ValueError, ['crop_pct']),
    (lambda: mae_transform(8, mean=None), ValueError, ['mean', 'std']),
    (lambda: mae_transform(8)(dict(image=torch.zeros(1, 8, 8))), ValueError, ['channels']),
    (lambda: mae_transform(8)(dict(image=torch.zeros(8, 8))), ValueError, ['image', '3-D']),
    (lambda: mae_transform(8)(dict(label=1)), TypeError, ['image']),
    (lambda: mae_transform(8)(dict(image=torch.zeros(3, 8, 8), parts=torch.zeros(4, 4))), ValueError, ['parts', 'unpool_map']),
    (lambda: crop_item(dict(image=torch.zeros(3, 8, 8)), (0, 0, 8, 8), -1), ValueError, ['size']),
])
def test_transform_bad_input(call, exc, words):
    with pytest.raises(exc) as e: call()
    for w in words: assert w in str(e.value), str(e.value)

# ---- rendered once, augmented per batch (the training loop's fast path) ----
from semmae_edu.data import TensorItems, rrc_boxes, crop_batch
from semmae_edu.synthetic import rendered

@pytest.mark.parametrize('seed, n, size', [(0, 50, 32), (3, 20, 48)])
def test_cache_returns_exactly_what_rendering_returns(seed, n, size):
    ds = SyntheticParts(n=n, size=size, seed=seed)
    t = rendered(seed, n, size)
    for i in range(n):
        it = ds[i]
        for k in ('image', 'parts', 'fg'): assert torch.equal(t[k][i], it[k]) and t[k][i].dtype == it[k].dtype, (i, k)
        assert (int(t['label'][i]), int(t['index'][i])) == (it['label'], it['index'])
    assert rendered(seed, n, size)['image'] is t['image']                 # kept, not rendered again
    assert all(torch.equal(a, b) for a, b in zip(TensorItems(t)[7].values(), {k: t[k][7] for k in t}.values()) if torch.is_tensor(a))

def test_hot_patch_follows_batch_crops():
    "The batch path: a one-hot patch as a weight map lands where each image's own box and flip say, for 64 images at once."
    k = torch.arange(64)
    w = torch.zeros(64, 64); w[k, k] = 1
    batch = dict(image=torch.rand(64, 3, 32, 32), weights=unpool_map(w, 4))
    boxes, flips = rrc_boxes(64, 32, 32, generator=torch.Generator().manual_seed(0))
    out = crop_batch(batch, boxes, flips, 32)
    for j in range(64):
        want = torch.zeros(32, 32)
        for r in range(4 * (j // 8), 4 * (j // 8) + 4):
            for c in range(4 * (j % 8), 4 * (j % 8) + 4):
                rows, cols = _landing(r, c, tuple(boxes[j].tolist()), 32, bool(flips[j]))
                for i in rows:
                    for jj in cols: want[i, jj] = 1
        assert torch.equal(out['weights'][j], want), (j, boxes[j], flips[j])

def test_batch_crop_equals_item_crop_for_maps():
    t = rendered(0, 64, 32)
    boxes, flips = rrc_boxes(64, 32, 32, generator=torch.Generator().manual_seed(5))
    out = crop_batch(dict(image=t['image'], parts=t['parts'], fg=t['fg']), boxes, flips, 24)
    for j in range(64):
        ref = crop_item(dict(image=t['image'][j], parts=t['parts'][j], fg=t['fg'][j]), boxes[j].tolist(), 24, bool(flips[j]))
        assert torch.equal(out['parts'][j], ref['parts']) and torch.equal(out['fg'][j], ref['fg'])

def test_batch_image_follows_its_maps():
    "Pixel coordinates written into the images agree with coordinate maps after the batch crop (within 0.5 px + float32 rounding)."
    H, W = 32, 48
    yy, xx = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing='ij')
    b = dict(image=torch.stack([yy / H, xx / W, torch.zeros(H, W)])[None].repeat(40, 1, 1, 1), row=yy.repeat(40, 1, 1), col=xx.repeat(40, 1, 1))
    boxes, flips = rrc_boxes(40, H, W, generator=torch.Generator().manual_seed(1))
    o = crop_batch(b, boxes, flips, 24)
    inner = slice(3, -3)   # bicubic reads 2 pixels beyond its sample point; the border is padded
    assert (o['image'][:, 0] * H - o['row'])[:, inner, inner].abs().max() <= 0.5 + 1e-3
    assert (o['image'][:, 1] * W - o['col'])[:, inner, inner].abs().max() <= 0.5 + 1e-3
