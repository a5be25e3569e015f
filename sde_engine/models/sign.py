"""The SignSGD SDE (Compagnoni et al. 2024, arXiv 2411.15958), time t = kη.

For Gaussian gradient noise g = ∇f + σ S ξ with diagonal Σ = S Sᵀ = diag(s_i²),
coordinate i of sign(g) has mean E sign(g_i) = erf(∂_i f / (√2 σ s_i)) and
variance 1 − erf², independently across coordinates, so one step
θ_k = θ_{k−1} − η sign(g_k) has the first two moments of a step of

    dX = −erf(∇f(X) / (√2 σ s(X))) dt + √η diag(√(1 − erf²)) dW,

state x = θ (d), noise_dim d, weak order 1 in η. The drift is the gradient-to-
noise ratio through erf: −∇f/(σ s)·√(2/π) when the noise dominates (SGD-like,
with a learning rate rescaled by 1/(σ s)), −sign(∇f) when the signal does;
where s_i = 0 it is −sign(∂_i f) and the diffusion 0.

SDE params: ``[√η, *problem.params]`` (σ is ``problem.params[0]``).
"""
import math

import numpy as np
from numba import njit

from .. import validation as check
from .base import OptimizerSDE, build_sde


def _sign_kernels(grad, noise_sqrt, noise_diag, n_head):
    @njit(inline="always")
    def drift(t, x, params, out):
        p = params[n_head:]
        variance = np.empty(x.shape[0])
        noise_diag(x, p, variance)
        grad(x, p, out)
        for i in range(x.shape[0]):
            out[i] = -_expected_sign(out[i], p[0] * math.sqrt(max(variance[i], 0.0)))

    @njit(inline="always")
    def diffusion(t, x, params, out):
        p = params[n_head:]
        d = x.shape[0]
        variance = np.empty(d)
        noise_diag(x, p, variance)
        g = np.empty(d)
        grad(x, p, g)
        for i in range(d):
            e = _expected_sign(g[i], p[0] * math.sqrt(max(variance[i], 0.0)))
            for j in range(d):
                out[i, j] = 0.0
            out[i, i] = params[0] * math.sqrt(max(1.0 - e * e, 0.0))

    return drift, diffusion


@njit(inline="always")
def _expected_sign(gradient, noise_sd):
    """E sign(gradient + noise_sd·Z), Z ~ N(0, 1): erf(gradient / (√2 noise_sd)),
    or sign(gradient) when noise_sd = 0."""
    if noise_sd > 0.0:
        return math.erf(gradient / (math.sqrt(2.0) * noise_sd))
    return 1.0 if gradient > 0.0 else (-1.0 if gradient < 0.0 else 0.0)


def signsgd_sde(problem, lr):
    """The SignSGD SDE of ``problem`` at learning rate ``lr`` (step k ↔ t = k·lr).

    Parameters
    ----------
    problem : Problem
        With Gaussian noise and diagonal Σ(θ) (``problem.diagonal_noise``): the
        erf drift is E sign(g) for those only.
    lr : float
        η > 0.

    Returns
    -------
    OptimizerSDE
        ``.sde`` of dim d, general noise (a diagonal matrix), noise_dim d; ``h = lr``.
    """
    lr = check.positive_float(lr, "lr")
    if not problem.diagonal_noise or problem.noise != "gaussian":
        raise ValueError(f"the SignSGD SDE needs Gaussian noise with diagonal Σ(θ) (its drift "
                         f"is E sign(g) = erf(∇f / (√2 σ s))); {problem!r} has "
                         f"noise={problem.noise!r}, diagonal_noise={problem.diagonal_noise}")
    sde = build_sde(_sign_kernels, problem, [lr**0.5], 1, "signsgd_sde")
    return OptimizerSDE(sde=sde, problem=problem, optimizer="signsgd", lr=lr, h=lr,
                        constants={}, hyperparameters=dict(lr=lr))
