"""Exact curvature–vector products for AdamQLR on the engine's problems (SPEC §7).

A product has the kernel signature ``product(x, params, v, out)``: ``out`` (d,)
receives C(x) v for C the Hessian or the Gauss–Newton matrix.

* Quadratics and least squares have an affine gradient, so
  C v = ∇f(x + v) − ∇f(x) exactly, and the Hessian equals the Gauss–Newton matrix.
* Linear and logistic regression (:mod:`sde_engine.problems.regression`):
  C v = Xᵀ W X v / N + λ v with W = 1 (linear) or W = diag s(1 − s), s = σ(Xθ)
  (logistic). For the logistic loss with its canonical link the Hessian and the
  Gauss–Newton (Fisher) matrix coincide. The kernel reads the parameter layout
  documented in that module, ``[σ, B, N, p, λ, kind, X (N·p), y (N)]``; a test
  checks it against ``Regression.hessian``.
* Problems may carry their own ``hvp`` / ``gnvp`` (e.g. Rosenbrock); those win.
"""
import math

import numpy as np
from numba import njit

_REG_HEAD = 6


@njit
def regression_curvature_vp(x, params, v, out):
    """out = (Xᵀ W X / N + λ I) v for linear (W = I) or logistic (W = s(1−s)) regression."""
    n_ex = int(params[2])
    p = int(params[3])
    l2 = params[4]
    logistic = params[5] != 0.0
    for j in range(p):
        out[j] = l2 * v[j]
    for i in range(n_ex):
        row = _REG_HEAD + i * p
        xv = 0.0
        z = 0.0
        for j in range(p):
            xv += params[row + j] * v[j]
            z += params[row + j] * x[j]
        w = 1.0
        if logistic:
            s = 1.0 / (1.0 + math.exp(-z)) if z >= 0.0 else math.exp(z) / (1.0 + math.exp(z))
            w = s * (1.0 - s)
        c = w * xv / n_ex
        for j in range(p):
            out[j] += c * params[row + j]


_AFFINE_PRODUCTS = {}


def affine_product(grad):
    """C v = ∇f(x + v) − ∇f(x) for a gradient kernel ``grad`` that is affine in x."""
    if grad not in _AFFINE_PRODUCTS:
        @njit
        def product(x, params, v, out):
            base = np.empty_like(out)
            grad(x, params, base)
            grad(x + v, params, out)
            for i in range(out.shape[0]):
                out[i] -= base[i]
        _AFFINE_PRODUCTS[grad] = product
    return _AFFINE_PRODUCTS[grad]


def product_for(problem, kind):
    """The exact product of ``kind`` ("hessian" or "gauss_newton") for ``problem``, or None."""
    own = getattr(problem, "hvp" if kind == "hessian" else "gnvp", None)
    if own is not None:
        return own
    from ..problems.quadratic import Quadratic
    from ..problems.regression import Regression
    if isinstance(problem, Regression):
        return regression_curvature_vp
    if isinstance(problem, Quadratic):
        return affine_product(problem.grad)
    return None
