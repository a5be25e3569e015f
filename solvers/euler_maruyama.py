"""Euler–Maruyama: x_{n+1} = x_n + f(t_n, x_n) dt + g(t_n, x_n) ΔW_n.

Strong order 1/2, weak order 1. Diagonal noise: ``g`` has shape (d,) and the
product is coordinate-wise; general noise: ``g`` has shape (d, m) and the
product is a matrix-vector product with ΔW of shape (m,).
"""
from numba import njit


def make_step(sde):
    """Build the jitted step ``step(t, dt, x, dW, params, work, x_new)``.

    ``work`` is the tuple ``(f, g, g_aux, x_aux)`` of scratch arrays made by the
    driver: ``f`` and ``x_aux`` of shape (d,), ``g`` and ``g_aux`` of the
    diffusion's shape.
    """
    drift = sde.drift_jit
    diffusion = sde.diffusion_jit
    diagonal = sde.noise == "diagonal"

    @njit(inline="always")
    def step(t, dt, x, dW, params, work, x_new):
        f, g = work[0], work[1]
        drift(t, x, params, f)
        diffusion(t, x, params, g)
        d = x.shape[0]
        if diagonal:
            for i in range(d):
                x_new[i] = x[i] + f[i] * dt + g[i] * dW[i]
        else:
            m = dW.shape[0]
            for i in range(d):
                acc = x[i] + f[i] * dt
                for j in range(m):
                    acc += g[i, j] * dW[j]
                x_new[i] = acc

    return step
