"""The SGD SDE (SPEC §3), time t = kη:

    dX = −∇f(X) dt + σ √η Σ(X)^{1/2} dW,       state x = θ (d), noise_dim = d.

With ``noise="diagonal"`` (problems whose Σ(θ) is diagonal) the diffusion is
the vector σ √η √diag Σ(X), so Milstein applies (derivative-free form; for a
constant Σ its correction term vanishes and it equals Euler–Maruyama).

SDE params: ``[√η, *problem.params]`` (σ is ``problem.params[0]``).
"""
import math

from numba import njit

from .. import validation as check
from .base import OptimizerSDE, build_sde


def _sgd_kernels(grad, noise_sqrt, noise_diag, n_head):
    @njit(inline="always")
    def drift(t, x, params, out):
        grad(x, params[n_head:], out)
        for i in range(x.shape[0]):
            out[i] = -out[i]

    @njit(inline="always")
    def diffusion(t, x, params, out):
        noise_sqrt(x, params[n_head:], out)
        scale = params[0] * params[n_head]          # √η · σ
        for i in range(out.shape[0]):
            for j in range(out.shape[1]):
                out[i, j] *= scale

    return drift, diffusion


def _sgd_diagonal_kernels(grad, noise_sqrt, noise_diag, n_head):
    drift = _sgd_kernels(grad, noise_sqrt, noise_diag, n_head)[0]

    @njit(inline="always")
    def diffusion(t, x, params, out):
        noise_diag(x, params[n_head:], out)
        scale = params[0] * params[n_head]          # √η · σ
        for i in range(out.shape[0]):
            out[i] = scale * math.sqrt(max(out[i], 0.0))

    return drift, diffusion


def sgd_sde(problem, lr, noise="general"):
    """The SGD SDE of ``problem`` at learning rate ``lr`` (SGD step k ↔ t = k·lr).

    Parameters
    ----------
    problem : Problem
    lr : float
        η > 0.
    noise : {"general", "diagonal"}
        Diffusion σ√η Σ^{1/2} of shape (d, d), or σ√η √diagΣ of shape (d,)
        (only for problems with ``diagonal_noise``; enables Milstein).

    Returns
    -------
    OptimizerSDE
        ``.sde`` of dim d (noise_dim d); ``h = lr``.
    """
    lr = check.positive_float(lr, "lr")
    check.choice(noise, "noise", ("general", "diagonal"))
    if noise == "diagonal" and not problem.diagonal_noise:
        raise ValueError(f"`noise='diagonal'` needs a problem with diagonal Σ(θ); {problem!r} "
                         f"does not declare one (diagonal_noise=False)")
    factory = _sgd_kernels if noise == "general" else _sgd_diagonal_kernels
    sde = build_sde(factory, problem, [lr**0.5], 1, "sgd_sde", noise=noise)
    return OptimizerSDE(sde=sde, problem=problem, optimizer="sgd", lr=lr, h=lr,
                        constants={}, hyperparameters=dict(lr=lr))
