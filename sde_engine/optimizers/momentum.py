"""SGD with (heavy-ball) momentum, as ``torch.optim.SGD(momentum=μ)`` with no dampening:

    b_k = μ b_{k−1} + g_k,     θ_k = θ_{k−1} − η b_k,     b_0 = 0.

State ``(θ, b)``, shape (2d,). ``hyper = [lr, momentum]``. SDE time per step:
√η (:mod:`sde_engine.models.momentum`: the momentum timescale 1/γ with
μ = 1 − γ√η).
"""
from numba import njit

from .. import validation as check
from .base import Optimizer, OptimizerSpec


@njit(inline="always")
def sgd_momentum_update(k, g, state, hyper, out):
    """b_k = μ b_{k−1} + g, θ_k = θ_{k−1} − η b_k.

    Parameters
    ----------
    k : int
        Step number (unused).
    g : ndarray, shape (d,)
        Gradient sample g_k.
    state : ndarray, shape (2d,)
        (θ_{k−1}, b_{k−1}).
    hyper : ndarray, shape (2,)
        ``[lr, momentum]``.
    out : ndarray, shape (2d,)
        Receives (θ_k, b_k).
    """
    lr, mu = hyper[0], hyper[1]
    d = g.shape[0]
    for i in range(d):
        b = mu * state[d + i] + g[i]
        out[d + i] = b
        out[i] = state[i] - lr * b


SPEC = OptimizerSpec(
    name="sgd_momentum", blocks=("theta", "b"), update=sgd_momentum_update,
    hyper_names=("lr", "momentum"), time_exponent=0.5,
    description="b ← μ b + g, θ ← θ − η b")


def sgd_momentum(*, lr=1e-3, momentum=0.9):
    """SGD with heavy-ball momentum, ``torch.optim.SGD(lr, momentum)`` (dampening 0,
    no Nesterov, no weight decay).

    Parameters
    ----------
    lr : float
        Learning rate η > 0.
    momentum : float
        μ in (0, 1) (``sgd(lr)`` is μ = 0).

    Returns
    -------
    Optimizer
        State layout ``(θ, b)``; b starts at 0, as torch's buffer (its first
        step sets b = g, the same).
    """
    lr = check.positive_float(lr, "lr")
    momentum = check.beta(momentum, "momentum")
    if momentum == 0.0:
        raise ValueError("`momentum` must lie in (0, 1) for sgd_momentum; use sgd(lr) for "
                         "plain SGD")
    return Optimizer(SPEC, dict(lr=lr, momentum=momentum), [lr, momentum],
                     constructor=sgd_momentum)
