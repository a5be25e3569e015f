"""Adam (SPEC §2), with ε outside the square root as in ``torch.optim.Adam``.

State ``(θ, m, v)``, shape (3d,). ``hyper = [lr, beta1, beta2, eps,
bias_correction]``. SDE time per step: η² (SPEC §3).
"""
import math

from numba import njit

from .. import validation as check
from .base import Optimizer, OptimizerSpec


@njit(inline="always")
def adam_update(k, g, state, hyper, out):
    """One Adam step (coordinate-wise)::

        m_k = β1 m_{k−1} + (1 − β1) g
        v_k = β2 v_{k−1} + (1 − β2) g²
        m̂_k = m_k / (1 − β1^k),  v̂_k = v_k / (1 − β2^k)   (k counts from 1)
        θ_k = θ_{k−1} − η m̂_k / (√v̂_k + ε)

    Without bias correction m̂_k = m_k and v̂_k = v_k.

    Parameters
    ----------
    k : int
        Step number, 1 for the first update.
    g : ndarray, shape (d,)
        Gradient sample g_k.
    state : ndarray, shape (3d,)
        (θ_{k−1}, m_{k−1}, v_{k−1}).
    hyper : ndarray, shape (5,) or (5 + 2·n_steps,)
        ``[lr, beta1, beta2, eps, bias_correction (0 or 1)]``, optionally
        followed by (1 − β1^k, 1 − β2^k) for k = 1..n_steps.
    out : ndarray, shape (3d,)
        Receives (θ_k, m_k, v_k).
    """
    lr = hyper[0]
    beta1 = hyper[1]
    beta2 = hyper[2]
    eps = hyper[3]
    if hyper[4] != 0.0:
        if hyper.shape[0] > 5:      # the runner's table of 1 − β^k (Optimizer.hyper_for_run)
            c1 = hyper[5 + 2 * (k - 1)]
            c2 = hyper[6 + 2 * (k - 1)]
        else:
            c1 = 1.0 - math.pow(beta1, k)
            c2 = 1.0 - math.pow(beta2, k)
    else:
        c1 = 1.0
        c2 = 1.0
    d = g.shape[0]
    for i in range(d):
        m = beta1 * state[d + i] + (1.0 - beta1) * g[i]
        v = beta2 * state[2 * d + i] + (1.0 - beta2) * g[i] * g[i]
        out[d + i] = m
        out[2 * d + i] = v
        out[i] = state[i] - lr * (m / c1) / (math.sqrt(v / c2) + eps)


SPEC = OptimizerSpec(
    name="adam", blocks=("theta", "m", "v"), update=adam_update,
    hyper_names=("lr", "beta1", "beta2", "eps", "bias_correction"), time_exponent=2,
    bias_betas=("beta1", "beta2"),
    description="m ← β1m + (1−β1)g; v ← β2v + (1−β2)g²; θ ← θ − η m̂/(√v̂ + ε)")


def adam(*, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, bias_correction=True):
    """Adam as ``torch.optim.Adam`` (no weight decay, no amsgrad).

    Parameters
    ----------
    lr : float
        Learning rate η > 0 (torch's default 1e-3).
    betas : (float, float)
        (β1, β2), each in [0, 1) (torch's default (0.9, 0.999)).
    eps : float
        ε ≥ 0, added outside the square root (torch's default 1e-8).
    bias_correction : bool
        Use m̂, v̂ (torch always does). Default True.

    Returns
    -------
    Optimizer
        State layout ``(θ, m, v)``.
    """
    lr = check.positive_float(lr, "lr")
    beta1, beta2 = check.betas(betas)
    eps = check.eps(eps)
    bias_correction = check.flag(bias_correction, "bias_correction")
    return Optimizer(SPEC, dict(lr=lr, betas=(beta1, beta2), eps=eps,
                                bias_correction=bias_correction),
                     [lr, beta1, beta2, eps, float(bias_correction)], constructor=adam)
