"""Tolerances from the arithmetic, not from what one machine printed (imported by the tests beside it).

Two float computations of the same quantity differ when they round differently: another summation order
(BLAS blocking, SIMD width, thread count, a fused kernel), another library's sin/cos, another batch size.
Higham's bound for a sum or dot product of n terms computed in any order is γ_n ≈ n·u times the sum of the
terms' magnitudes (u = eps/2 the unit roundoff; we use eps to cover both sides' rounding).

What each helper is, exactly:
- `reduction` is that bound for ONE reduction, when `scale` is Σ|terms|. The tests often pass the result's size
  (max |output|) instead, which is Σ|terms| only when the terms do not cancel; with cancellation it is an estimate.
- `layers` is NOT a worst-case bound for a stack of layers. It adds each layer's own fresh rounding (one reduction
  of length n, measured at the outputs' size) once per layer, and ignores amplification: an error made in layer i
  is carried through layers i+1..depth, each of which may multiply it (a linear layer by its weight's operator norm,
  LayerNorm by 1/std of its input, softmax by the logits' scale; the residual path passes it on unchanged). A
  worst-case bound would multiply layer i's error by the product of those later factors, which these tests do not
  compute. What the budget relies on instead: n·eps is the worst case of one reduction, while the rounding errors
  of a length-n sum add up like a random walk, ~√n·u in practice, 2·√n times less (≈ 55× for the 768-term MLP
  reduction of ViT-Tiny, 16× for a 64-term one). That headroom absorbs the amplification of the small, freshly
  initialised, LayerNorm'd models these tests build; a model with large weights or a near-constant LayerNorm input
  can exceed `layers(...)` without any bug.
"""
import torch

EPS32 = torch.finfo(torch.float32).eps     # 2^-23 ≈ 1.19e-7: one ulp at 1.0 in float32
EPS64 = torch.finfo(torch.float64).eps
EPS_TF32 = 2. ** -10                       # TF32 keeps a 10-bit mantissa (cuDNN convolutions use it by default)
EPS_BF16 = 2. ** -7                        # bfloat16 keeps 7 bits (8 with the implicit one)


def reduction(n:int, scale:float=1., eps:float=EPS32) -> float:
    "Worst-case difference between two orders of a length-`n` sum whose terms' magnitudes add up to `scale`: n·eps·scale."
    return n * eps * scale          # a float, or a tensor of sizes (element-wise bounds)


def layers(n:int, depth:int, scale:float=1., eps:float=EPS32) -> float:
    """A budget, not a bound: `depth` layers each adding one length-`n` reduction's worst case at the outputs' size,
    depth·n·eps·scale; an earlier layer's error amplified by the later ones is not counted (see the module's note)."""
    return depth * reduction(n, scale, eps)
