"""Heavy-tailed gradient noise: where the Brownian SDE stops describing SGD, and SignSGD.

Problem: f(θ) = ½ c θ² in one dimension, α-stable gradient noise
g = cθ + σ s ξ (ξ = X/√2, X ~ S_α; the ``"stable"`` family), run for the SDE
time T = nη.

* :func:`sgd_stable_errors` (exact, no Monte Carlo): the weak error in
  E cos(uθ_T) of three descriptions of SGD — the Lévy-driven SGD SDE
  (:func:`sde_engine.models.sgd_levy_sde`), the Brownian SGD SDE that takes
  the dispersion s² for a covariance, and gradient flow — from the closed
  forms of :mod:`sde_engine.analysis.stable_laws`. Started at the minimum,
  θ_T is pure noise and its effect on E cos(uθ_T) is O(η^{α−1}). The Lévy SDE
  misses a relative O(η) of it (weak error O(η^α)); the Brownian SDE's noise
  is O(η), so for α < 2 it misses the effect's leading order and its error is
  O(η^{α−1}), the same order as gradient flow, which ignores the noise.
  ``unexplained`` = |error of the Brownian SDE| / |error of gradient flow| is
  the fraction of SGD's noise effect the Brownian SDE does not describe.
* :func:`sgd_stable_monte_carlo`: the same quantities from the engine's own
  runs (SGD on the runner, the Lévy SDE with the Euler scheme), against the
  closed forms, which checks the simulators.
* :func:`signsgd_stable_orders`: SignSGD against its (Brownian) SDE with the
  drift of the α-stable CDF (:mod:`sde_engine.models.sign_tails`), by
  independent Monte Carlo: sign(g) is bounded, so its weak order stays 1
  whatever α.
"""
import math

import numpy as np
from numba import njit

from .. import validation as check
from ..analysis import fit_order
from ..analysis.stable_laws import (brownian_sde_law, gradient_flow_law, levy_euler_law,
                                    levy_sde_law, sgd_law)
from ..models import sgd_levy_sde, signsgd_sde
from ..optimizers import sgd, signsgd
from ..problems import quadratic
from ..runner import run_optimizer
from ..simulate import simulate

#: The three descriptions of SGD compared with it.
DESCRIPTIONS = ("levy_sde", "brownian_sde", "gradient_flow")


def _steps(horizon, lr):
    n = round(horizon / lr)
    if n < 1 or abs(n * lr - horizon) > 1e-9 * horizon:
        raise ValueError(f"`horizon` / `lr` must be a whole number of steps, got "
                         f"horizon={horizon!r}, lr={lr!r}")
    return n


def sgd_stable_errors(alphas, lrs, *, horizon=1.0, curvature=1.0, noise_scale=1.0,
                      dispersion=1.0, theta0=0.0, u=1.0):
    """Exact weak errors in E cos(uθ_T) of the three descriptions of SGD.

    Parameters
    ----------
    alphas : sequence of float
        α ∈ (1, 2].
    lrs : sequence of float
        η, each dividing ``horizon``.
    horizon, curvature, noise_scale, dispersion, theta0, u : float
        T, c, σ, s², θ₀ and the frequency u of the test function.

    Returns
    -------
    dict
        ``alphas``, ``lrs``, ``config``; for each α (key ``f"{α:g}"``):
        ``sgd`` (E cos(uθ_T) of SGD per η), for each description its
        ``errors`` (SGD minus it, per η), ``local_slopes`` (between
        consecutive η) and ``order`` (slope between the two smallest η), and
        ``unexplained`` (per η; module docstring).
    """
    alphas = [check.positive_float(a, "alpha") for a in alphas]
    lrs = [check.positive_float(lr, "lr") for lr in lrs]
    record = dict(alphas=alphas, lrs=lrs,
                  config=dict(horizon=horizon, curvature=curvature, noise_scale=noise_scale,
                              dispersion=dispersion, theta0=theta0, u=u,
                              test_function="cos(u θ_T)"))
    problem = (curvature, noise_scale, dispersion)
    for alpha in alphas:
        sgd_values, errors = [], {name: [] for name in DESCRIPTIONS}
        for lr in lrs:
            law = sgd_law(*problem, alpha, lr, _steps(horizon, lr), theta0)
            value = float(law.expected_cos(u))
            sgd_values.append(value)
            for name, other in (
                    ("levy_sde", levy_sde_law(*problem, alpha, lr, horizon, theta0)),
                    ("brownian_sde", brownian_sde_law(*problem, lr, horizon, theta0)),
                    ("gradient_flow", gradient_flow_law(curvature, horizon, theta0))):
                errors[name].append(value - float(other.expected_cos(u)))
        entry = {"sgd": sgd_values}
        for name, err in errors.items():
            slopes = _local_slopes(lrs, err)
            entry[name] = dict(errors=err, local_slopes=slopes, order=slopes[-1])
        entry["unexplained"] = list(np.abs(errors["brownian_sde"])
                                    / np.abs(errors["gradient_flow"]))
        record[f"{alpha:g}"] = entry
    return record


def _local_slopes(lrs, errors):
    e, h = np.abs(np.asarray(errors)), np.asarray(lrs)
    return list(np.log(e[1:] / e[:-1]) / np.log(h[1:] / h[:-1]))


@njit
def _cos_observable(k, x, params, out):
    out[0] = math.cos(x[0])


@njit
def _cos_observable_sde(t, x, params, out):
    out[0] = math.cos(x[0])


def sgd_stable_monte_carlo(alpha, lr, *, horizon=1.0, curvature=1.0, noise_scale=1.0,
                           dispersion=1.0, theta0=0.0, n_paths=100_000, substeps=4, seed=0):
    """E cos(θ_T) (u = 1) of SGD and of the Lévy SDE simulated, against their closed forms.

    SGD runs on the engine's runner with α-stable gradient noise; the Lévy
    SDE with the Euler scheme at dt = η/``substeps``, whose exact law
    (:func:`~sde_engine.analysis.stable_laws.levy_euler_law`) is ``sde_exact``
    and the SDE's own is ``sde_limit``.

    Returns
    -------
    dict
        ``sgd``, ``sgd_stderr``, ``sgd_exact``; ``sde``, ``sde_stderr``,
        ``sde_exact``, ``sde_limit``; ``alpha``, ``lr``, ``n_paths``.
    """
    n_steps = _steps(horizon, lr)
    problem = quadratic([curvature], Sigma=[dispersion], noise="stable", alpha=alpha,
                        noise_scale=noise_scale)
    run = run_optimizer(problem, sgd(lr=lr), [theta0], n_steps, n_paths, seed=seed,
                        record_steps=[n_steps], observables=_cos_observable, n_observables=1)
    model = sgd_levy_sde(problem, lr)
    sol = simulate(model, model.initial_state([theta0]), model.t_span(n_steps), lr / substeps,
                   n_paths, seed=seed + 1, save_at=[n_steps * lr],
                   observables=_cos_observable_sde, n_observables=1)
    params = (curvature, noise_scale, dispersion, alpha, lr)
    return dict(
        alpha=alpha, lr=lr, n_paths=n_paths,
        sgd=float(run.mean[-1, 0]), sgd_stderr=float(np.sqrt(run.var[-1, 0] / n_paths)),
        sgd_exact=float(sgd_law(*params, n_steps, theta0).expected_cos(1.0)),
        sde=float(sol.mean[-1, 0]), sde_stderr=float(np.sqrt(sol.var[-1, 0] / n_paths)),
        sde_exact=float(levy_euler_law(*params, lr / substeps, n_steps * substeps,
                                       theta0).expected_cos(1.0)),
        sde_limit=float(levy_sde_law(*params, horizon, theta0).expected_cos(1.0)))


def signsgd_stable_orders(alphas, lrs, *, horizon=1.0, curvature=1.0, noise_scale=1.0,
                          theta0=1.0, n_paths=200_000, substeps=8, seed=0):
    """Weak error of SignSGD against its SDE in E θ_T under α-stable noise.

    Independent Monte Carlo: SignSGD on the runner, its SDE
    (:func:`sde_engine.models.signsgd_sde`, drift −G(∇f/(σs)) with G from the
    α-stable CDF) with Euler–Maruyama at dt = η/``substeps``.

    Returns
    -------
    dict
        ``alphas``, ``lrs``, ``config``; per α (key ``f"{α:g}"``): ``errors``
        and ``stderrs`` per η, and the fitted ``order`` with its ``ci``
        (:func:`sde_engine.analysis.fit_order`).
    """
    record = dict(alphas=list(alphas), lrs=list(lrs),
                  config=dict(horizon=horizon, curvature=curvature, noise_scale=noise_scale,
                              theta0=theta0, n_paths=n_paths, substeps=substeps, seed=seed,
                              test_function="θ_T"))
    for alpha in alphas:
        problem = quadratic([curvature], noise="stable", alpha=alpha, noise_scale=noise_scale)
        errors, stderrs = [], []
        for lr in lrs:
            n_steps = _steps(horizon, lr)
            run = run_optimizer(problem, signsgd(lr=lr), [theta0], n_steps, n_paths, seed=seed,
                                record_steps=[n_steps], observables="theta")
            model = signsgd_sde(problem, lr)
            sol = simulate(model, model.initial_state([theta0]), model.t_span(n_steps),
                           lr / substeps, n_paths, seed=seed + 1, save_at=[n_steps * lr],
                           observables=_theta_observable, n_observables=1)
            errors.append(float(run.mean[-1, 0] - sol.mean[-1, 0]))
            stderrs.append(float(np.sqrt((run.var[-1, 0] + sol.var[-1, 0]) / n_paths)))
        fit = fit_order(lrs, errors, stderrs)
        record[f"{alpha:g}"] = dict(errors=errors, stderrs=stderrs, order=fit.order,
                                    ci=list(fit.ci))
    return record


@njit
def _theta_observable(t, x, params, out):
    out[0] = x[0]
