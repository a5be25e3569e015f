"""A control variate for RMSprop on a diagonal quadratic: same noise, exact mean.

Next to each RMSprop run θ_k (SPEC §2) the kernel carries a *linear* recursion
y_k driven by the same gradient noise, with a deterministic preconditioner:

    g_k   = H θ_{k−1} + σ S ξ_k                     (the run's oracle call)
    y_k   = y_{k−1} − η a_k (H y_{k−1} + σ S ξ_k),   y_0 = θ_0,
    a_k   = 1 / (√v̄_k + ε),   v̄_k = σ²Σ (1 − β^k) + β^k v_0
            (÷ (1 − β^k) with bias correction),

i.e. RMSprop with v replaced by its value when the gradient is pure noise.
The noise term is recovered from the oracle as σ S ξ_k = g_k − H θ_{k−1}, so
no extra random numbers are drawn and run i is unchanged. Because y is linear
in the noise, its moments are exact recursions per coordinate (H, Σ diagonal):

    μ_k = r_k μ_{k−1},   s_k = r_k² s_{k−1} + η² a_k² σ² Σ,
    κ_k = r_k³ κ_{k−1} − η³ a_k³ σ³ Σ^{3/2} E ξ³,       r_k = 1 − η a_k H,

(mean, variance, third central moment; E ξ³ = 0 for Gaussian and Rademacher
noise, 2 for the centred exponential), so E φ(y_k) is exact for φ = θ₁, ‖θ‖²,
f(θ), θ₁³. The estimator

    E φ(θ_k) ≈ E φ(y_k) + mean over runs of [φ(θ_k) − φ(y_k)]

is unbiased whatever a_k is, and since v_k stays close to v̄_k when the noise
dominates the gradient (the regime of SPEC §3), θ_k − y_k is small and the
Monte Carlo error shrinks by a large factor (measured in tests/test_studies.py).
"""
import functools
import math

import numpy as np
from numba import njit

from ..optimizers.base import Optimizer, OptimizerSpec
from ..optimizers.rmsprop import rmsprop_update

THIRD_MOMENT = {"gaussian": 0.0, "rademacher": 0.0, "skewed": 2.0}


@njit(inline="always")
def _vbar(k, beta, sigma2_sigma, v0, bias):
    decay = math.pow(beta, k)
    v = sigma2_sigma * (1.0 - decay) + decay * v0
    return v / (1.0 - decay) if bias else v


@njit(inline="always")
def rmsprop_cv_update(k, g, state, hyper, out):
    """RMSprop on (θ, v) plus the control recursion on y; state (θ, v, y), shape (3d,).

    ``hyper = [lr, beta, eps, bias_correction, H (d), σ²Σ (d), v0 (d)]``.
    """
    d = g.shape[0]
    rmsprop_update(k, g, state[:2 * d], hyper[:4], out[:2 * d])
    lr, beta, eps, bias = hyper[0], hyper[1], hyper[2], hyper[3] != 0.0
    for i in range(d):
        h = hyper[4 + i]
        noise = g[i] - h * state[i]
        a = 1.0 / (math.sqrt(_vbar(k, beta, hyper[4 + d + i], hyper[4 + 2 * d + i], bias)) + eps)
        y = state[2 * d + i]
        out[2 * d + i] = y - lr * a * (h * y + noise)


SPEC = OptimizerSpec(
    name="rmsprop_cv", blocks=("theta", "v", "y"), update=rmsprop_cv_update,
    hyper_names=("lr", "beta", "eps", "bias_correction", "H", "sigma2_Sigma", "v0"),
    time_exponent=2, description="RMSprop with a linear control recursion y on the same noise")


class ControlledRMSprop(Optimizer):
    """RMSprop carrying the control recursion; ``init`` starts y at θ0."""

    def init(self, theta0, m0=None, v0=None):
        state = super().init(theta0, m0=m0, v0=v0)
        d = state.shape[-1] // 3
        state[..., 2 * d:] = state[..., :d]
        return state


def controlled_rmsprop(lr, beta, eps, bias_correction, curvature, noise_var, v0):
    """The optimizer; ``noise_var`` = σ² diag Σ, ``v0`` the initial v (d,)."""
    hyper = np.concatenate([[lr, beta, eps, float(bias_correction)], curvature, noise_var, v0])
    return ControlledRMSprop(SPEC, dict(lr=lr, beta=beta, eps=eps,
                                        bias_correction=bias_correction), hyper)


def control_moments(n_steps, lr, beta, eps, bias_correction, curvature, noise_var, v0, theta0,
                    third_moment):
    """Exact mean, variance and third central moment of y_k, each shape (d,)."""
    h = np.asarray(curvature, dtype=float)
    q = np.asarray(noise_var, dtype=float)
    v0 = np.asarray(v0, dtype=float)
    mu = np.asarray(theta0, dtype=float).copy()
    var = np.zeros_like(mu)
    kappa = np.zeros_like(mu)
    for k in range(1, n_steps + 1):
        decay = beta**k
        vbar = q * (1 - decay) + decay * v0
        if bias_correction:
            vbar = vbar / (1 - decay)
        a = 1.0 / (np.sqrt(vbar) + eps)
        r = 1.0 - lr * a * h
        mu = r * mu
        var = r * r * var + (lr * a) ** 2 * q
        kappa = r**3 * kappa - (lr * a) ** 3 * q**1.5 * third_moment
    return mu, var, kappa


@functools.lru_cache(maxsize=None)
def difference_observer(loss):
    """Jitted ``observe(k, x, params, out)``: φ(θ) − φ(y) for (θ₁, ‖θ‖², f, θ₁³), x = (θ, v, y)."""
    @njit
    def observe(k, x, params, out):
        d = x.shape[0] // 3
        theta = x[:d]
        y = x[2 * d:]
        sq = 0.0
        for i in range(d):
            sq += theta[i] * theta[i] - y[i] * y[i]
        out[0] = theta[0] - y[0]
        out[1] = sq
        out[2] = loss(theta, params) - loss(y, params)
        out[3] = theta[0] ** 3 - y[0] ** 3

    return observe


def control_means(mu, var, kappa, curvature):
    """Exact (E θ₁, E ‖θ‖², E f, E θ₁³) of y from its per-coordinate moments."""
    sq = mu**2 + var
    return np.array([mu[0], sq.sum(), 0.5 * np.sum(np.asarray(curvature) * sq),
                     mu[0] ** 3 + 3 * mu[0] * var[0] + kappa[0]])
