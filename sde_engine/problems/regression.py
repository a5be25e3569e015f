"""Linear and logistic regression with real or Gaussian-approximated minibatch noise (SPEC §1).

On data X (N, p), y (N,), with per-example losses ℓ_i and an optional L2 term,

    linear:    ℓ_i(θ) = ½ (x_iᵀθ − y_i)²,
    logistic:  ℓ_i(θ) = log(1 + e^{x_iᵀθ}) − y_i x_iᵀθ,   y_i ∈ {0, 1},
    f(θ) = (1/N) Σ_i ℓ_i(θ) + (λ/2) ‖θ‖²,
    g_i(θ) = ∇ℓ_i(θ) + λθ = r_i(θ) x_i + λθ,   r_i = x_iᵀθ − y_i  or  s(x_iᵀθ) − y_i.

The oracle draws B indices uniformly *with replacement* and returns the mean of
their g_i, so g = ∇f + σ z with σ = 1/√B and Cov z = Σ(θ), the population
covariance of the per-example gradients:

    Σ(θ) = (1/N) Σ_i (g_i − ∇f)(g_i − ∇f)ᵀ      (the λθ term cancels).

With ``noise="gaussian"`` the oracle is instead the Gaussian approximation
with the same mean and covariance, g = ∇f + σ S(θ) ξ, ξ ~ N(0, I), S = Σ(θ)^{1/2}
(what the SDE assumes; it couples pathwise with the SDE's Brownian motion,
:mod:`sde_engine.coupled`).

``noise_sqrt`` returns the symmetric square root of Σ(θ) (eigen-decomposition,
negative rounding eigenvalues set to 0), ``noise_diag`` its diagonal; the SDE
models therefore use the same Σ(θ) as the discrete runs.

Parameter layout (private; ``params[0]`` = σ = 1/√B)::

    [σ, B, N, p, λ, kind (0 linear, 1 logistic), X (N·p, row-major), y (N)]
"""
import math

import numpy as np
from numba import njit

from solvers.rng import next_normal, next_open_unit

from .. import validation as check
from .base import Problem

_HEAD = 6
KINDS = ("linear", "logistic")


@njit(inline="always")
def _residual(x, params, i):
    """r_i(θ) for example i."""
    n_ex = int(params[2])
    p = int(params[3])
    row = _HEAD + i * p
    z = 0.0
    for j in range(p):
        z += params[row + j] * x[j]
    y = params[_HEAD + n_ex * p + i]
    if params[5] == 0.0:
        return z - y
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z)) - y
    e = math.exp(z)
    return e / (1.0 + e) - y


@njit
def regression_loss(x, params):
    n_ex = int(params[2])
    p = int(params[3])
    total = 0.0
    for i in range(n_ex):
        z = 0.0
        for j in range(p):
            z += params[_HEAD + i * p + j] * x[j]
        y = params[_HEAD + n_ex * p + i]
        if params[5] == 0.0:
            total += 0.5 * (z - y) ** 2
        else:     # softplus(z) − y z, stable for large |z|
            total += max(z, 0.0) + math.log1p(math.exp(-abs(z))) - y * z
    reg = 0.0
    for j in range(p):
        reg += x[j] * x[j]
    return total / n_ex + 0.5 * params[4] * reg


@njit(inline="always")
def regression_grad(x, params, out):
    n_ex = int(params[2])
    p = int(params[3])
    for j in range(p):
        out[j] = 0.0
    for i in range(n_ex):
        r = _residual(x, params, i)
        for j in range(p):
            out[j] += r * params[_HEAD + i * p + j]
    for j in range(p):
        out[j] = out[j] / n_ex + params[4] * x[j]


@njit(inline="always")
def regression_stochastic_grad(x, params, state, out):
    batch = int(params[1])
    n_ex = int(params[2])
    p = int(params[3])
    for j in range(p):
        out[j] = 0.0
    for _ in range(batch):
        i = min(int(next_open_unit(state) * n_ex), n_ex - 1)
        r = _residual(x, params, i)
        for j in range(p):
            out[j] += r * params[_HEAD + i * p + j]
    for j in range(p):
        out[j] = out[j] / batch + params[4] * x[j]


@njit
def regression_gaussian_grad(x, params, state, out):
    """g = ∇f + σ S(θ) ξ with ξ ~ N(0, I): the Gaussian approximation of the minibatch noise."""
    p = int(params[3])
    regression_grad(x, params, out)
    root = np.empty((p, p))
    regression_noise_sqrt(x, params, root)
    for j in range(p):
        xi = params[0] * next_normal(state)
        for i in range(p):
            out[i] += root[i, j] * xi


@njit
def _per_example_cov(x, params):
    """Σ(θ), shape (p, p): population covariance of the r_i x_i."""
    n_ex = int(params[2])
    p = int(params[3])
    G = np.empty((n_ex, p))
    mean = np.zeros(p)
    for i in range(n_ex):
        r = _residual(x, params, i)
        for j in range(p):
            G[i, j] = r * params[_HEAD + i * p + j]
            mean[j] += G[i, j]
    mean /= n_ex
    for i in range(n_ex):
        for j in range(p):
            G[i, j] -= mean[j]
    return (G.T @ G) / n_ex


@njit
def regression_noise_sqrt(x, params, out):
    lam, vec = np.linalg.eigh(_per_example_cov(x, params))
    p = lam.shape[0]
    for k in range(p):
        lam[k] = math.sqrt(max(lam[k], 0.0))
    for i in range(p):
        for j in range(p):
            acc = 0.0
            for k in range(p):
                acc += vec[i, k] * lam[k] * vec[j, k]
            out[i, j] = acc


@njit(inline="always")
def regression_noise_diag(x, params, out):
    n_ex = int(params[2])
    p = int(params[3])
    mean = np.zeros(p)
    for j in range(p):
        out[j] = 0.0
    for i in range(n_ex):
        r = _residual(x, params, i)
        for j in range(p):
            gij = r * params[_HEAD + i * p + j]
            mean[j] += gij
            out[j] += gij * gij
    for j in range(p):
        mean[j] /= n_ex
        out[j] = max(out[j] / n_ex - mean[j] * mean[j], 0.0)


class Regression(Problem):
    """Linear or logistic regression with minibatch noise; build with
    :func:`linear_regression` or :func:`logistic_regression`.

    Extra attributes: ``X`` (N, p), ``y`` (N,), ``batch_size`` B, ``l2`` λ, ``kind``.
    """

    @property
    def batch_size(self):
        return int(self.params[1])

    def with_batch_size(self, batch_size):
        """The same problem with minibatches of ``batch_size`` (σ = 1/√B)."""
        batch_size = check.positive_int(batch_size, "batch_size")
        clone = super().with_noise_scale(1.0 / math.sqrt(batch_size))
        clone.params[1] = batch_size
        return clone

    def with_noise_scale(self, sigma):
        """Only σ = 1/√B with a whole batch size B is a minibatch problem; the
        Gaussian approximation takes any σ (an effective batch size 1/σ²)."""
        sigma = check.positive_float(sigma, "sigma")
        if self.noise == "gaussian":
            clone = super().with_noise_scale(sigma)
            clone.params[1] = sigma ** -2
            return clone
        batch = whole_batch_size(sigma)
        if batch is None:
            raise ValueError(f"`sigma` of a minibatch problem must be 1/√B for a whole batch "
                             f"size B, got {sigma!r}; use with_batch_size(B)")
        return self.with_batch_size(batch)

    def hessian(self, x):
        """∇²f(x), shape (p, p): XᵀWX/N + λI with W = 1 (linear) or s(1−s) (logistic)."""
        x = self._point(x)
        if self.kind == "linear":
            w = np.ones(len(self.y))
        else:
            s = 1.0 / (1.0 + np.exp(-(self.X @ x)))
            w = s * (1.0 - s)
        return (self.X.T * w) @ self.X / len(self.y) + self.l2 * np.eye(self.dim)


def whole_batch_size(sigma):
    """B with σ = 1/√B if that B is a whole number ≥ 1 (to rounding), else None."""
    batch = round(sigma ** -2)
    return batch if batch >= 1 and abs(batch * sigma**2 - 1.0) <= 1e-9 else None


def linear_regression(X, y, batch_size, *, l2=0.0, noise="minibatch"):
    """Least squares f(θ) = (1/2N) ‖Xθ − y‖² + (λ/2)‖θ‖² with minibatch noise.

    Parameters
    ----------
    X : array_like, shape (N, p)
    y : array_like, shape (N,)
    batch_size : int
        B ≥ 1; σ = 1/√B.
    l2 : float
        λ ≥ 0.
    noise : {"minibatch", "gaussian"}
        Real minibatches of B examples drawn with replacement, or the Gaussian
        approximation g = ∇f + σ Σ(θ)^{1/2} ξ with σ = 1/√B (same mean and
        covariance).
    """
    return _build("linear", X, y, batch_size, l2, noise)


def logistic_regression(X, y, batch_size, *, l2=0.0, noise="minibatch"):
    """Logistic regression (labels y ∈ {0, 1}) with minibatch or Gaussian-approximated
    noise; see :func:`linear_regression` and the module doc."""
    return _build("logistic", X, y, batch_size, l2, noise)


NOISES = ("minibatch", "gaussian")


def _build(kind, X, y, batch_size, l2, noise):
    check.choice(noise, "noise", NOISES)
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
        raise ValueError(f"`X` must have shape (N, p) with N ≥ 2, got {X.shape}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"`y` must have shape ({X.shape[0]},) to match `X`, got {y.shape}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise ValueError("`X` and `y` must be finite")
    if kind == "logistic" and not np.all((y == 0.0) | (y == 1.0)):
        raise ValueError(f"`y` must hold labels 0 or 1 for logistic regression, got "
                         f"{np.unique(y)[:10]}")
    batch_size = check.positive_int(batch_size, "batch_size")
    if isinstance(l2, bool) or not np.isscalar(l2) or not np.isfinite(l2) or l2 < 0:
        raise ValueError(f"`l2` must be a finite number ≥ 0, got {l2!r}")
    n_ex, p = X.shape
    params = np.concatenate([[1.0 / math.sqrt(batch_size), batch_size, n_ex, p, float(l2),
                              float(KINDS.index(kind))], X.ravel(), y])
    problem = Regression(
        name=f"{kind}_regression(N={n_ex}, p={p})", dim=p, params=params, noise=noise,
        loss=regression_loss, grad=regression_grad,
        stochastic_grad=regression_stochastic_grad if noise == "minibatch"
        else regression_gaussian_grad, noise_sqrt=regression_noise_sqrt,
        noise_diag=regression_noise_diag)
    problem.X, problem.y, problem.l2, problem.kind = X.copy(), y.copy(), float(l2), kind
    return problem


def synthetic_regression(n_samples, n_features, *, kind="linear", noise=0.5, seed=0):
    """A seeded synthetic data set (X, y) for :func:`linear_regression` or
    :func:`logistic_regression`.

    X has i.i.d. N(0, 1) entries and θ_true ~ N(0, I/p). Linear:
    y = Xθ_true + noise·ξ, ξ ~ N(0, 1); logistic: y ~ Bernoulli(s(Xθ_true / noise))
    (noise = 0 gives y = [Xθ_true > 0]; larger noise, labels closer to coin flips).

    Returns
    -------
    X : ndarray, shape (n_samples, n_features)
    y : ndarray, shape (n_samples,)
    theta_true : ndarray, shape (n_features,)
    """
    n_samples = check.positive_int(n_samples, "n_samples")
    n_features = check.positive_int(n_features, "n_features")
    check.choice(kind, "kind", KINDS)
    if isinstance(noise, bool) or not np.isscalar(noise) or not np.isfinite(noise) or noise < 0:
        raise ValueError(f"`noise` must be a finite number ≥ 0, got {noise!r}")
    seed = check.nonnegative_int(seed, "seed")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features))
    theta_true = rng.standard_normal(n_features) / math.sqrt(n_features)
    z = X @ theta_true
    if kind == "linear":
        y = z + noise * rng.standard_normal(n_samples)
    else:
        if noise == 0:
            y = (z > 0).astype(np.float64)
        else:
            y = (rng.random(n_samples) < 1.0 / (1.0 + np.exp(-z / noise))).astype(np.float64)
    return X, y, theta_true
