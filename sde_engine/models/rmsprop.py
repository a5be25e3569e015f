"""The RMSprop SDE (SPEC §3), time t = kη², state x = (θ, u) of size 2d, u = v/σ²:

    dθ = −F(t, u) ( ∇f(θ) dt + σ0 Σ(θ)^{1/2} dW ),
    du = c2 ( diag Σ(θ) − u ) dt,

with F = 1/(σ0 √u + ε0) coordinate-wise, or with bias correction
F = √γ2 / (σ0 √u + ε0 √γ2), γ2 = 1 − e^{−c2 t} (see
:mod:`sde_engine.models.preconditioner`, which also gives the t = 0 limit).
σ0 = ση, ε0 = εη, c2 = (1−β)/η². For constant Σ and u0 = 0 the bias-corrected
F is the constant 1/(σ0 √diagΣ + ε0).

SDE params: ``[σ0, ε0, c2, bias_correction, *problem.params]``.
"""
from numba import njit

from .. import validation as check
from .base import OptimizerSDE, build_sde
from .preconditioner import preconditioner


def _rmsprop_kernels(grad, noise_sqrt, noise_diag, n_head):
    @njit(inline="always")
    def drift(t, x, params, out):
        d = x.shape[0] // 2
        pp = params[n_head:]
        theta = x[:d]
        grad(theta, pp, out[:d])
        noise_diag(theta, pp, out[d:])
        sigma0, eps0, c2, bias = params[0], params[1], params[2], params[3] != 0.0
        for i in range(d):
            u = x[d + i]
            s_ii = out[d + i]
            out[i] = -preconditioner(t, u, s_ii, sigma0, eps0, c2, bias) * out[i]
            out[d + i] = c2 * (s_ii - u)

    @njit(inline="always")
    def diffusion(t, x, params, out):
        d = x.shape[0] // 2
        noise_sqrt(x[:d], params[n_head:], out[:d])
        sigma0, eps0, c2, bias = params[0], params[1], params[2], params[3] != 0.0
        m = out.shape[1]
        for i in range(d):
            s_ii = 0.0
            for j in range(m):
                s_ii += out[i, j] * out[i, j]          # diag Σ = row norms of S
            scale = -sigma0 * preconditioner(t, x[d + i], s_ii, sigma0, eps0, c2, bias)
            for j in range(m):
                out[i, j] *= scale
                out[d + i, j] = 0.0

    return drift, diffusion


def rmsprop_sde(problem, lr, beta=0.99, eps=1e-8, bias_correction=False):
    """The RMSprop SDE of ``problem`` (RMSprop step k ↔ t = k·lr²).

    Parameters
    ----------
    problem : Problem
    lr : float
        η > 0.
    beta : float
        β in [0, 1) (torch's ``alpha``); c2 = (1−β)/η².
    eps : float
        ε ≥ 0, outside the square root as in torch.optim; ε0 = εη.
    bias_correction : bool
        Use the bias-corrected SDE (what torch Adam with β1 = 0 runs).

    Returns
    -------
    OptimizerSDE
        ``.sde`` of dim 2d, state (θ, u), general noise (noise_dim d); h = lr².
    """
    lr = check.positive_float(lr, "lr")
    beta = check.beta(beta, "beta")
    eps = check.eps(eps)
    bias = check.flag(bias_correction, "bias_correction")
    sigma0, eps0, c2 = problem.noise_scale * lr, eps * lr, (1.0 - beta) / lr**2
    sde = build_sde(_rmsprop_kernels, problem, [sigma0, eps0, c2, float(bias)], 2,
                    "rmsprop_sde")
    return OptimizerSDE(
        sde=sde, problem=problem, optimizer="rmsprop", lr=lr, h=lr**2,
        constants=dict(sigma0=sigma0, eps0=eps0, c2=c2, bias_correction=bias),
        hyperparameters=dict(lr=lr, beta=beta, eps=eps, bias_correction=bias))
