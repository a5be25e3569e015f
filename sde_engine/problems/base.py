"""The Problem protocol: a loss, its gradient and a gradient-noise law (SPEC §1).

A :class:`Problem` bundles Numba dispatchers that discrete optimizers, SDE
models, SVAG and the studies call inside compiled loops. The oracle is

    g = ∇f(θ) + σ z,    E z = 0,    Cov z = Σ(θ),

with σ the noise scale (σ = 1/√B for a minibatch of size B drawn with
replacement when Σ is the per-example gradient covariance).

Kernel signatures (all arrays C-contiguous float64, ``params`` of shape (n,))::

    loss(x, params) -> float                     # f(x)
    grad(x, params, out)                         # out (d,): ∇f(x)
    stochastic_grad(x, params, state, out)       # out (d,): one oracle call g = ∇f + σ z,
                                                 #   drawing only from the solvers.rng
                                                 #   stream ``state`` (uint64, shape (4,))
    noise_sqrt(x, params, out)                   # out (d, d): S(x) with S Sᵀ = Σ(x)
                                                 #   (NOT scaled by σ)
    noise_diag(x, params, out)                   # out (d,): diag Σ(x)

Parameter convention (every problem): ``params[0]`` is the noise scale σ; the
rest of the layout is private to the problem. Because of this convention
:meth:`Problem.with_noise_scale` works for every problem and a kernel reads σ
as ``params[0]``.

Noise families (SPEC §1), all z = S ξ with independent coordinates ξ_i and,
except for α-stable noise, Cov z = S Sᵀ = Σ:

* ``"gaussian"``   ξ_i ~ N(0, 1);
* ``"rademacher"`` ξ_i = ±1 with probability ½ (symmetric, kurtosis 1);
* ``"skewed"``     ξ_i = e_i − 1, e_i ~ Exp(1) (centred exponential, E ξ³ = 2);
* ``"student_t"``  ξ_i = T_i √((ν − 2)/ν), T_i Student-t with ν = ``df`` > 2
  degrees of freedom (variance 1; E|ξ|^p finite for p < ν only);
* ``"stable"``     ξ_i = 2^{−1/2} X_i, X_i symmetric α-stable with
  E exp(iuX) = exp(−|u|^α), α = ``alpha`` ∈ (1, 2]
  (:mod:`solvers.heavy_tails`). At α = 2 this is N(0, 1) and Σ the
  covariance; for α < 2 the variance is infinite, Σ = S Sᵀ is a dispersion
  (ξ_i has the scale 2^{−1/2} of N(0, 1) in the S_α sense) and the
  Brownian SDE models refuse the problem (SGD's limit is then the Lévy-driven
  :func:`sde_engine.models.sgd_levy_sde`);
* ``"minibatch"``  g is the mean of B per-example gradients drawn with
  replacement (see :mod:`sde_engine.problems.regression`).

The shape parameter (ν or α; 0 for the others) is a parameter of the
problem next to the family code, so one compiled oracle serves every ν and α.

Your own problem
----------------
Write module-level functions (Numba-compilable, no closures) on *your own*
parameter array ``p`` (float64, shape (k,)), then call
:func:`custom_problem`::

    import numpy as np
    from sde_engine.problems import custom_problem

    def loss(x, p):                  # f(θ) = Σ p0 (θ_i² − 1)² / 4
        return 0.25 * p[0] * np.sum((x * x - 1.0) ** 2)

    def grad(x, p, out):
        out[:] = p[0] * x * (x * x - 1.0)

    def noise_sqrt(x, p, out):       # Σ(θ)^{1/2} = diag(1 + θ²)^{1/2}
        out[:, :] = 0.0
        for i in range(x.shape[0]):
            out[i, i] = np.sqrt(1.0 + x[i] * x[i])

    problem = custom_problem("double_well", dim=3, params=np.array([2.0]),
                             loss=loss, grad=grad, noise_sqrt=noise_sqrt,
                             noise="gaussian", noise_scale=0.5)

The engine compiles the functions with ``numba.njit``, wraps them so that they
receive your ``p``, builds
``stochastic_grad`` for the chosen family from ``grad`` and ``noise_sqrt``
(g = ∇f + σ S ξ), and ``noise_diag`` from ``noise_sqrt`` unless you pass one.
You may instead pass your own ``stochastic_grad(x, p, sigma, state, out)`` that
draws from ``state`` with :mod:`solvers.rng` only (e.g. real minibatch
sampling), with ``noise="custom"``. See :func:`custom_problem` for the rest.
The problem's own ``params`` are ``[σ, family code, noise shape, *p]``.
"""
import math

import numpy as np
from numba import njit

from solvers.heavy_tails import next_stable, next_student_t
from solvers.rng import next_normal, next_open_unit, next_uint64, seed_stream

from .. import validation as check

NOISE_FAMILIES = ("gaussian", "rademacher", "skewed", "student_t", "stable")
FAMILY_CODE = {name: code for code, name in enumerate(NOISE_FAMILIES)}
#: The family that takes each shape argument, and the argument's name.
SHAPE_ARGUMENT = {"student_t": "df", "stable": "alpha"}


class Problem:
    """A loss with a noisy gradient oracle; see the module docstring.

    Attributes
    ----------
    name : str
    dim : int
        d, the dimension of θ.
    params : ndarray, shape (n,)
        Everything the kernels need; ``params[0]`` is σ.
    noise_scale : float
        σ.
    noise : str
        ``"gaussian"``, ``"rademacher"``, ``"skewed"``, ``"student_t"``,
        ``"stable"``, ``"minibatch"`` or ``"custom"`` (a user oracle,
        :func:`custom_problem`).
    noise_shape : float or None
        ν of ``"student_t"``, α of ``"stable"``; None for the other families.
    loss, grad, stochastic_grad, noise_sqrt, noise_diag : numba dispatchers
        The kernels of the protocol.
    constant_noise : bool
        True when Σ does not depend on θ (enables exact moment references).
    diagonal_noise : bool
        True when Σ(θ) is diagonal for every θ (enables diagonal-noise SDEs and
        the Milstein scheme for the SGD SDE).

    Notes
    -----
    Subclasses (or :func:`custom_problem`) supply the kernels; the Python
    helpers below call them on single points and are meant for tests and
    set-up, not for inner loops.
    """

    def __init__(self, *, name, dim, params, noise, loss, grad, stochastic_grad,
                 noise_sqrt, noise_diag, constant_noise=False, diagonal_noise=False,
                 noise_shape=None):
        self.name = name
        self.dim = check.positive_int(dim, "dim")
        self.params = np.ascontiguousarray(params, dtype=np.float64)
        if self.params.ndim != 1 or self.params.size < 1:
            raise ValueError(f"`params` must be a 1-D float array with σ first, got shape "
                             f"{self.params.shape}")
        check.positive_float(self.params[0], "noise_scale")
        self.noise = noise
        self.noise_shape = None if noise_shape is None else float(noise_shape)
        self.loss = loss
        self.grad = grad
        self.stochastic_grad = stochastic_grad
        self.noise_sqrt = noise_sqrt
        self.noise_diag = noise_diag
        self.constant_noise = bool(constant_noise)
        self.diagonal_noise = bool(diagonal_noise)

    @property
    def noise_scale(self):
        """σ, stored as ``params[0]``."""
        return float(self.params[0])

    @property
    def finite_variance(self):
        """False for α-stable noise with α < 2 (infinite variance), else True."""
        return not (self.noise == "stable" and self.noise_shape < 2.0)

    def require_finite_variance(self, model):
        """Refuse, naming ``model``, a problem whose gradient noise has infinite variance.

        The Brownian SDE models match the noise's covariance; α-stable noise
        with α < 2 has none, and SGD's limit is then driven by an α-stable
        Lévy process (:func:`sde_engine.models.sgd_levy_sde`).
        """
        if not self.finite_variance:
            raise ValueError(
                f"{model} is driven by Brownian motion and matches the covariance of the "
                f"gradient noise, but {self!r} has α-stable noise with alpha="
                f"{self.noise_shape:g} < 2 (infinite variance); SGD's limit is then the "
                f"Lévy-driven sgd_levy_sde")

    @property
    def kernels(self):
        """``(loss, grad, stochastic_grad, noise_sqrt, noise_diag)``: a key for compile caches."""
        return (self.loss, self.grad, self.stochastic_grad, self.noise_sqrt, self.noise_diag)

    def with_noise_scale(self, sigma):
        """The same problem at noise scale ``sigma`` (compiled kernels are shared)."""
        sigma = check.positive_float(sigma, "sigma")
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.params = self.params.copy()
        clone.params[0] = sigma
        return clone

    # ---- Python helpers on single points --------------------------------------------
    def _point(self, x):
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.shape != (self.dim,):
            raise ValueError(f"`x` must have shape ({self.dim},), got {x.shape}")
        return x

    def loss_at(self, x):
        """f(x) as a float."""
        return float(self.loss(self._point(x), self.params))

    def grad_at(self, x):
        """∇f(x), shape (d,)."""
        out = np.empty(self.dim)
        self.grad(self._point(x), self.params, out)
        return out

    def noise_sqrt_at(self, x):
        """S(x) with S Sᵀ = Σ(x), shape (d, d)."""
        out = np.empty((self.dim, self.dim))
        self.noise_sqrt(self._point(x), self.params, out)
        return out

    def noise_cov(self, x):
        """Σ(x) = S Sᵀ, shape (d, d) (per-example covariance, not scaled by σ²)."""
        s = self.noise_sqrt_at(x)
        return s @ s.T

    def sample_gradients(self, x, n, seed=0):
        """``n`` independent oracle calls at ``x``, shape (n, d); call i uses stream (seed, i)."""
        n = check.positive_int(n, "n")
        seed = check.nonnegative_int(seed, "seed")
        return _oracle_loop(self.stochastic_grad, self._point(x), self.params, n, seed)

    def __repr__(self):
        shape = ("" if self.noise_shape is None else
                 f", {SHAPE_ARGUMENT[self.noise]}={self.noise_shape:g}")
        return (f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, "
                f"noise={self.noise!r}{shape}, noise_scale={self.noise_scale:g})")


@njit
def _oracle_loop(stochastic_grad, x, params, n, seed):
    out = np.empty((n, x.shape[0]))
    state = np.empty(4, dtype=np.uint64)
    g = np.empty(x.shape[0])
    for i in range(n):
        seed_stream(seed, i, state)
        stochastic_grad(x, params, state, g)
        out[i, :] = g
    return out


# ---- noise draws shared by the synthetic families -----------------------------------
#: 2^{−1/2}: the S_α scale of N(0, 1), which standardises α-stable draws.
_STABLE_SCALE = 2.0 ** -0.5


@njit(inline="always")
def draw_standardized(family, shape, state):
    """One draw of ξ from the family code (see NOISE_FAMILIES) and its shape (ν or α).

    E ξ = 0 and Var ξ = 1 for every family but α-stable noise with α < 2,
    whose ξ has the S_α scale 2^{−1/2} of N(0, 1) (module docstring).
    """
    if family == 0:
        return next_normal(state)
    if family == 1:
        return 1.0 if (next_uint64(state) >> np.uint64(63)) == np.uint64(1) else -1.0
    if family == 2:
        return -math.log(next_open_unit(state)) - 1.0
    return _draw_heavy_tailed(family, shape, state)


@njit
def _draw_heavy_tailed(family, shape, state):
    """Student-t (family 3) or α-stable (4) ξ; a call rather than inlined code: inlined
    into every oracle, these draws made each optimizer kernel compile 60% slower
    (10.6 → 17.2 s for SGD on a quadratic)."""
    if family == 3:
        return next_student_t(state, shape)
    return _STABLE_SCALE * next_stable(state, shape)


def symmetric_sqrt(matrix, name):
    """Symmetric PSD square root V diag(√λ) Vᵀ of a symmetric PSD matrix.

    Eigenvalues in [−tol, 0) with tol = 1e-10·max|λ| are rounding and set to 0;
    anything more negative is refused with a ``ValueError`` naming ``name``.
    Unlike Cholesky this also works for singular Σ.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    check_symmetric_psd(matrix, name)
    lam, vec = np.linalg.eigh(matrix)
    lam = np.clip(lam, 0.0, None)
    return np.ascontiguousarray((vec * np.sqrt(lam)) @ vec.T)


def check_symmetric_psd(matrix, name):
    """Refuse a matrix that is not square, finite, symmetric and PSD."""
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"`{name}` must be a square matrix, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"`{name}` must be finite, got {matrix}")
    scale = max(np.max(np.abs(matrix)), 1e-300)
    if np.max(np.abs(matrix - matrix.T)) > 1e-10 * scale:
        raise ValueError(f"`{name}` must be symmetric, got {matrix}")
    lam = np.linalg.eigvalsh(matrix)
    if lam[0] < -1e-10 * max(np.max(np.abs(lam)), 1e-300):
        raise ValueError(
            f"`{name}` must be positive semi-definite, got smallest eigenvalue {lam[0]:.3g}")


def noise_family(noise, df=None, alpha=None):
    """Validate a synthetic noise family and its shape argument.

    Parameters
    ----------
    noise : str
        One of :data:`NOISE_FAMILIES`.
    df : float, optional
        ν > 2 (finite), required with ``noise="student_t"`` and refused otherwise.
    alpha : float, optional
        α ∈ (1, 2], required with ``noise="stable"`` and refused otherwise.

    Returns
    -------
    code : int
        The family code kernels read.
    shape : float or None
        ν or α; None for the families without one.
    """
    check.choice(noise, "noise", NOISE_FAMILIES)
    given = {"df": df, "alpha": alpha}
    wanted = SHAPE_ARGUMENT.get(noise)
    for name, value in given.items():
        if value is not None and name != wanted:
            raise ValueError(f"`{name}` ({value!r}) applies to noise="
                             f"{next(k for k, v in SHAPE_ARGUMENT.items() if v == name)!r} "
                             f"only, got noise={noise!r}")
    if wanted is None:
        return FAMILY_CODE[noise], None
    value = given[wanted]
    if value is None:
        raise ValueError(f"noise={noise!r} needs `{wanted}` "
                         f"({'degrees of freedom ν > 2' if wanted == 'df' else 'α in (1, 2]'})")
    if wanted == "df":
        shape = check.positive_float(value, "df")
        if not shape > 2.0:
            raise ValueError(f"`df` must be > 2 (finite variance), got {value!r}")
    else:
        shape = check.positive_float(value, "alpha")
        if not 1.0 < shape <= 2.0:
            raise ValueError(f"`alpha` must be in (1, 2], got {value!r}")
    return FAMILY_CODE[noise], shape

