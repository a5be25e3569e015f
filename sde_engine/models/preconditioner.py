"""The coordinate-wise preconditioner of the RMSprop and Adam SDEs (SPEC §3).

Without bias correction:  1 / P_i = 1 / (σ0 √u_i + ε0).
With bias correction:     √γ2 / (σ0 √u_i + ε0 √γ2) = 1 / (σ0 √(u_i/γ2) + ε0),
γ2(t) = 1 − e^{−c2 t}, written in the second form so that small γ2 loses no
accuracy. At t = 0 (γ2 = 0) the small-t limit is used: with u_i(0) = 0,
u_i(t)/γ2(t) → diag Σ_ii(θ0), so the factor is 1 / (σ0 √Σ_ii + ε0); with
u_i(0) > 0 the factor → 0.
"""
import math

from numba import njit


@njit(inline="always")
def preconditioner(t, u, sigma_ii, sigma0, eps0, c2, bias):
    """Factor multiplying the θ-drift and θ-noise of coordinate i (see module doc).

    ``u`` is u_i, ``sigma_ii`` is diag Σ(θ)_i (used only at t = 0 with bias
    correction). A zero denominator gives +inf, so the path is reported as
    diverged rather than raising inside compiled code.
    """
    u = max(u, 0.0)
    if bias:
        gamma2 = -math.expm1(-c2 * t)
        if gamma2 > 0.0:
            den = sigma0 * math.sqrt(u / gamma2) + eps0
        elif u > 0.0:
            return 0.0
        else:
            den = sigma0 * math.sqrt(max(sigma_ii, 0.0)) + eps0
    else:
        den = sigma0 * math.sqrt(u) + eps0
    return 1.0 / den if den > 0.0 else math.inf
