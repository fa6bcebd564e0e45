"""A converged linear probe: multinomial logistic regression with an L2 penalty, solved to its optimum by full-batch
L-BFGS on standardised features; the L2 weight chosen on a held-out split of the training images, then refit on all.

Prototype for a successor of `semmae_edu.evaluate.linear_probe` (issue 18, Build 3). Standalone: torch only.

Objective (per-sample mean, bias not penalised), X standardised with the training rows' mean and std:
    f(W, b) = mean_i CE(softmax(x_i W + b), y_i) + lam / 2 * ||W||_F^2
Its optimum is unique for lam > 0 (strictly convex in W; in b up to the softmax's shift, fixed by the bias's own
gradient = 0). Converged means max |grad| <= tol; every fit reports its gradient norm.
"""
from __future__ import annotations
import math, time
import torch
import torch.nn.functional as F
from torch import Tensor

LAMS = tuple(10.0 ** e for e in (0, -0.5, -1, -1.5, -2, -2.5, -3, -3.5, -4, -4.5, -5))   # strong -> weak (warm-started path)


def standardise(Xtr:Tensor, *others:Tensor, eps:float=1e-6) -> tuple:
    "(Xtr, *others) centred and scaled by the training rows' mean and std (a constant feature gets std 1)."
    mu = Xtr.mean(0)
    sd = Xtr.std(0)
    sd = torch.where(sd > eps * sd.max().clamp_min(1e-30), sd, torch.ones_like(sd))
    return tuple((X - mu) / sd for X in (Xtr,) + others)


def objective(W:Tensor, b:Tensor, X:Tensor, y:Tensor, lam:float) -> Tensor:
    "Mean cross-entropy of logits X W + b plus lam/2 ||W||^2 (a scalar tensor)."
    return F.cross_entropy(X @ W + b, y) + 0.5 * lam * (W * W).sum()


def grad_norm(W, b, X, y, lam) -> float:
    "max |gradient| of `objective` at (W, b): 0 at the optimum."
    W = W.detach().clone().requires_grad_(True); b = b.detach().clone().requires_grad_(True)
    gW, gb = torch.autograd.grad(objective(W, b, X, y, lam), (W, b))
    return max(gW.abs().max().item(), gb.abs().max().item())


def fit_logreg(X:Tensor,            # [n, D] features (already standardised)
               y:Tensor,            # [n] int64 class ids in [0, K)
               K:int,               # number of classes
               lam:float,           # L2 weight (per-sample objective)
               init:tuple=None,     # (W [D, K], b [K]) warm start
               tol:float=1e-5,      # stop when max |grad| <= tol
               max_iter:int=3000,   # function evaluations at most
               history:int=20,
              ) -> dict:            # W, b, lam, grad (max |grad| at the end), iters (function evaluations), loss, converged
    "Full-batch L-BFGS (strong Wolfe line search) to the optimum of `objective`; gradient written out (X^T G as (G^T X)^T, fast)."
    D, n = X.shape[1], len(X)
    W = (init[0].clone() if init else torch.zeros(D, K, dtype=X.dtype)).requires_grad_(True)
    b = (init[1].clone() if init else torch.zeros(K, dtype=X.dtype)).requires_grad_(True)
    Y = F.one_hot(y, K).to(X.dtype)
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=max_iter, max_eval=max_iter, tolerance_grad=tol,
                            tolerance_change=0., history_size=history, line_search_fn='strong_wolfe')
    n_eval = [0]
    @torch.no_grad()
    def closure():
        Z = torch.addmm(b, X, W)
        lse = torch.logsumexp(Z, 1, keepdim=True)
        loss = (lse.sum() - (Z * Y).sum()) / n + 0.5 * lam * (W * W).sum()
        G = (torch.exp(Z - lse) - Y) / n                       # [n, K] d loss / d logits
        W.grad = ((G.T @ X).T + lam * W).contiguous()           # [D, K]
        b.grad = G.sum(0)
        n_eval[0] += 1
        return loss
    opt.step(closure)
    W, b = W.detach(), b.detach()
    g = grad_norm(W, b, X, y, lam)
    return dict(W=W, b=b, lam=lam, grad=g, iters=n_eval[0], loss=objective(W, b, X, y, lam).item(), converged=g <= tol)


def _acc(W, b, X, y) -> float: return ((X @ W + b).argmax(1) == y).double().mean().item()


def split_index(y:Tensor, frac:float=0.2, seed:int=0) -> tuple:
    "(fit, held) index tensors: a stratified held-out fraction `frac` of each class, drawn with `seed`."
    g = torch.Generator().manual_seed(seed)
    fit, held = [], []
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        m = max(1, int(round(frac * len(idx))))
        held.append(idx[:m]); fit.append(idx[m:])
    return torch.cat(fit).sort().values, torch.cat(held).sort().values


def linear_probe(Xtr:Tensor, ytr:Tensor, Xte:Tensor, yte:Tensor,
                 lams=LAMS,           # L2 weights tried, strong -> weak (each fit starts from the previous one)
                 held_frac:float=0.2, # share of the training images held out to choose lam
                 seed:int=0,          # the held-out split (the fits themselves are deterministic)
                 dtype=torch.float64,
                 tol:float=1e-5,
                 extend:bool=True,    # a grid-edge winner extends the path by half-decades (up to 4 more)
                ) -> dict:            # acc, train_acc, lam, held (lam -> held-out acc), grad, iters, seconds, se (sampling error of acc)
    "Converged logistic-regression probe: standardise, pick lam on a held-out split of the training rows, refit on all."
    t0 = time.perf_counter()
    K = int(max(ytr.max(), yte.max())) + 1
    ytr, yte = ytr.long(), yte.long()
    fit, held = split_index(ytr, held_frac, seed)
    Xf, Xh = standardise(Xtr[fit].to(dtype), Xtr[held].to(dtype))
    scores, init, sols, path_ok = {}, None, {}, True
    lams = list(lams)
    def run(lam):
        nonlocal init, path_ok
        r = fit_logreg(Xf, ytr[fit], K, lam, init, tol)
        init = (r['W'], r['b'])
        path_ok = path_ok and r['converged']
        scores[lam] = _acc(r['W'], r['b'], Xh, ytr[held])
        sols[lam] = (r['W'], r['b'], r['iters'])
    for lam in lams: run(lam)
    best = max(scores, key=lambda l: (round(scores[l], 9), l))         # ties -> the stronger penalty
    while extend and best == min(scores) and len(scores) < len(lams) + 4:   # the weakest was best: go on down the path
        run(best / 10 ** 0.5)
        best = max(scores, key=lambda l: (round(scores[l], 9), l))
    while extend and best == max(scores) and len(scores) < len(lams) + 8:   # the strongest was best: go up
        run(best * 10 ** 0.5)
        best = max(scores, key=lambda l: (round(scores[l], 9), l))
    Xa, Xt = standardise(Xtr.to(dtype), Xte.to(dtype))
    r = fit_logreg(Xa, ytr, K, best, sols[best][:2], tol)
    acc = _acc(r['W'], r['b'], Xt, yte)
    n = len(yte)
    return dict(acc=acc, train_acc=_acc(r['W'], r['b'], Xa, ytr), lam=best, held={f'{l:g}': s for l, s in scores.items()},
                grad=r['grad'], converged=r['converged'], path_converged=path_ok, iters=r['iters'], path_iters=sum(v[2] for v in sols.values()),
                seconds=time.perf_counter() - t0, n_test=n, se=math.sqrt(acc * (1 - acc) / n), W=r['W'], b=r['b'])
