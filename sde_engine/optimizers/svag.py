"""SVAG as a simulation scheme: the discrete algorithm on a variance-amplified oracle (SPEC §6).

SVAG needs only gradient samples. It wraps a :class:`~sde_engine.problems.Problem`
into another problem whose oracle is

    g = r1·g1 + r2·g2,    g1, g2 two independent calls of the original oracle,

drawn one after the other from the same per-run stream (so run i of a SVAG
run is reproducible exactly as run i of the plain algorithm). Any optimizer
runner then runs SVAG unchanged: it sees a problem whose noise covariance is
A·σ²Σ with A = r1² + r2² (ℓ for the SGD form, ℓ² for the adaptive form).
When r2 = 0 (ℓ = 1) the second call is skipped, so ℓ = 1 draws the same
random numbers and gives the same numbers as the plain algorithm.

Parameter layout of the wrapped problem (``params[0]`` = σ as for every
problem)::

    [σ·√A, r1, r2, *inner.params]       # inner.params[0] = σ

The SDE side sees the same per-example Σ(θ) (``noise_sqrt``, ``noise_diag``
delegate to the inner problem) at the amplified noise scale σ√A.

Measured convergence (``python -m experiments.svag``, SPEC §4 RMSprop example
at η² = 0.5, T = 2, ℓ ∈ {1, 2, 4, 8}, 0.4–1·10⁶ runs per ℓ, exact SDE moments;
order p means error ∝ ℓ^−p, 95% intervals from
:func:`sde_engine.analysis.fit_order`):

* Gaussian noise: E u order 2.05 [1.94, 2.16]; E θ 1.59 [1.33, 1.85] (ℓ = 8 is
  below the Monte Carlo floor, 7e-4 ± 7e-4; errors 2.7e-2, 9.1e-3, 2.9e-3).
* Skewed (centred exponential) noise: E u 1.94 [1.91, 1.96]; E θ errors
  0.104, 0.074, 0.029, 0.0085 — local slopes 0.5, 1.4, 1.8, so the order
  rises towards 2 (fit over all ℓ: 0.81 [−0.11, 1.73], χ²_red = 191, not yet
  a power law). Skewness costs the plain algorithm half an order (SPEC §4);
  the two-sample mix damps it by (1 + 3(A−1)/2)/A^{3/2} ≈ 1.5/ℓ, consistent
  with the local slope climbing back towards 2.
"""
import functools
import math

import numpy as np
from numba import njit

from .. import validation as check
from ..models.svag import svag_transform
from ..problems.base import Problem
from ..runner import run_optimizer
from .base import Optimizer

_HEAD = 3


@functools.lru_cache(maxsize=None)
def _svag_kernels(loss, grad, stochastic_grad, noise_sqrt, noise_diag):
    """The wrapped dispatchers for one set of inner kernels (compiled once per set)."""

    @njit
    def svag_loss(x, params):
        return loss(x, params[_HEAD:])

    @njit(inline="always")
    def svag_grad(x, params, out):
        grad(x, params[_HEAD:], out)

    @njit(inline="always")
    def svag_stochastic_grad(x, params, state, out):
        inner = params[_HEAD:]
        stochastic_grad(x, inner, state, out)
        r2 = params[2]
        if r2 != 0.0:
            r1 = params[1]
            g2 = np.empty(x.shape[0])
            stochastic_grad(x, inner, state, g2)
            for i in range(x.shape[0]):
                out[i] = r1 * out[i] + r2 * g2[i]

    @njit(inline="always")
    def svag_noise_sqrt(x, params, out):
        noise_sqrt(x, params[_HEAD:], out)

    @njit(inline="always")
    def svag_noise_diag(x, params, out):
        noise_diag(x, params[_HEAD:], out)

    return svag_loss, svag_grad, svag_stochastic_grad, svag_noise_sqrt, svag_noise_diag


class SVAGProblem(Problem):
    """A problem whose oracle is the SVAG mix r1·g1 + r2·g2 of ``inner``'s oracle.

    Attributes
    ----------
    inner : Problem
        The original problem (its σ is ``inner.noise_scale``).
    r1, r2 : float
        Mixing weights (r1 + r2 = 1).
    variance_factor : float
        A = r1² + r2²; ``noise_scale`` is σ·√A.
    """

    @property
    def inner(self):
        return self._inner

    @property
    def r1(self):
        return float(self.params[1])

    @property
    def r2(self):
        return float(self.params[2])

    @property
    def variance_factor(self):
        return self.r1**2 + self.r2**2

    def with_noise_scale(self, sigma):
        """Same mix at amplified noise scale ``sigma``: the inner problem at sigma/√A.

        The inner problem's own ``with_noise_scale`` decides what that means
        (a minibatch problem changes its batch size, and refuses a σ that is
        not 1/√B).
        """
        sigma = check.positive_float(sigma, "sigma")
        inner = self._inner.with_noise_scale(sigma / math.sqrt(self.variance_factor))
        return svag_problem(inner, self.r1, self.r2)

    def hessian(self, x=None):
        return self._inner.hessian(x)


def svag_problem(problem, r1, r2):
    """Wrap ``problem`` so that its oracle returns r1·g1 + r2·g2 (SPEC §6).

    Parameters
    ----------
    problem : Problem
        Any problem of the protocol (synthetic noise or real minibatches).
    r1, r2 : float
        Weights with r1 + r2 = 1, e.g. from :func:`sde_engine.models.svag.svag_transform`.

    Returns
    -------
    SVAGProblem
        ``noise_scale`` = σ·√(r1² + r2²); same loss, gradient and Σ(θ).
    """
    if not isinstance(problem, Problem):
        raise ValueError(f"`problem` must be a Problem, got {type(problem).__name__}")
    problem.require_finite_variance("SVAG (its noise scale σ√(r1² + r2²) adds variances)")
    r1 = float(r1)
    r2 = float(r2)
    if not (math.isfinite(r1) and math.isfinite(r2)) or abs(r1 + r2 - 1.0) > 1e-12:
        raise ValueError(f"`r1` + `r2` must be 1 (the mean gradient is kept), got r1={r1!r}, "
                         f"r2={r2!r}")
    loss, grad, sgrad, sqrt_, diag = _svag_kernels(*problem.kernels)
    amplification = r1 * r1 + r2 * r2
    params = np.concatenate([[problem.noise_scale * math.sqrt(amplification), r1, r2],
                             problem.params])
    wrapped = SVAGProblem(
        name=f"svag({problem.name}, r1={r1:.6g})", dim=problem.dim, params=params,
        noise=f"svag({problem.noise})", loss=loss, grad=grad, stochastic_grad=sgrad,
        noise_sqrt=sqrt_, noise_diag=diag, constant_noise=problem.constant_noise,
        diagonal_noise=problem.diagonal_noise)
    wrapped._inner = problem
    return wrapped


def svag_setting(optimizer, ell):
    """The :class:`~sde_engine.models.svag.SVAGSetting` of ``optimizer`` at ``ell``.

    The SGD form for ``sgd``, the adaptive form for ``rmsprop`` and ``adam``;
    ``bias_correction`` is kept as it is.
    """
    hyper = {k: v for k, v in optimizer.hyperparameters.items() if k != "bias_correction"}
    return svag_transform(optimizer.name, ell, **hyper)


def run_svag(problem, optimizer, ell, theta0, n_steps, n_runs, *, record_steps=None, m0=None,
             v0=None, **run_kwargs):
    """Run SVAG with parameter ℓ for the SDE time of ``n_steps`` steps of ``optimizer``.

    Builds the transformed optimizer (SPEC §6), wraps ``problem`` with
    :func:`svag_problem` and calls :func:`sde_engine.runner.run_optimizer` for
    ``n_steps · F`` steps (F = ℓ for SGD, ℓ² for RMSprop/Adam), recording at
    ``record_steps · F``, which are the same SDE times as ``record_steps`` of
    the original run. Since σ grows by √A (A = r1² + r2²) and the SDE state is
    u = v/σ², the initial second moment is scaled to ``A · v0`` so that u0 is
    the same; m0 is unchanged.

    Parameters
    ----------
    problem : Problem
        Any problem (synthetic noise or real minibatches): only its oracle is used.
    optimizer : Optimizer
        The original algorithm (ℓ = 1), e.g. ``sde_engine.optimizers.adam(lr=...)``.
    ell : float
        ℓ ≥ 1 (ℓ, resp. ℓ², a whole number).
    theta0, n_runs, m0 : as in :func:`~sde_engine.runner.run_optimizer`.
    n_steps : int
        Length in steps of the *original* algorithm.
    record_steps : array_like of int, optional
        Record points in steps of the original algorithm (default ``(0, n_steps)``).
    v0 : float or array_like, optional
        Initial v of the original algorithm (scaled by A here).
    **run_kwargs
        ``seed``, ``observables``, ``n_observables``, ``save_runs``,
        ``on_divergence``, ``run_offset``, ``n_threads`` of ``run_optimizer``.

    Returns
    -------
    Solution
        As ``run_optimizer``'s: ``t`` are SDE times; ``info["steps"]`` the SVAG
        steps; ``info["svag"]`` holds ``ell, r1, r2, step_factor`` and
        ``base_steps`` (the record steps in original units). With ℓ = 1 the
        numbers equal those of ``run_optimizer(problem, optimizer, ...)``.
    """
    if not isinstance(optimizer, Optimizer):
        raise ValueError(f"`optimizer` must be an Optimizer, got {optimizer!r}")
    setting = svag_setting(optimizer, ell)
    n_steps = check.positive_int(n_steps, "n_steps")
    factor = setting.step_factor
    base_steps = np.array([0, n_steps]) if record_steps is None else np.asarray(record_steps)
    if base_steps.dtype.kind not in "iu":
        raise ValueError(f"`record_steps` must be integer steps, got {record_steps!r}")
    if v0 is not None and optimizer.name != "sgd":
        v0 = setting.variance_factor * np.asarray(v0, dtype=np.float64)
    mixed = svag_problem(problem, setting.r1, setting.r2)
    transformed = optimizer.with_hyperparameters(**setting.hyper)
    sol = run_optimizer(mixed, transformed, theta0, n_steps * factor, n_runs,
                        record_steps=base_steps * factor, m0=m0, v0=v0, **run_kwargs)
    sol.info["svag"] = dict(ell=setting.ell, r1=setting.r1, r2=setting.r2, step_factor=factor,
                            base_steps=base_steps.astype(np.int64),
                            base_hyperparameters=dict(optimizer.hyperparameters))
    return sol
