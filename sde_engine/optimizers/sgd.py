"""Plain SGD (SPEC §2):  θ_k = θ_{k−1} − η g_k.

State ``(θ,)``, shape (d,). ``hyper = [lr]``. SDE time per step: η (SPEC §3).
"""
from numba import njit

from .. import validation as check
from .base import Optimizer, OptimizerSpec


@njit(inline="always")
def sgd_update(k, g, state, hyper, out):
    """θ_k = θ_{k−1} − η g.

    Parameters
    ----------
    k : int
        Step number (unused: SGD has no bias correction).
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
        out[i] = state[i] - lr * g[i]


SPEC = OptimizerSpec(
    name="sgd", blocks=("theta",), update=sgd_update, hyper_names=("lr",),
    time_exponent=1, description="θ ← θ − η g")


def sgd(*, lr=1e-3):
    """Plain SGD, ``torch.optim.SGD`` without momentum or weight decay.

    Parameters
    ----------
    lr : float
        Learning rate η > 0 (torch's default 1e-3).

    Returns
    -------
    Optimizer
        State layout ``(θ,)``; update θ ← θ − η g.
    """
    lr = check.positive_float(lr, "lr")
    return Optimizer(SPEC, dict(lr=lr), [lr], constructor=sgd)
