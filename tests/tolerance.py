"""Tolerances from the arithmetic, not from what one machine printed (imported by the tests beside it).

Two float computations of the same quantity differ when they round differently: another summation order
(BLAS blocking, SIMD width, thread count, a fused kernel), another library's sin/cos, another batch size.
Higham's bound for a sum or dot product of n terms computed in any order is γ_n ≈ n·u times the sum of the
terms' magnitudes (u = eps/2 the unit roundoff; we use eps to cover both sides' rounding). Stacked layers
add their errors; every bound below says which reduction it covers."""
import torch

EPS32 = torch.finfo(torch.float32).eps     # 2^-23 ≈ 1.19e-7: one ulp at 1.0 in float32
EPS64 = torch.finfo(torch.float64).eps
EPS_TF32 = 2. ** -10                       # TF32 keeps a 10-bit mantissa (cuDNN convolutions use it by default)
EPS_BF16 = 2. ** -7                        # bfloat16 keeps 7 bits (8 with the implicit one)


def reduction(n:int, scale:float=1., eps:float=EPS32) -> float:
    "Worst-case difference between two orders of a length-`n` sum whose terms' magnitudes add up to `scale`: n·eps·scale."
    return n * eps * scale          # a float, or a tensor of sizes (element-wise bounds)


def layers(n:int, depth:int, scale:float=1., eps:float=EPS32) -> float:
    "`depth` stacked layers whose longest reduction has length `n`, outputs of size `scale`: each adds n·eps·scale."
    return depth * reduction(n, scale, eps)
