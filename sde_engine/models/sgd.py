"""The SGD SDE (SPEC §3), time t = kη:

    dX = −∇f(X) dt + σ √η Σ(X)^{1/2} dW,       state x = θ (d), noise_dim = d,

and, with ``order=2``, the second-order modified equation of Li, Tai & E
(ICML 2017, Thm. 1; JMLR 2019, Thm. 3):

    dX = −∇(f + (η/4)‖∇f‖²)(X) dt + σ √η Σ(X)^{1/2} dW
       = −(∇f + (η/2) ∇²f ∇f)(X) dt + σ √η Σ(X)^{1/2} dW,

a weak approximation of order 2 in η where the first is of order 1. The
Hessian–gradient product is a central difference of the problem's gradient
along ∇f (:func:`_hessian_times_gradient`; exact up to rounding on quadratics).

With ``noise="diagonal"`` (problems whose Σ(θ) is diagonal) the diffusion is
the vector σ √η √diag Σ(X), so Milstein applies (derivative-free form; for a
constant Σ its correction term vanishes and it equals Euler–Maruyama).

SDE params: ``[√η, *problem.params]`` (σ is ``problem.params[0]``).
"""
import math

import numpy as np
from numba import njit

from .. import validation as check
from .base import OptimizerSDE, build_sde


def sgd_kernels(grad, noise_sqrt, noise_diag, n_head):
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


#: Relative step of the central difference in :func:`_hessian_times_gradient`:
#: about the cube root of the float64 epsilon, which balances its O(δ²)
#: truncation against rounding (relative error ~1e-10 on smooth problems).
_FD_STEP = 6e-6


def _hessian_times_gradient(grad):
    @njit(inline="always")
    def hessian_times_gradient(x, p, g, out):
        """out = ∇²f(x) g for g = ∇f(x), by (∇f(x + δg) − ∇f(x − δg)) / (2δ).

        δ = _FD_STEP (1 + ‖x‖) / ‖g‖, so that the step moves x by a relative
        _FD_STEP; out = 0 where g = 0. Allocates two arrays of shape (d,).
        """
        d = x.shape[0]
        norm_g = 0.0
        norm_x = 0.0
        for i in range(d):
            norm_g += g[i] * g[i]
            norm_x += x[i] * x[i]
        if norm_g == 0.0:
            out[:] = 0.0
            return
        delta = _FD_STEP * (1.0 + math.sqrt(norm_x)) / math.sqrt(norm_g)
        shifted = np.empty(d)
        g_minus = np.empty(d)
        for i in range(d):
            shifted[i] = x[i] - delta * g[i]
        grad(shifted, p, g_minus)
        for i in range(d):
            shifted[i] = x[i] + delta * g[i]
        grad(shifted, p, out)
        for i in range(d):
            out[i] = (out[i] - g_minus[i]) / (2.0 * delta)

    return hessian_times_gradient


def _sgd_second_order_drift(grad, n_head):
    hessian_times_gradient = _hessian_times_gradient(grad)

    @njit(inline="always")
    def drift(t, x, params, out):
        p = params[n_head:]
        half_lr = 0.5 * params[0] * params[0]       # η/2 from √η
        g = np.empty(x.shape[0])
        grad(x, p, g)
        hessian_times_gradient(x, p, g, out)
        for i in range(x.shape[0]):
            out[i] = -g[i] - half_lr * out[i]

    return drift


def _sgd_second_order_kernels(grad, noise_sqrt, noise_diag, n_head):
    return (_sgd_second_order_drift(grad, n_head),
            sgd_kernels(grad, noise_sqrt, noise_diag, n_head)[1])


def _sgd_second_order_diagonal_kernels(grad, noise_sqrt, noise_diag, n_head):
    return (_sgd_second_order_drift(grad, n_head),
            _sgd_diagonal_kernels(grad, noise_sqrt, noise_diag, n_head)[1])


def _sgd_diagonal_kernels(grad, noise_sqrt, noise_diag, n_head):
    drift = sgd_kernels(grad, noise_sqrt, noise_diag, n_head)[0]

    @njit(inline="always")
    def diffusion(t, x, params, out):
        noise_diag(x, params[n_head:], out)
        scale = params[0] * params[n_head]          # √η · σ
        for i in range(out.shape[0]):
            out[i] = scale * math.sqrt(max(out[i], 0.0))

    return drift, diffusion


#: (order, noise) -> kernel factory and the SDE's name.
_FACTORIES = {(1, "general"): (sgd_kernels, "sgd_sde"),
              (1, "diagonal"): (_sgd_diagonal_kernels, "sgd_sde"),
              (2, "general"): (_sgd_second_order_kernels, "sgd_sde_order2"),
              (2, "diagonal"): (_sgd_second_order_diagonal_kernels, "sgd_sde_order2")}


def sgd_sde(problem, lr, noise="general", order=1):
    """The SGD SDE of ``problem`` at learning rate ``lr`` (SGD step k ↔ t = k·lr).

    Parameters
    ----------
    problem : Problem
    lr : float
        η > 0.
    noise : {"general", "diagonal"}
        Diffusion σ√η Σ^{1/2} of shape (d, d), or σ√η √diagΣ of shape (d,)
        (only for problems with ``diagonal_noise``; enables Milstein).
    order : {1, 2}
        1: drift −∇f (SPEC §3), weak order 1 in η. 2: the modified drift
        −∇(f + (η/4)‖∇f‖²) of Li, Tai & E, weak order 2 in η (module
        docstring). Its drift costs two more gradients per evaluation and
        allocates (a central difference); the torch backend has no form of it.

    Returns
    -------
    OptimizerSDE
        ``.sde`` of dim d (noise_dim d); ``h = lr``; ``constants = {"order": order}``.
    """
    lr = check.positive_float(lr, "lr")
    check.choice(noise, "noise", ("general", "diagonal"))
    if isinstance(order, bool) or order not in (1, 2):
        raise ValueError(f"`order` must be 1 or 2, got {order!r}")
    if noise == "diagonal" and not problem.diagonal_noise:
        raise ValueError(f"`noise='diagonal'` needs a problem with diagonal Σ(θ); {problem!r} "
                         f"does not declare one (diagonal_noise=False)")
    factory, name = _FACTORIES[order, noise]
    sde = build_sde(factory, problem, [lr**0.5], 1, name, noise=noise)
    return OptimizerSDE(sde=sde, problem=problem, optimizer="sgd", lr=lr, h=lr,
                        constants=dict(order=order), hyperparameters=dict(lr=lr))
