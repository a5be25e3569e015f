"""Rosenbrock's function with an optional isotropic gradient noise (SPEC §1, §7).

    f(x, y) = (a − x)² + b (y − x²)²,      minimum 0 at (a, a²),
    g = ∇f + σ ξ,   ξ of the chosen family (Σ = I, S = I).

It is the deterministic test of AdamQLR in SPEC §7 (200 steps from (1, −1) with
Hessian curvature); deterministic runs use ``grad`` (σ only matters for
``stochastic_grad``). Curvature–vector products ``hvp`` and ``gnvp`` (signature
``(x, params, v, out)``) are exact:

    H  = [[2 − 4b(y − x²) + 8b x²,  −4b x], [−4b x, 2b]]
    GN = 2 Jᵀ J = [[2 + 8b x², −4b x], [−4b x, 2b]]   for the residuals
         r = (a − x, √b (y − x²)), f = ‖r‖².

Parameter layout (private; ``params[0]`` = σ as for every problem)::

    [σ, family, a, b, noise shape]
"""
import numpy as np
from numba import njit

from .. import validation as check
from .base import Problem, draw_standardized, noise_family


@njit(inline="always")
def rosenbrock_loss(x, params):
    a = params[2]
    b = params[3]
    r = x[1] - x[0] * x[0]
    return (a - x[0]) ** 2 + b * r * r


@njit(inline="always")
def rosenbrock_grad(x, params, out):
    a = params[2]
    b = params[3]
    r = x[1] - x[0] * x[0]
    out[0] = -2.0 * (a - x[0]) - 4.0 * b * x[0] * r
    out[1] = 2.0 * b * r


@njit(inline="always")
def rosenbrock_stochastic_grad(x, params, state, out):
    rosenbrock_grad(x, params, out)
    family = int(params[1])
    for i in range(2):
        out[i] += params[0] * draw_standardized(family, params[4], state)


@njit(inline="always")
def rosenbrock_noise_sqrt(x, params, out):
    out[0, 0] = 1.0
    out[0, 1] = 0.0
    out[1, 0] = 0.0
    out[1, 1] = 1.0


@njit(inline="always")
def rosenbrock_noise_diag(x, params, out):
    out[0] = 1.0
    out[1] = 1.0


@njit(inline="always")
def rosenbrock_hvp(x, params, v, out):
    """out (2,) = ∇²f(x) v."""
    b = params[3]
    h00 = 2.0 - 4.0 * b * (x[1] - x[0] * x[0]) + 8.0 * b * x[0] * x[0]
    h01 = -4.0 * b * x[0]
    out[0] = h00 * v[0] + h01 * v[1]
    out[1] = h01 * v[0] + 2.0 * b * v[1]


@njit(inline="always")
def rosenbrock_gnvp(x, params, v, out):
    """out (2,) = 2 Jᵀ J v, the Gauss–Newton matrix of f = ‖r‖² times v."""
    b = params[3]
    g00 = 2.0 + 8.0 * b * x[0] * x[0]
    g01 = -4.0 * b * x[0]
    out[0] = g00 * v[0] + g01 * v[1]
    out[1] = g01 * v[0] + 2.0 * b * v[1]


class Rosenbrock(Problem):
    """Rosenbrock's function in 2-D; build with :func:`rosenbrock`.

    Extra attributes: ``a``, ``b``, ``minimizer`` (2,), and the curvature
    products ``hvp``, ``gnvp`` (numba dispatchers ``(x, params, v, out)``).
    """

    def hessian(self, x):
        """∇²f(x), shape (2, 2)."""
        x = self._point(x)
        out = np.empty((2, 2))
        col = np.empty(2)
        for j in range(2):
            rosenbrock_hvp(x, self.params, np.eye(2)[j].copy(), col)
            out[:, j] = col
        return out


def rosenbrock(a=1.0, b=100.0, *, noise="gaussian", noise_scale=1.0, df=None, alpha=None):
    """Build a :class:`Rosenbrock` problem f = (a − x)² + b (y − x²)².

    Parameters
    ----------
    a : float
        Finite; the minimiser is (a, a²).
    b : float
        Positive.
    noise : {"gaussian", "rademacher", "skewed", "student_t", "stable"}
        Family of ξ in the oracle g = ∇f + σ ξ (Σ = I; :mod:`sde_engine.problems.base`).
    noise_scale : float
        σ > 0 (used only by ``stochastic_grad``).
    df, alpha : float, optional
        ν of ``noise="student_t"``, α of ``noise="stable"`` (each required there).
    """
    family, shape = noise_family(noise, df=df, alpha=alpha)
    sigma = check.positive_float(noise_scale, "noise_scale")
    a = float(a)
    if not np.isfinite(a):
        raise ValueError(f"`a` must be finite, got {a!r}")
    b = check.positive_float(b, "b")
    problem = Rosenbrock(
        name=f"rosenbrock(a={a:g}, b={b:g})", dim=2, params=np.array([sigma, family, a, b, shape or 0.0]),
        noise=noise, noise_shape=shape, loss=rosenbrock_loss, grad=rosenbrock_grad,
        stochastic_grad=rosenbrock_stochastic_grad, noise_sqrt=rosenbrock_noise_sqrt,
        noise_diag=rosenbrock_noise_diag, constant_noise=True)
    problem.a = a
    problem.b = b
    problem.minimizer = np.array([a, a * a])
    problem.hvp = rosenbrock_hvp
    problem.gnvp = rosenbrock_gnvp
    return problem
