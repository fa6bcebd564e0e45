"""The probe reaches the known optimum: (1) equals Newton's method (exact Hessian) on a small problem; (2) gradient ~0;
(3) on Gaussian classes with a shared identity covariance (Bayes rule linear and known) its test accuracy equals the
Bayes rule's on the same test images within sampling error; (4) time for n=10k, D=3072 pixels-like features.
Writes bench/testbed/probe_check.json. The probe is the library's `semmae_edu.evaluate.lbfgs_probe` (tests/test_evaluate.py
holds (1) and (3) as tests); the committed probe_check.json was written by its prototype, the same arithmetic."""
import json, math, sys, time
from pathlib import Path
import torch, torch.nn.functional as F
from semmae_edu.evaluate import fit_logreg, lbfgs_probe as linear_probe, logreg_objective as objective, standardise

torch.set_num_threads(1)
out = {}

# (1) Newton reference on a small problem
g = torch.Generator().manual_seed(0)
n, D, K, lam = 400, 6, 3, 1e-2
X = torch.randn(n, D, generator=g, dtype=torch.float64)
y = (X @ torch.randn(D, K, generator=g, dtype=torch.float64) * 2 + 0.5 * torch.randn(n, K, generator=g, dtype=torch.float64)).argmax(1)
theta = torch.zeros(D * K + K, dtype=torch.float64)
def f(t): return objective(t[:D * K].view(D, K), t[D * K:], X, y, lam)
for it in range(50):   # damped Newton with the exact Hessian (the softmax's shift direction: pseudo-inverse)
    gr = torch.autograd.functional.jacobian(f, theta)
    H = torch.autograd.functional.hessian(f, theta)
    step = torch.linalg.lstsq(H, gr.unsqueeze(1)).solution.squeeze(1)
    theta = theta - step
    if gr.abs().max() < 1e-13: break
Wn, bn = theta[:D * K].view(D, K), theta[D * K:]
bn = bn - bn.mean()
r = fit_logreg(X, y, K, lam, tol=1e-10)
out['newton'] = dict(n=n, D=D, K=K, lam=lam, newton_iters=it + 1,
                     max_abs_W_diff=(r['W'] - Wn).abs().max().item(), max_abs_b_diff=((r['b'] - r['b'].mean()) - bn).abs().max().item(),
                     loss_diff=r['loss'] - f(theta).item(), lbfgs_grad=r['grad'], lbfgs_evals=r['iters'])
print('newton', out['newton'])

# (3) Gaussian classes: x ~ N(mu_k, I), equal priors -> Bayes rule argmax_k x.mu_k - |mu_k|^2/2 (linear)
D, K, ntr, nte = 64, 10, 10000, 20000
mu = torch.randn(K, D, generator=g, dtype=torch.float64) * 0.32
def sample(m):
    yy = torch.arange(m) % K
    return mu[yy] + torch.randn(m, D, generator=g, dtype=torch.float64), yy
Xtr, ytr = sample(ntr); Xte, yte = sample(nte)
bayes = ((Xte @ mu.T - 0.5 * (mu * mu).sum(1)).argmax(1) == yte).double().mean().item()
t0 = time.perf_counter()
p = linear_probe(Xtr, ytr, Xte, yte)
p['seconds'] = time.perf_counter() - t0
agree = ((standardise(Xtr, Xte)[1] @ p['W'] + p['b']).argmax(1) == (Xte @ mu.T - 0.5 * (mu * mu).sum(1)).argmax(1)).double().mean().item()
out['gaussian'] = dict(D=D, K=K, n_train=ntr, n_test=nte, bayes_acc=bayes, probe_acc=p['acc'], diff=p['acc'] - bayes,
                       se_diff_upper=math.sqrt(2 * bayes * (1 - bayes) / nte), agreement_with_bayes_rule=agree,
                       lam=p['lam'], grad=p['grad'], seconds=p['seconds'])
print('gaussian', out['gaussian'])

# (4) timing on pixel-like features: n=10k, D=3072, correlated (smooth images), 10 classes, weak signal
n, D = 10000, 3072
Z = torch.randn(n, 64, generator=g)
A = torch.randn(64, D, generator=g)
Xp = (Z @ A + 3 * torch.randn(n, D, generator=g))
yp = torch.arange(n) % 10
Xp += 0.02 * torch.randn(10, 64, generator=g)[yp] @ A
for dt in (torch.float32, torch.float64):
    t0 = time.perf_counter()
    p = linear_probe(Xp[:8000], yp[:8000], Xp[8000:], yp[8000:], dtype=dt, tol=1e-4 if dt == torch.float32 else 1e-5)
    out[f'timing_{str(dt)[6:]}'] = dict(n_train=8000, n_test=2000, D=D, acc=p['acc'], lam=p['lam'], grad=p['grad'], iters=p['iters'],
                                      seconds=time.perf_counter() - t0)
    print(dt, out[f'timing_{str(dt)[6:]}'])
Path(__file__).with_name('probe_check.json').write_text(json.dumps(out, indent=1))
