"""Quadratic loss with constant gradient-noise covariance (SPEC §1).

    f(θ) = ½ (θ − θ*)ᵀ H (θ − θ*),    g = H (θ − θ*) + σ S ξ,    S Sᵀ = Σ,

with ξ of the chosen family (``gaussian``, ``rademacher``, ``skewed``,
``student_t``, ``stable``; see :mod:`sde_engine.problems.base`). H and Σ may each be diagonal (given as a
vector) or full (a symmetric PSD matrix). S = Σ^{1/2} is the *symmetric* square
root V diag(√λ) Vᵀ of Σ (not Cholesky), so it exists for singular Σ and S = Sᵀ.

Parameter layout (private; ``params[0]`` = σ as for every problem)::

    [σ, d, family, noise shape, h_is_diag, s_is_diag, θ* (d), H (d or d²), S (d or d²),
     diag Σ (d)]

matrices row-major.
"""
import numpy as np
from numba import njit

from .. import validation as check
from .base import Problem, draw_standardized, noise_family, symmetric_sqrt, check_symmetric_psd

_HEAD = 6


@njit(inline="always")
def _layout(params):
    d = int(params[1])
    h_diag = params[4] != 0.0
    s_diag = params[5] != 0.0
    o_h = _HEAD + d
    o_s = o_h + (d if h_diag else d * d)
    o_dg = o_s + (d if s_diag else d * d)
    return d, h_diag, s_diag, o_h, o_s, o_dg


@njit(inline="always")
def quadratic_grad(x, params, out):
    d, h_diag, _, o_h, _, _ = _layout(params)
    if h_diag:
        for i in range(d):
            out[i] = params[o_h + i] * (x[i] - params[_HEAD + i])
    else:
        for i in range(d):
            acc = 0.0
            for j in range(d):
                acc += params[o_h + i * d + j] * (x[j] - params[_HEAD + j])
            out[i] = acc


@njit
def quadratic_loss(x, params):
    d = int(params[1])
    g = np.empty(d)
    quadratic_grad(x, params, g)
    total = 0.0
    for i in range(d):
        total += (x[i] - params[_HEAD + i]) * g[i]
    return 0.5 * total


@njit(inline="always")
def quadratic_stochastic_grad(x, params, state, out):
    d, _, s_diag, _, o_s, _ = _layout(params)
    sigma = params[0]
    family = int(params[2])
    shape = params[3]
    quadratic_grad(x, params, out)
    for j in range(d):
        xi = sigma * draw_standardized(family, shape, state)
        if s_diag:
            out[j] += params[o_s + j] * xi
        else:
            for i in range(d):
                out[i] += params[o_s + i * d + j] * xi


@njit(inline="always")
def quadratic_noise_sqrt(x, params, out):
    d, _, s_diag, _, o_s, _ = _layout(params)
    for i in range(d):
        for j in range(d):
            if s_diag:
                out[i, j] = params[o_s + i] if i == j else 0.0
            else:
                out[i, j] = params[o_s + i * d + j]


@njit(inline="always")
def quadratic_noise_diag(x, params, out):
    d, _, _, _, _, o_dg = _layout(params)
    for i in range(d):
        out[i] = params[o_dg + i]


class Quadratic(Problem):
    """f(θ) = ½ (θ − θ*)ᵀ H (θ − θ*) with constant noise covariance Σ.

    Build with :func:`quadratic`. Extra attributes: ``H`` (d, d), ``theta_star``
    (d,), ``Sigma`` (d, d), ``sqrt_Sigma`` (d, d) — all full matrices, for
    references and tests.
    """

    def hessian(self, x=None):
        """∇²f = H, shape (d, d) (constant)."""
        return self.H.copy()


def quadratic(H, theta_star=None, Sigma=None, *, noise="gaussian", noise_scale=1.0, df=None,
              alpha=None):
    """Build a :class:`Quadratic` problem.

    Parameters
    ----------
    H : array_like, shape (d,) or (d, d)
        Hessian: a vector of diagonal entries (each ≥ 0) or a symmetric PSD matrix.
    theta_star : array_like, shape (d,), optional
        Minimiser θ*; default 0.
    Sigma : array_like, shape (d,) or (d, d), optional
        Noise covariance Σ (diagonal entries ≥ 0, or symmetric PSD); default I.
    noise : {"gaussian", "rademacher", "skewed", "student_t", "stable"}
        Family of ξ in z = S ξ (SPEC §1, :mod:`sde_engine.problems.base`).
    noise_scale : float
        σ > 0 in g = ∇f + σ z.
    df : float, optional
        ν > 2, the degrees of freedom of ``noise="student_t"`` (required there).
    alpha : float, optional
        α ∈ (1, 2], the stability index of ``noise="stable"`` (required there);
        for α < 2, Σ is the dispersion of z, not its (infinite) covariance.

    Returns
    -------
    Quadratic
    """
    family, shape = noise_family(noise, df=df, alpha=alpha)
    sigma = check.positive_float(noise_scale, "noise_scale")
    H = _matrix_or_diagonal(H, "H")
    d = H.shape[0]
    theta_star = np.zeros(d) if theta_star is None else np.asarray(theta_star, dtype=np.float64)
    if theta_star.shape != (d,):
        raise ValueError(f"`theta_star` must have shape ({d},) to match `H`, got "
                         f"{theta_star.shape}")
    if not np.all(np.isfinite(theta_star)):
        raise ValueError(f"`theta_star` must be finite, got {theta_star}")
    Sigma = np.ones(d) if Sigma is None else _matrix_or_diagonal(Sigma, "Sigma")
    if Sigma.shape[0] != d:
        raise ValueError(f"`Sigma` must have dimension {d} to match `H`, got shape {Sigma.shape}")

    H_full = np.diag(H) if H.ndim == 1 else H
    Sigma_full = np.diag(Sigma) if Sigma.ndim == 1 else Sigma
    sqrt_full = np.diag(np.sqrt(Sigma)) if Sigma.ndim == 1 else symmetric_sqrt(Sigma, "Sigma")
    sqrt_packed = np.sqrt(Sigma) if Sigma.ndim == 1 else sqrt_full.ravel()
    params = np.concatenate([
        [sigma, d, family, shape or 0.0, float(H.ndim == 1), float(Sigma.ndim == 1)],
        theta_star, H.ravel(), sqrt_packed, np.diag(Sigma_full)])
    problem = Quadratic(
        name=f"quadratic(d={d})", dim=d, params=params, noise=noise,
        loss=quadratic_loss, grad=quadratic_grad, stochastic_grad=quadratic_stochastic_grad,
        noise_sqrt=quadratic_noise_sqrt, noise_diag=quadratic_noise_diag, constant_noise=True,
        diagonal_noise=not np.any(Sigma_full - np.diag(np.diag(Sigma_full))), noise_shape=shape)
    problem.H = H_full.copy()
    problem.theta_star = theta_star.copy()
    problem.Sigma = Sigma_full.copy()
    problem.sqrt_Sigma = sqrt_full
    return problem


def _matrix_or_diagonal(value, name):
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim == 1:
        if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(f"`{name}` given as a diagonal must be non-empty, finite and "
                             f"≥ 0 (positive semi-definite), got {arr}")
        return np.ascontiguousarray(arr)
    if arr.ndim == 2:
        check_symmetric_psd(arr, name)
        return np.ascontiguousarray(0.5 * (arr + arr.T))
    raise ValueError(f"`{name}` must be a vector (diagonal) or a square matrix, got shape "
                     f"{arr.shape}")
