"""The SGD SDE (SPEC §3), time t = kη:

    dX = −∇f(X) dt + σ √η Σ(X)^{1/2} dW,       state x = θ (d), noise_dim = d.

SDE params: ``[√η, *problem.params]`` (σ is ``problem.params[0]``).
"""
from numba import njit

from .base import OptimizerSDE, build_sde, learning_rate


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


def sgd_sde(problem, lr):
    """The SGD SDE of ``problem`` at learning rate ``lr`` (SGD step k ↔ t = k·lr).

    Parameters
    ----------
    problem : Problem
    lr : float
        η > 0.

    Returns
    -------
    OptimizerSDE
        ``.sde`` of dim d with general noise (noise_dim d); ``h = lr``.
    """
    lr = learning_rate(lr)
    sde = build_sde(_sgd_kernels, problem, [lr**0.5], 1, "sgd_sde")
    return OptimizerSDE(sde=sde, problem=problem, optimizer="sgd", lr=lr, h=lr,
                        constants={}, hyperparameters=dict(lr=lr))
