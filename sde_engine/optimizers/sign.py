"""SignSGD (Bernstein et al. 2018):  θ_k = θ_{k−1} − η sign(g_k),  sign(0) = 0.

State ``(θ,)``, shape (d,). ``hyper = [lr]``. SDE time per step: η
(:mod:`sde_engine.models.sign`). torch.optim has no SignSGD; the name is the
paper's.
"""
from numba import njit

from .. import validation as check
from .base import Optimizer, OptimizerSpec


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
        s = 1.0 if g[i] > 0.0 else (-1.0 if g[i] < 0.0 else 0.0)
        out[i] = state[i] - lr * s


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
