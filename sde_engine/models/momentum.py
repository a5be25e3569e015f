"""The SDE of SGD with heavy-ball momentum, in the momentum timescale.

Discrete (:mod:`sde_engine.optimizers.momentum`): b_k = μ b_{k−1} + g_k,
θ_k = θ_{k−1} − η b_k. With μ = 1 − γ√η, the velocity v = √η b and the time
t = k√η, one step reads

    v_k = v_{k−1} + √η (∇f(θ_{k−1}) − γ v_{k−1}) + √η σ S ξ_k,
    θ_k = θ_{k−1} − √η v_k,

a semi-implicit Euler step of size h = √η of the second-order-in-time system

    dθ = −v dt,
    dv = (∇f(θ) − γ v) dt + η^{1/4} σ Σ(θ)^{1/2} dW,      state x = (θ, v) (2d), noise_dim d,

with γ = (1 − μ)/√η held fixed as η → 0. The step's weak error is O(h), so the
SDE approximates the algorithm with weak order 1 in h = √η (order 1/2 in η at
fixed γ); on a quadratic with constant Σ the SDE is linear-Gaussian and
:func:`sde_engine.analysis.exact_moments` gives its moments. For fixed μ as
η → 0 (γ → ∞) the velocity relaxes at once and θ follows the SGD SDE with
learning rate η/(1 − μ) instead; this model is for the regime 1 − μ ∝ √η.

SDE params: ``[γ, η^{1/4}, *problem.params]``.
"""
from numba import njit

from .. import validation as check
from .base import OptimizerSDE, build_sde


def _momentum_kernels(grad, noise_sqrt, noise_diag, n_head):
    @njit(inline="always")
    def drift(t, x, params, out):
        d = x.shape[0] // 2
        gamma = params[0]
        grad(x[:d], params[n_head:], out[d:])
        for i in range(d):
            out[i] = -x[d + i]
            out[d + i] -= gamma * x[d + i]

    @njit(inline="always")
    def diffusion(t, x, params, out):
        d = x.shape[0] // 2
        noise_sqrt(x[:d], params[n_head:], out[d:])
        scale = params[1] * params[n_head]          # η^{1/4} · σ
        for i in range(d):
            for j in range(d):
                out[i, j] = 0.0
                out[d + i, j] *= scale

    return drift, diffusion


def sgd_momentum_sde(problem, lr, momentum):
    """The SDE of SGD with momentum μ at learning rate η (step k ↔ t = k√η).

    Parameters
    ----------
    problem : Problem
    lr : float
        η > 0.
    momentum : float
        μ in (0, 1); γ = (1 − μ)/√η is the friction of the SDE.

    Returns
    -------
    OptimizerSDE
        ``.sde`` of dim 2d (θ, v = √η b), noise_dim d; ``h = √lr``;
        ``constants = {"gamma": γ}``.
    """
    lr = check.positive_float(lr, "lr")
    momentum = check.beta(momentum, "momentum")
    gamma = (1.0 - momentum) / lr**0.5
    sde = build_sde(_momentum_kernels, problem, [gamma, lr**0.25], 2, "sgd_momentum_sde")
    return OptimizerSDE(sde=sde, problem=problem, optimizer="sgd_momentum", lr=lr, h=lr**0.5,
                        constants=dict(gamma=gamma),
                        hyperparameters=dict(lr=lr, momentum=momentum))
