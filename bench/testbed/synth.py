"""Candidate harder SyntheticParts generators (issue 18, Build 1): the class is carried by which parts an animal has
and how they are arranged, not by paint. The screens' prototype renderer (it reads only the library's part and class
tables); deterministic in (seed, index); the part map is exact (the front-most layer's part id at every pixel, as in
`semmae_edu.synthetic._render`). Two candidates are now library generators, equal to `render` bit for bit
(tests/test_data.py::test_screens_ran_on_the_library_data): 'original' is `SyntheticParts` ('synthetic'), 'shared' is
`SharedPaletteParts` ('synthetic-shared'); `render_set` takes those from the library (`synthetic.rendered`).

What a `Spec` changes against today's `SyntheticParts` (colour='type', texture='type', shift 0.2, scale 0.7-0.95,
rotation +-40 deg, 5 clutter blobs):
- colour:  'type'    each part type wears its own colour pair (today: the shortcut)
           'shared'  every layer (part, clutter, background) draws a colour pair from one palette shared by all
                     part types and classes (the 10 pairs of today's part types), order swapped at random
           'uniform' every layer's two colours uniform in [0, 1]^3
- texture: 'type'    each part type keeps its texture (stripes across a fin, rings along a tail, ...), random phase
           'shared'  every layer draws its texture (wave numbers and grain) from a random part type
- shift, scale, rot: the animal's pose (centre offset +-shift, scale range, rotation +-rot degrees, mirror 50 %)
- clutter: distractor layers under the animal (random part shape, looks from the same palette)
- deform:  multiplies today's per-part jitter (centre 0.08, size 0.3, angle 0.15 rad spans)
"""
from __future__ import annotations
import math
from dataclasses import dataclass, asdict, field, replace
import numpy as np
import torch
from semmae_edu.synthetic import _STYLE, _CLASSES, PART_NAMES, CLASS_NAMES, _pixel_grid, _NOISE_LEN, PALETTE, rendered

_TABLES = [np.concatenate([np.array(v, np.float32)[:, :5], np.deg2rad(np.array(v, np.float32)[:, 5:])], 1) for v in _CLASSES.values()]
_IDS8 = np.arange(256, dtype=np.uint8)


@dataclass(frozen=True)
class Spec:
    name:str = 'original'
    size:int = 32
    colour:str = 'type'          # 'type' | 'shared' | 'uniform'
    texture:str = 'type'         # 'type' | 'shared'
    shift:float = 0.2            # animal centre offset, +- (image half-widths)
    scale:tuple = (0.7, 0.95)    # animal scale range
    rot:float = 40.0             # rotation, +- degrees
    clutter:int = 5              # distractor layers
    clutter_scale:float = 1.0    # multiplies their size (today: half-axes 0.12-0.42 by 0.05-0.35)
    deform:float = 1.0           # per-part jitter multiplier
    bg_texture:bool = True       # the background's stripes
    clutter_plain:bool = False   # clutter as plain discs (no part shape, no texture) instead of part look-alikes


def _layer_tables(spec:Spec):
    D, d, tables = spec.clutter, spec.deform, []
    c = spec.clutter_scale
    for t in _TABLES:
        L = 1 + D + len(t)
        base, span = np.zeros((L, 5), np.float32), np.zeros((L, 5), np.float32)
        base[0], span[0] = (0, 0, 1, 1, 0), (0, 0, 0, 0, np.pi)
        base[1:1 + D], span[1:1 + D] = (-1.1, -1.1, 0.12 * c, 0.05 * c, 0), (2.2, 2.2, 0.3 * c, 0.3 * c, np.pi)
        base[1 + D:] = np.stack([t[:, 1] - 0.04 * d, t[:, 2] - 0.04 * d, (1 - 0.15 * d) * t[:, 3], (1 - 0.15 * d) * t[:, 4],
                                 t[:, 5] - 0.075 * d], 1)
        span[1 + D:] = np.stack([np.full(len(t), 0.08 * d), np.full(len(t), 0.08 * d), 0.3 * d * t[:, 3], 0.3 * d * t[:, 4],
                                 np.full(len(t), 0.15 * d)], 1)
        ids = np.zeros(L, np.int64); ids[1 + D:] = t[:, 0]
        tables.append((base, span, ids))
    return tables


def canvas(spec:Spec):
    noise = (np.random.default_rng(20220610).random(_NOISE_LEN + spec.size ** 2, dtype=np.float32) - 0.5) * 12 ** 0.5
    return _pixel_grid(spec.size), noise, _layer_tables(spec)


def render(spec:Spec, cv, seed:int, index:int, label:int, looks:bool=False):
    "Image [3, S, S] float32 in [0, 1] and exact part map [S, S] int64, fixed by (spec, seed, index)."
    grid, noise, tables = cv
    base, span, ids = tables[label]
    hw, L, D = grid.shape[1], len(ids), spec.clutter
    rng = np.random.default_rng([seed, index])
    u = np.concatenate([rng.random((L + 1, 14), dtype=np.float32), rng.random((L + 1, 6), dtype=np.float32)], 1)   # first 14: today's draws
    o = u[L].tolist()
    types = ids.copy()
    types[:1 + D] = (u[:1 + D, 13] * (len(PART_NAMES) - 1)).astype(np.int64) + 1
    st = _STYLE[types].copy()
    if spec.colour == 'shared':
        pal = PALETTE[(u[:L, 14] * len(PALETTE)).astype(np.int64)]
        swap = u[:L, 15] < 0.5
        pal[swap] = pal[swap][:, [3, 4, 5, 0, 1, 2]]
        st[:, 2:8] = pal
    elif spec.colour == 'uniform':
        st[:, 2:8] = u[:L, 14:20]
    if spec.texture == 'shared':
        st[:, 8:12] = _STYLE[(u[:L, 16] * (len(PART_NAMES) - 1)).astype(np.int64) + 1, 8:12]
    if spec.clutter_plain and D:
        st[1:1 + D, 0:2] = (0.41, 0.0); st[1:1 + D, 8:12] = (0.0, 0.0, 0.0, 0.03); types[1:1 + D] = 0
    P = u[:L, :5] * span; P += base
    pu, pv, a, b, ang = P.T
    ca, sa = np.cos(ang), np.sin(ang)
    A = np.empty((3, L, 3), np.float32)
    A[0, :, 0] = ca; A[0, :, 1] = sa; A[0, :, 2] = -(pu * ca + pv * sa); A[0] /= a[:, None]
    A[1, :, 0] = -sa; A[1, :, 1] = ca; A[1, :, 2] = pu * sa - pv * ca; A[1] /= b[:, None]
    ox, oy = (o[0] * 2 - 1) * spec.shift, (o[1] * 2 - 1) * spec.shift
    s = spec.scale[0] + (spec.scale[1] - spec.scale[0]) * o[2]
    th = (o[3] * 2 - 1) * math.radians(spec.rot)
    m = 1.0 if o[4] < 0.5 else -1.0
    ct, sn = math.cos(th) / s, math.sin(th) / s
    to_animal = np.array([[m * ct, m * sn, -m * (ct * ox + sn * oy)], [-sn, ct, sn * ox - ct * oy], [0, 0, 1]], np.float32)
    A[:2, 1 + D:] = A[:2, 1 + D:] @ to_animal
    A[2] = (-0.5 * st[:, 1])[:, None] * A[0]; A[2, :, 2] += 1 - 0.5 * st[:, 1]
    duv = A.reshape(3 * L, 3) @ grid
    au = np.abs(duv[:L])
    av = np.abs(duv[L:2 * L]); av /= np.maximum(duv[2 * L:], 0.05)
    mm = np.maximum(au, av)
    au += av; au -= mm; au *= st[:, :1]; au += mm
    inside = au <= 1
    inside[0] = True
    top = np.multiply(inside, _IDS8[:L, None], dtype=np.uint8).max(0)
    tab = np.empty((L, 13), np.float32)
    col = st[:, 2:8] + 0.16 * (u[:L, 5:11] - 0.5)
    if spec.colour == 'type': col[0, 3:6] = o[8:11]
    tab[:, 0:3] = col[:, 0:3]; tab[:, 3:6] = col[:, 3:6] - col[:, 0:3]
    tab[:, 0:6] *= 0.8 + 0.35 * o[5]
    tab[:, 6] = st[:, 11]; tab[0, 6] = 0.06
    k = np.pi * st[:, 8:11]
    k[0, 0] = np.pi * (2 + 6 * o[7])                       # background stripes
    if not spec.bg_texture: k[0] = 0
    tab[:, 7:10] = k[:, :1] * A[0] + k[:, 1:2] * A[1]; tab[:, 9] += u[:L, 11] * (2 * np.pi)
    tab[:, 10:13] = k[:, 2:3] * A[1]; tab[:, 12] += (k[:, 2] > 0) * u[:L, 12] * (2 * np.pi)
    g = np.ascontiguousarray(np.take(tab, top.astype(np.intp), axis=0).T)
    w1 = g[7] * grid[0]; w1 += g[8] * grid[1]; w1 += g[9]
    w2 = g[10] * grid[0]; w2 += g[11] * grid[1]; w2 += g[12]
    tex = np.sin(w1, out=w1); tex *= np.cos(w2, out=w2); tex += 1; tex *= 0.5
    img = g[3:6] * tex; img += g[0:3]
    off = int(o[6] * _NOISE_LEN)
    img += noise[off:off + hw] * g[6]
    np.clip(img, 0, 1, out=img)
    S = spec.size
    if looks: return img.reshape(3, S, S), ids[top].reshape(S, S), np.where(top > 0, types[top], 0).reshape(S, S)
    return img.reshape(3, S, S), ids[top].reshape(S, S)


LIBRARY = {'original': 'synthetic', 'shared': 'synthetic-shared'}   # candidate -> its name in semmae_edu.synthetic.VARIANTS

def render_set(spec:Spec, n:int, seed:int, looks:bool=False) -> dict:
    "image [n, 3, S, S] float32, parts [n, S, S] int64, fg bool, label [n] (index % 10), index [n]; looks [n, S, S] (clutter's look types too)."
    if not looks and spec.name in LIBRARY and replace(spec, size=CANDIDATES[spec.name].size) == CANDIDATES[spec.name]:
        return rendered(seed, n, spec.size, spec.clutter, LIBRARY[spec.name])     # the library's generator: the same images
    cv = canvas(spec)
    imgs = np.empty((n, 3, spec.size, spec.size), np.float32); parts = np.empty((n, spec.size, spec.size), np.uint8)
    lk = np.empty((n, spec.size, spec.size), np.uint8) if looks else None
    for i in range(n):
        r = render(spec, cv, seed, i, i % len(CLASS_NAMES), looks)
        imgs[i], parts[i] = r[0], r[1]
        if looks: lk[i] = r[2]
    parts = torch.from_numpy(parts).long()
    out = dict(image=torch.from_numpy(imgs), parts=parts, fg=parts > 0, label=torch.arange(n) % len(CLASS_NAMES), index=torch.arange(n))
    if looks: out['looks'] = torch.from_numpy(lk).long()
    return out


def part_features(parts:torch.Tensor, n_parts:int=len(PART_NAMES), grid:int=0) -> torch.Tensor:
    "Per image: the share of pixels of each part (grid=0: [n, n_parts]) or each part's share in each cell of a grid x grid layout ([n, n_parts*grid^2])."
    oh = torch.nn.functional.one_hot(parts, n_parts).permute(0, 3, 1, 2).float()        # [n, P, S, S]
    if grid == 0: return oh.mean((2, 3))
    return torch.nn.functional.adaptive_avg_pool2d(oh, grid).flatten(1)


CANDIDATES = {
    'original':        Spec('original'),
    'shared':          Spec('shared', colour='shared'),
    'shared-tex':      Spec('shared-tex', colour='shared', texture='shared'),
    'uniform':         Spec('uniform', colour='uniform'),
    'shared-wide':     Spec('shared-wide', colour='shared', shift=0.3, scale=(0.6, 1.0), rot=180.0),
    'shared-tex-wide': Spec('shared-tex-wide', colour='shared', texture='shared', shift=0.3, scale=(0.6, 1.0), rot=180.0),
    'type-wide':       Spec('type-wide', shift=0.3, scale=(0.6, 1.0), rot=180.0),
    'shared-wide-c10': Spec('shared-wide-c10', colour='shared', shift=0.3, scale=(0.6, 1.0), rot=180.0, clutter=10),
    'shared-c0':       Spec('shared-c0', colour='shared', clutter=0),
    'shared-c2':       Spec('shared-c2', colour='shared', clutter=2),
    'shared-plain':    Spec('shared-plain', colour='shared', clutter_plain=True),
    'shared-big-c2':   Spec('shared-big-c2', colour='shared', scale=(0.85, 1.05), clutter=2),
    'shared-tex-c0':   Spec('shared-tex-c0', colour='shared', texture='shared', clutter=0),
    'shared-64':       Spec('shared-64', size=64, colour='shared'),
    'shared-wide-64':  Spec('shared-wide-64', size=64, colour='shared', shift=0.3, scale=(0.6, 1.0), rot=180.0),
}
