"""SignSGD and Signum, signSGD with momentum (Bernstein et al. 2018, arXiv 1802.04434).

SignSGD:  θ_k = θ_{k−1} − η sign(g_k),  sign(0) = 0.
State ``(θ,)``, shape (d,). ``hyper = [lr]``.

Signum (the paper's Algorithm 3):

    m_k = β m_{k−1} + (1 − β) g_k,     θ_k = θ_{k−1} − η sign(m_k),     m_0 = 0.

State ``(θ, m)``, shape (2d,). ``hyper = [lr, momentum]``. With m_0 = 0,
m_k = (1 − β) Σ_{j≤k} β^{k−j} g_j, and a positive factor does not change a
sign, so the path is the same with or without a bias correction m_k/(1 − β^k),
with or without the dampening 1 − β (the sign of torch's momentum buffer
b ← βb + g, b_0 = 0), and for any scale of the gradients. Its first step is
SignSGD's: sign(m_1) = sign(g_1). β = 0 is SignSGD.

SDE time per step: η for both (:mod:`sde_engine.models.sign`). torch.optim has
neither; the names are the paper's.
"""
from numba import njit

from .. import validation as check
from .base import Optimizer, OptimizerSpec


@njit(inline="always")
def _sign(x):
    return 1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)


@njit(inline="always")
def signsgd_update(k, g, state, hyper, out):
    """θ_k = θ_{k−1} − η sign(g) coordinate-wise (sign(0) = 0, as ``torch.sign``).

    Parameters
    ----------
    k : int
        Step number (unused).
    g : ndarray, shape (d,)
        Gradient sample g_k.
    state : ndarray, shape (d,)
        θ_{k−1}.
    hyper : ndarray, shape (1,)
        ``[lr]``.
    out : ndarray, shape (d,)
        Receives θ_k.
    """
    lr = hyper[0]
    for i in range(g.shape[0]):
        out[i] = state[i] - lr * _sign(g[i])


SPEC = OptimizerSpec(
    name="signsgd", blocks=("theta",), update=signsgd_update, hyper_names=("lr",),
    time_exponent=1, description="θ ← θ − η sign(g)")


def signsgd(*, lr=1e-3):
    """SignSGD: each coordinate moves by η against the sign of its gradient sample.

    Parameters
    ----------
    lr : float
        Learning rate η > 0.

    Returns
    -------
    Optimizer
        State layout ``(θ,)``.
    """
    lr = check.positive_float(lr, "lr")
    return Optimizer(SPEC, dict(lr=lr), [lr], constructor=signsgd)


@njit(inline="always")
def signum_update(k, g, state, hyper, out):
    """m_k = β m_{k−1} + (1 − β) g, θ_k = θ_{k−1} − η sign(m_k) coordinate-wise.

    Parameters
    ----------
    k : int
        Step number (unused).
    g : ndarray, shape (d,)
        Gradient sample g_k.
    state : ndarray, shape (2d,)
        (θ_{k−1}, m_{k−1}).
    hyper : ndarray, shape (2,)
        ``[lr, momentum]``.
    out : ndarray, shape (2d,)
        Receives (θ_k, m_k).
    """
    lr, beta = hyper[0], hyper[1]
    d = g.shape[0]
    for i in range(d):
        m = beta * state[d + i] + (1.0 - beta) * g[i]
        out[d + i] = m
        out[i] = state[i] - lr * _sign(m)


SIGNUM_SPEC = OptimizerSpec(
    name="signum", blocks=("theta", "m"), update=signum_update,
    hyper_names=("lr", "momentum"), time_exponent=1,
    description="m ← βm + (1 − β)g, θ ← θ − η sign(m)")


def signum(*, lr=1e-3, momentum=0.9):
    """Signum (signSGD with momentum): each coordinate moves by η against the sign of
    an exponential moving average of the gradient samples.

    Parameters
    ----------
    lr : float
        Learning rate η > 0.
    momentum : float
        β in [0, 1) (β = 0 is :func:`signsgd`; Bernstein et al. use 0.9).

    Returns
    -------
    Optimizer
        State layout ``(θ, m)``; m starts at 0 (``m0`` of ``init``/``run_optimizer``
        sets another start).
    """
    lr = check.positive_float(lr, "lr")
    momentum = check.beta(momentum, "momentum")
    return Optimizer(SIGNUM_SPEC, dict(lr=lr, momentum=momentum), [lr, momentum],
                     constructor=signum)
