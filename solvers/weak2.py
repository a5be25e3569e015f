"""Explicit weak order 2.0 scheme of Platen (Kloeden & Platen 1992, §15.1), Itô,
derivative-free, with discrete increments.

Per step of size Δ from (t, Y), with f = f(t, Y), g = g(t, Y) and g^j the j-th
column of g (noise dimension m)::

    Y' = Y + ½ (f(t+Δ, Ῡ) + f) Δ
           + ¼ Σ_j [ (g^j(t+Δ, R₊ʲ) + g^j(t+Δ, R₋ʲ) + 2 g^j) Ŵ_j
                     + Σ_{r≠j} (g^j(t, U₊ʳ) + g^j(t, U₋ʳ) − 2 g^j) Ŵ_j ]
           + ¼ Σ_j [ (g^j(t+Δ, R₊ʲ) − g^j(t+Δ, R₋ʲ)) (Ŵ_j² − Δ)
                     + Σ_{r≠j} (g^j(t, U₊ʳ) − g^j(t, U₋ʳ)) (Ŵ_j Ŵ_r + V_rj) ] / √Δ

    Ῡ = Y + f Δ + Σ_j g^j Ŵ_j,   R±ʲ = Y + f Δ ± g^j √Δ,   U±ʳ = Y ± g^r √Δ.

Expanding the support values reproduces the weak order 2 Itô–Taylor scheme
(Kloeden & Platen eq. 14.2.1) with the iterated integrals I_(r,j) replaced by
½ (Ŵ_r Ŵ_j + V_rj): the (g(R₊) − g(R₋))/(4√Δ) and (g(U₊) − g(U₋))/(4√Δ)
differences are ½ L^r g^j + O(Δ), the sums bring ½ L⁰g^j Δ, and the drift at
Ῡ brings ½ L⁰f Δ² and ½ L^j f Ŵ_j Δ. Evaluating R± and Ῡ at t + Δ supplies the
∂/∂t parts of L⁰ (U± stay at t, where they only difference in space).

Random variables (all functions of the path's block normals, so the usual
reproducibility holds: path i is path i for any threads, chunking, prefix or
``path_offset`` split):

* Ŵ_j, three-point: ±√(3Δ) with probability 1/6 each and 0 with probability
  2/3 (moments 0, Δ, 0, 3Δ², 0 up to order 5, as weak order 2 needs), taken as
  √(3Δ) sign(ΔW_j) 1{|ΔW_j| > c √Δ} of the step's Brownian increment ΔW_j,
  c = Φ⁻¹(5/6), so P(|ΔW_j| > c√Δ) = 1/3 exactly;
* V_rj (general noise only), two-point: V_rj = Δ sign(ΔB_p) for r < j from
  one extra N(0, Δ) draw ΔB_p per pair p = (r, j), V_jr = −V_rj, V_jj = −Δ.

A step therefore draws m normals (diagonal noise) or m + m(m−1)/2 (general),
:func:`draws_per_step`. Because Ŵ is a function of the Brownian increment,
``brownian_dt`` works as for Gaussian schemes (runs at several dt see one
driving path), but Ŵ over a step is not the sum of the Ŵ of its halves: the
scheme converges weakly only, it has no strong order. The step writes Ŵ over
the first m entries of ``dW``, so a saved W is the three-point walk the scheme
was driven by.

Diagonal noise uses the scheme coordinate-wise (Kloeden & Platen eq. 15.1.1
per coordinate, 3 diffusion and 2 drift evaluations per step), which assumes,
as Milstein does, that g_i depends on x_i (and t) only: the cross terms
L^r g^j with r ≠ j then vanish. General noise costs 4m + 1 diffusion and 2
drift evaluations per step (m = 1 skips the U± support values).
"""
import math

from numba import njit

#: Φ⁻¹(5/6): a standard normal exceeds it in absolute value with probability 1/3.
THREE_POINT_THRESHOLD = 0.967421566101701


def draws_per_step(sde):
    """Normals a step draws: m for diagonal noise, m + m(m−1)/2 for general noise."""
    m = sde.noise_dim
    return m if sde.noise == "diagonal" else m + m * (m - 1) // 2


@njit(inline="always")
def three_point(dw, sqrt_dt):
    """√(3Δ) sign(ΔW) if |ΔW| > Φ⁻¹(5/6) √Δ else 0, for ΔW ~ N(0, Δ)."""
    if dw > THREE_POINT_THRESHOLD * sqrt_dt:
        return math.sqrt(3.0) * sqrt_dt
    if dw < -THREE_POINT_THRESHOLD * sqrt_dt:
        return -math.sqrt(3.0) * sqrt_dt
    return 0.0


@njit(inline="always")
def two_point_v(dW, m, r, j, dt):
    """V_rj for r ≠ j from the extra draws dW[m:], pairs (r < j) in row-major order."""
    a, b = (r, j) if r < j else (j, r)
    p = a * m - a * (a + 1) // 2 + (b - a - 1)
    v = dt if dW[m + p] >= 0.0 else -dt
    return v if r < j else -v


def make_step(sde):
    """Build the jitted step ``step(t, dt, x, dW, params, work, x_new)``.

    ``work`` is ``(f, g, g_aux, x_aux)``: f and x_aux of shape (d,), g and
    g_aux of the diffusion's shape. ``dW`` has :func:`draws_per_step` entries
    of N(0, dt); its first m are overwritten with the three-point Ŵ.
    """
    drift = sde.drift_jit
    diffusion = sde.diffusion_jit

    if sde.noise == "diagonal":
        @njit(inline="always")
        def step(t, dt, x, dW, params, work, x_new):
            f, g, g_aux, x_aux = work[0], work[1], work[2], work[3]
            d = x.shape[0]
            sqrt_dt = math.sqrt(dt)
            for i in range(d):
                dW[i] = three_point(dW[i], sqrt_dt)
            drift(t, x, params, f)
            diffusion(t, x, params, g)
            for i in range(d):
                x_aux[i] = x[i] + f[i] * dt + g[i] * sqrt_dt
            diffusion(t + dt, x_aux, params, g_aux)
            for i in range(d):
                w = dW[i]
                x_new[i] = (x[i] + 0.5 * f[i] * dt + 0.5 * g[i] * w
                            + 0.25 * g_aux[i] * (w + (w * w - dt) / sqrt_dt))
                x_aux[i] = x[i] + f[i] * dt - g[i] * sqrt_dt
            diffusion(t + dt, x_aux, params, g_aux)
            for i in range(d):
                w = dW[i]
                x_new[i] += 0.25 * g_aux[i] * (w - (w * w - dt) / sqrt_dt)
                x_aux[i] = x[i] + f[i] * dt + g[i] * w
            drift(t + dt, x_aux, params, f)
            for i in range(d):
                x_new[i] += 0.5 * f[i] * dt
        return step

    @njit(inline="always")
    def step(t, dt, x, dW, params, work, x_new):
        f, g, g_aux, x_aux = work[0], work[1], work[2], work[3]
        d, m = g.shape
        sqrt_dt = math.sqrt(dt)
        for j in range(m):
            dW[j] = three_point(dW[j], sqrt_dt)
        drift(t, x, params, f)
        diffusion(t, x, params, g)
        base = 1.0 - 0.5 * m      # ½ from the R± bracket, −½ per r ≠ j from the U± one
        for i in range(d):
            acc = x[i] + 0.5 * f[i] * dt
            for j in range(m):
                acc += base * g[i, j] * dW[j]
            x_new[i] = acc
        for j in range(m):
            w = dW[j]
            for sign in (1.0, -1.0):
                for i in range(d):
                    x_aux[i] = x[i] + f[i] * dt + sign * g[i, j] * sqrt_dt
                diffusion(t + dt, x_aux, params, g_aux)
                c = w + sign * (w * w - dt) / sqrt_dt
                for i in range(d):
                    x_new[i] += 0.25 * g_aux[i, j] * c
        if m > 1:
            for r in range(m):
                for sign in (1.0, -1.0):
                    for i in range(d):
                        x_aux[i] = x[i] + sign * g[i, r] * sqrt_dt
                    diffusion(t, x_aux, params, g_aux)
                    for j in range(m):
                        if j == r:
                            continue
                        w = dW[j]
                        c = w + sign * (w * dW[r] + two_point_v(dW, m, r, j, dt)) / sqrt_dt
                        for i in range(d):
                            x_new[i] += 0.25 * g_aux[i, j] * c
        for i in range(d):
            acc = x[i] + f[i] * dt
            for j in range(m):
                acc += g[i, j] * dW[j]
            x_aux[i] = acc
        drift(t + dt, x_aux, params, f)
        for i in range(d):
            x_new[i] += 0.5 * f[i] * dt

    return step
