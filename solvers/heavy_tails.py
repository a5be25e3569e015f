"""Heavy-tailed draws from the path streams: Student-t and symmetric α-stable.

Everything here draws only from a :mod:`solvers.rng` stream (or transforms
normals that came from one), so the engine's reproducibility holds: a draw
is a fixed function of (seed, path) and of its place in the path's sequence.

Symmetric α-stable law S_α (α ∈ (0, 2]): the law with characteristic function
E exp(iuX) = exp(−|u|^α) (scale 1, skewness 0). At α = 2 it is N(0, 2); for
α < 2 its variance is infinite and P(|X| > x) ~ (2/π) Γ(α) sin(πα/2) x^{−α}.
The Lévy process L with L_1 ~ S_α has increments L_{t+dt} − L_t ~ dt^{1/α} X.

Chambers, Mallows & Stuck (1976, JASA 71, 340–344), symmetric case: with
V ~ U(−π/2, π/2) and E ~ Exp(1) independent,

    X = sin(αV) / cos(V)^{1/α} · (cos((1 − α) V) / E)^{(1 − α)/α}   ~ S_α.

Two routes to (V, E) are used:

* :func:`next_stable`: V = π (U₁ − ½), E = −log U₂ from two open uniforms of
  the stream (the gradient-noise draws of the problems);
* :func:`stable_from_normals`: from two independent N(0, 1) numbers (a, b),
  whose polar form has E = (a² + b²)/2 ~ Exp(1) independent of the angle
  atan2(b, a) ~ U(−π, π], so V = atan2(b, a)/2. The SDE kernel turns its
  block normals into α-stable increments this way
  (:mod:`solvers.sde_kernel`), keeping the block generator and its guarantees.
"""
import math

from numba import njit

from .rng import next_normal, next_open_unit


@njit(inline="always")
def chambers_mallows_stuck(alpha, v, e):
    """X ~ S_α from V ∈ (−π/2, π/2) and E > 0 (formula in the module docstring).

    Returns 0 for the probability-zero inputs cos V ≤ 0 or E ≤ 0 (reachable
    only through rounding), where the formula divides by zero.
    """
    c = math.cos(v)
    if c <= 0.0 or e <= 0.0:
        return 0.0
    return (math.sin(alpha * v) / c ** (1.0 / alpha)
            * (math.cos((1.0 - alpha) * v) / e) ** ((1.0 - alpha) / alpha))


@njit(inline="always")
def next_stable(state, alpha):
    """One S_α draw (E exp(iuX) = exp(−|u|^α)) from two open uniforms of ``state``."""
    v = math.pi * (next_open_unit(state) - 0.5)
    e = -math.log(next_open_unit(state))
    return chambers_mallows_stuck(alpha, v, e)


@njit(inline="always")
def stable_from_normals(alpha, a, b):
    """One S_α draw from two independent N(0, 1) numbers ``a``, ``b`` (polar form)."""
    return chambers_mallows_stuck(alpha, 0.5 * math.atan2(b, a), 0.5 * (a * a + b * b))


@njit(inline="always")
def next_gamma(state, shape):
    """One Gamma(shape, 1) draw for ``shape`` ≥ 1 (Marsaglia & Tsang 2000).

    With d = shape − 1/3 and c = 1/√(9d): draw Z ~ N(0, 1) and U, set
    V = (1 + cZ)³ and accept dV when V > 0 and log U < Z²/2 + d − dV + d log V;
    otherwise draw again (acceptance ≥ 95% for shape ≥ 1).
    """
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        z = next_normal(state)
        v = 1.0 + c * z
        if v <= 0.0:
            continue
        v = v * v * v
        if math.log(next_open_unit(state)) < 0.5 * z * z + d - d * v + d * math.log(v):
            return d * v


@njit(inline="always")
def next_student_t(state, df):
    """One Student-t draw with ``df`` > 2 degrees of freedom, scaled to variance 1.

    T = Z / √(χ²_ν / ν) with χ²_ν = 2 Gamma(ν/2) has variance ν/(ν − 2), so the
    draw is Z √((ν − 2) / χ²_ν).
    """
    z = next_normal(state)
    chi2 = 2.0 * next_gamma(state, 0.5 * df)
    return z * math.sqrt((df - 2.0) / chi2)
