"""Milstein scheme for diagonal noise (Itô).

With ``g_i`` depending on ``x_i`` only (the usual diagonal-noise assumption)::

    x_{n+1,i} = x_i + f_i dt + g_i ΔW_i + ½ g_i ∂g_i/∂x_i (ΔW_i² − dt)

Strong order 1, weak order 1. When the SDE supplies ``diffusion_dx`` (the
diagonal of ∂g/∂x, shape (d,)) it is used; otherwise the derivative-free
Runge–Kutta form of Kloeden & Platen (eq. 11.1.5) replaces g ∂g/∂x with the
finite difference (g(x̂) − g(x)) / √dt at the support point x̂ = x + f dt + g √dt.
"""
import math

from numba import njit


def make_step(sde):
    """Build the jitted step ``step(t, dt, x, dW, params, work, x_new)``.

    ``work`` is ``(f, g, g_aux, x_aux)``, all of shape (d,) for diagonal noise.
    """
    drift = sde.drift_jit
    diffusion = sde.diffusion_jit
    diffusion_dx = sde.diffusion_dx_jit
    has_derivative = diffusion_dx is not None

    if has_derivative:
        @njit(inline="always")
        def step(t, dt, x, dW, params, work, x_new):
            f, g, dg = work[0], work[1], work[2]
            drift(t, x, params, f)
            diffusion(t, x, params, g)
            diffusion_dx(t, x, params, dg)
            for i in range(x.shape[0]):
                x_new[i] = (x[i] + f[i] * dt + g[i] * dW[i]
                            + 0.5 * g[i] * dg[i] * (dW[i] * dW[i] - dt))
    else:
        @njit(inline="always")
        def step(t, dt, x, dW, params, work, x_new):
            f, g, g_support, x_support = work[0], work[1], work[2], work[3]
            drift(t, x, params, f)
            diffusion(t, x, params, g)
            sqrt_dt = math.sqrt(dt)
            for i in range(x.shape[0]):
                x_support[i] = x[i] + f[i] * dt + g[i] * sqrt_dt
            diffusion(t, x_support, params, g_support)
            for i in range(x.shape[0]):
                x_new[i] = (x[i] + f[i] * dt + g[i] * dW[i]
                            + 0.5 * (g_support[i] - g[i]) * (dW[i] * dW[i] - dt) / sqrt_dt)
    return step
