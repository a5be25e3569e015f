"""Exact laws on the 1-D quadratic with α-stable gradient noise (no Monte Carlo).

Problem: f(θ) = ½ c θ², oracle g = cθ + σ s ξ with ξ = 2^{−1/2} X, X ~ S_α
(E exp(iuX) = exp(−|u|^α); the ``"stable"`` family of
:mod:`sde_engine.problems.base` with Σ = s²). Every process below is linear in
its noise, so its value at a fixed time is ``location + scale · X`` with X ~ S_α
(α = 2 for the Brownian SDE): a :class:`StableLaw`. With r = 1 − ηc,

* SGD after n steps: location rⁿθ₀, scale^α = (ησs/√2)^α Σ_{k<n} |r|^{αk}
  (the Euler scheme of the Lévy SDE at dt = η; other dt: :func:`levy_euler_law`);
* the Lévy-driven SGD SDE (:func:`sde_engine.models.sgd_levy_sde`) at t:
  location e^{−ct}θ₀, scale^α = (η^{1−1/α} σs/√2)^α (1 − e^{−αct})/(αc);
* the Brownian SGD SDE dX = −cX dt + σ√η s dW that treats the dispersion s²
  as a covariance: Gaussian with variance ησ²s² (1 − e^{−2ct})/(2c), i.e.
  S_2 scale √(variance/2);
* gradient flow (the ODE): location e^{−ct}θ₀, scale 0.

(c = 0 takes the limits: n terms, t, t.) The test function cos(uθ) then has
E cos(uθ) = cos(u·location) exp(−|u·scale|^α) (:meth:`StableLaw.expected_cos`).
"""
from dataclasses import dataclass

import numpy as np

_STANDARDISE = 2.0 ** -0.5


@dataclass(frozen=True)
class StableLaw:
    """θ = location + scale · X with X ~ S_α (α = 2: X ~ N(0, 2))."""

    location: float
    scale: float
    alpha: float

    def expected_cos(self, u):
        """E cos(uθ) = cos(u·location) exp(−|u·scale|^α), for an array or float ``u``."""
        u = np.asarray(u, dtype=float)
        return np.cos(u * self.location) * np.exp(-np.abs(u * self.scale) ** self.alpha)


def _decay_integral(rate, t):
    """∫₀ᵗ e^{−rate·s} ds = (1 − e^{−rate·t}) / rate (t when rate = 0)."""
    return t if rate == 0.0 else -np.expm1(-rate * t) / rate


def levy_euler_law(curvature, noise_scale, dispersion, alpha, lr, dt, n_steps, theta0):
    """Law of the Euler scheme of the Lévy-driven SGD SDE after ``n_steps`` steps of ``dt``.

    X_{k+1} = (1 − c dt) X_k + κ dt^{1/α} X_k' with κ = η^{1−1/α} σ s/√2, so
    location (1 − c dt)ⁿ θ₀ and scale^α = (κ dt^{1/α})^α Σ_{k<n} |1 − c dt|^{αk};
    at dt = η it is SGD's law (:func:`sgd_law`).
    """
    r = abs(1.0 - dt * curvature)
    q = r ** alpha
    terms = n_steps if q == 1.0 else (1.0 - q ** n_steps) / (1.0 - q)
    kappa = lr ** (1.0 - 1.0 / alpha) * noise_scale * np.sqrt(dispersion) * _STANDARDISE
    scale = kappa * dt ** (1.0 / alpha) * terms ** (1.0 / alpha)
    return StableLaw((1.0 - dt * curvature) ** n_steps * theta0, scale, alpha)


def sgd_law(curvature, noise_scale, dispersion, alpha, lr, n_steps, theta0):
    """Law of SGD's θ_n on f = ½cθ² with α-stable noise (module docstring).

    Parameters
    ----------
    curvature : float
        c ≥ 0.
    noise_scale : float
        σ.
    dispersion : float
        s² (the problem's Σ).
    alpha : float
        α ∈ (1, 2].
    lr : float
        η.
    n_steps : int
        n.
    theta0 : float

    Returns
    -------
    StableLaw
    """
    return levy_euler_law(curvature, noise_scale, dispersion, alpha, lr, lr, n_steps, theta0)


def levy_sde_law(curvature, noise_scale, dispersion, alpha, lr, t, theta0):
    """Law of the Lévy-driven SGD SDE at time t (module docstring)."""
    scale = (lr ** (1.0 - 1.0 / alpha) * noise_scale * np.sqrt(dispersion) * _STANDARDISE
             * _decay_integral(alpha * curvature, t) ** (1.0 / alpha))
    return StableLaw(np.exp(-curvature * t) * theta0, scale, alpha)


def brownian_sde_law(curvature, noise_scale, dispersion, lr, t, theta0):
    """Law of the Brownian SGD SDE with covariance s² at time t (module docstring)."""
    variance = lr * noise_scale ** 2 * dispersion * _decay_integral(2.0 * curvature, t)
    return StableLaw(np.exp(-curvature * t) * theta0, np.sqrt(0.5 * variance), 2.0)


def gradient_flow_law(curvature, t, theta0):
    """The ODE dθ = −cθ dt: a point mass at e^{−ct}θ₀."""
    return StableLaw(np.exp(-curvature * t) * theta0, 0.0, 2.0)
