"""RMSprop (SPEC §2), with ε outside the square root as in ``torch.optim.RMSprop``.

State ``(θ, v)``, shape (2d,). ``hyper = [lr, beta, eps, bias_correction]``.
SDE time per step: η² (SPEC §3).
"""
import math

from numba import njit

from .. import validation as check
from .base import Optimizer, OptimizerSpec


@njit(inline="always")
def rmsprop_update(k, g, state, hyper, out):
    """One RMSprop step (coordinate-wise)::

        v_k = β v_{k−1} + (1 − β) g²
        v̂_k = v_k / (1 − β^k)   with bias correction, else v̂_k = v_k
        θ_k = θ_{k−1} − η g / (√v̂_k + ε)

    The *updated* v_k enters the step. With bias correction this is exactly
    Adam with β1 = 0 (m_k = g, m̂_k = g), i.e. ``torch.optim.Adam(betas=(0, β))``.

    Parameters
    ----------
    k : int
        Step number, 1 for the first update.
    g : ndarray, shape (d,)
        Gradient sample g_k.
    state : ndarray, shape (2d,)
        (θ_{k−1}, v_{k−1}).
    hyper : ndarray, shape (4,) or (4 + n_steps,)
        ``[lr, beta, eps, bias_correction (0 or 1)]``, optionally followed by
        1 − β^k for k = 1..n_steps.
    out : ndarray, shape (2d,)
        Receives (θ_k, v_k).
    """
    lr = hyper[0]
    beta = hyper[1]
    eps = hyper[2]
    if hyper[3] == 0.0:
        c2 = 1.0
    elif hyper.shape[0] > 4:        # the runner's table of 1 − β^k (Optimizer.hyper_for_run)
        c2 = hyper[4 + (k - 1)]
    else:
        c2 = 1.0 - math.pow(beta, k)
    d = g.shape[0]
    for i in range(d):
        v = beta * state[d + i] + (1.0 - beta) * g[i] * g[i]
        out[d + i] = v
        out[i] = state[i] - lr * g[i] / (math.sqrt(v / c2) + eps)


SPEC = OptimizerSpec(
    name="rmsprop", blocks=("theta", "v"), update=rmsprop_update,
    hyper_names=("lr", "beta", "eps", "bias_correction"), time_exponent=2,
    bias_betas=("beta",),
    description="v ← βv + (1−β)g²; θ ← θ − η g/(√v̂ + ε), v̂ = v or v/(1−β^k)")


def rmsprop(*, lr=1e-2, beta=0.99, eps=1e-8, bias_correction=False):
    """RMSprop as ``torch.optim.RMSprop`` (no momentum, not centred).

    Parameters
    ----------
    lr : float
        Learning rate η > 0 (torch's default 1e-2).
    beta : float
        Decay of the squared-gradient average, in [0, 1). torch calls it
        ``alpha`` (default 0.99); SPEC §2 and the SDE literature call it β.
    eps : float
        ε ≥ 0, added outside the square root (torch's default 1e-8).
    bias_correction : bool
        Divide v by 1 − β^k before the square root (torch's RMSprop does not;
        torch's Adam with β1 = 0 does). Default False.

    Returns
    -------
    Optimizer
        State layout ``(θ, v)``.
    """
    lr = check.positive_float(lr, "lr")
    beta = check.beta(beta, "beta")
    eps = check.eps(eps)
    bias_correction = check.flag(bias_correction, "bias_correction")
    return Optimizer(SPEC, dict(lr=lr, beta=beta, eps=eps, bias_correction=bias_correction),
                     [lr, beta, eps, float(bias_correction)], constructor=rmsprop)
