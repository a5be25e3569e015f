"""The SignSGD SDE under heavy-tailed gradient noise (Student-t, α-stable).

sign(g) is bounded whatever the noise, so its steps have a finite variance and
SignSGD's limit stays a *Brownian* SDE even where SGD's does not (α-stable
noise, α < 2; :mod:`sde_engine.models.levy`). With g = ∇f + σ S ξ, diagonal
Σ = diag(s²) and ξ_i independent, symmetric and continuous with CDF F,

    E sign(g_i) = G(∂_i f / (σ s_i)),   G(z) = 2F(z) − 1,   Var sign(g_i) = 1 − G²,

so the derivation of the SDE of :mod:`sde_engine.models.sign` (Compagnoni et
al. 2024, arXiv 2411.15958, Gaussian noise) goes through with erf replaced by
G (sign methods under heavy-tailed noise: Compagnoni et al. 2025, arXiv
2502.17009):

    dX = −G(∇f / (σ s)) dt + √η diag(√(1 − G²)) dW.

G for the standardised families of :mod:`sde_engine.problems.base`:

* ``"student_t"`` (ξ = T √((ν−2)/ν)): G(z) = 1 − 2 F̄_t,ν(z √(ν/(ν−2)));
* ``"stable"`` (ξ = X/√2, X ~ S_α): G(z) = 1 − 2 F̄_α(√2 z), F̄_α the survival
  function of S_α (no closed form for 1 < α < 2).

Near z = 0, G(z) ≈ 2F′(0) z: phase 3 of Compagnoni et al. is SGD-like with the
slope 2F′(0) of the family (√(2/π) for Gaussian noise, 2Γ(1 + 1/α)·√2/π for
α-stable) instead of √(2/π).

G is tabulated once per family and shape with SciPy (``scipy.stats.t``,
``scipy.stats.levy_stable``; values and slopes on z ∈ [0, :data:`TABLE_END`]
at :data:`TABLE_POINTS` points) and evaluated by cubic Hermite interpolation.
Beyond the table 1 − G(z) = Σ_k c_k z^{−e_k}: for α-stable noise the
asymptotic series of the S_α tail, F̄_α(x) = (1/π) Σ_{k≥1} (−1)^{k+1}
Γ(kα)/k! sin(kπα/2) x^{−kα} (:data:`TAIL_TERMS` terms), for Student-t the
power tail z^{−ν} through the table's last value. Measured against SciPy
(α = 1.2, 1.5, 1.9, 2; ν = 2.5, 3, 10): ≤ 3·10⁻⁷ on the table; beyond it
the series agrees with SciPy's ``levy_stable.sf`` to 10⁻¹⁰ up to z = 80
(further out SciPy drifts: 2·10⁻⁶ at z = 200 for α = 1.9, 10⁻⁴ at
z = 1000 for α = 1.2; at x = 56.6 and 60 the series also matches a direct
Fourier inversion to 10⁻¹²), the Student-t tail agrees to 1.2·10⁻⁹. The
table travels in the SDE params, so one compiled kernel serves every family
and shape.

:func:`sde_engine.models.signsgd_sde` puts the table after √η in the SDE params:
``[√η, step, n, K, e (K), c (K), G (n), G′ (n), *problem.params]``.
"""
import functools
import math

import numpy as np
from numba import njit


#: Points of the G table and its right end (in units of σ s).
TABLE_POINTS = 1001
TABLE_END = 40.0
#: Terms of the tail expansion beyond the table (unused terms have c = 0).
TAIL_TERMS = 7


@functools.lru_cache(maxsize=None)
def expected_sign_table(noise, shape):
    """``[step, n, K, e (K), c (K), G (n), G′ (n)]`` for a heavy-tailed family.

    Parameters
    ----------
    noise : {"student_t", "stable"}
    shape : float
        ν > 2 or α ∈ (1, 2].

    Returns
    -------
    ndarray, shape (3 + 2 TAIL_TERMS + 2 TABLE_POINTS,)
    """
    from scipy import special, stats

    z = np.linspace(0.0, TABLE_END, TABLE_POINTS)
    exponents, coefficients = np.zeros(TAIL_TERMS), np.zeros(TAIL_TERMS)
    if noise == "student_t":
        law, stretch = stats.t(shape), math.sqrt(shape / (shape - 2.0))
    elif noise == "stable":
        law, stretch = stats.levy_stable(shape, 0.0), math.sqrt(2.0)
    else:
        raise ValueError(f"no G table for noise={noise!r} (student_t and stable have one)")
    value = 1.0 - 2.0 * law.sf(stretch * z)
    value[0] = 0.0
    slope = 2.0 * stretch * law.pdf(stretch * z)
    if noise == "student_t":
        exponents[0] = shape
        coefficients[0] = (1.0 - value[-1]) * TABLE_END ** shape
    else:
        k = np.arange(1, TAIL_TERMS + 1)
        exponents[:] = k * shape
        # 1 − G(z) = 2 F̄_α(√2 z), the series of F̄_α in x = √2 z
        coefficients[:] = (2.0 / math.pi * (-1.0) ** (k + 1) * special.gamma(k * shape)
                           / special.factorial(k) * np.sin(k * math.pi * shape / 2.0)
                           * stretch ** -exponents)
    return np.concatenate([[z[1] - z[0], TABLE_POINTS, TAIL_TERMS], exponents, coefficients,
                           value, slope])


@njit(inline="always")
def hermite_table(params, step, n, v, x):
    """Cubic Hermite interpolation at 0 ≤ x < (n − 1)·step of the n values at
    ``params[v:]``, followed by their n slopes, on the grid 0, step, 2 step, …"""
    s = x / step
    j = int(s)
    t = s - j
    t2 = t * t
    t3 = t2 * t
    dv = v + n
    return ((2.0 * t3 - 3.0 * t2 + 1.0) * params[v + j] + (t3 - 2.0 * t2 + t) * step * params[dv + j]
            + (3.0 * t2 - 2.0 * t3) * params[v + j + 1] + (t3 - t2) * step * params[dv + j + 1])


@njit(inline="always")
def tabulated_expected_sign(gradient, noise_sd, params, first):
    """E sign(gradient + noise_sd ξ) = G(gradient / noise_sd) from the table at ``first``."""
    if noise_sd <= 0.0:
        return 1.0 if gradient > 0.0 else (-1.0 if gradient < 0.0 else 0.0)
    z = abs(gradient) / noise_sd
    step = params[first]
    n = int(params[first + 1])
    k = int(params[first + 2])
    if z < (n - 1) * step:
        g = hermite_table(params, step, n, first + 3 + 2 * k, z)
    else:
        g = 1.0
        for i in range(k):
            g -= params[first + 3 + k + i] * z ** -params[first + 3 + i]
    return g if gradient >= 0.0 else -g
