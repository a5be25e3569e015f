"""SVAG converges to the SDE as ℓ grows: weak errors against exact moments (SPEC §6).

On a quadratic with constant Σ the RMSprop/Adam/SGD SDE has exact moments
(:func:`sde_engine.analysis.moments.exact_moments`). For each ℓ the study runs
SVAG (:func:`sde_engine.optimizers.svag.run_svag`) for the SDE time of
``n_steps`` steps of the original optimizer and measures, at that time T,

    e_θ  = mean θ − E θ(T),      e_θ² = mean θ² − E θ²(T),
    e_u  = mean v/(A σ²) − u(T)  (RMSprop/Adam; A σ² is SVAG's noise variance),

each with its Monte Carlo standard error √(var/n). The order in ℓ is fitted
with :func:`sde_engine.analysis.fit_order` against h = lr/ℓ (the effective
learning rate of the η → 0 family SVAG walks along): a slope p means
error ∝ ℓ^{−p}. Points within 3 standard errors of zero are excluded and
flagged by the fit.
"""
import time

import numpy as np

from .. import validation as check
from ..analysis import fit_order
from ..analysis.moments import exact_moments
from ..models import (adam_sde, adamw_sde, rmsprop_sde, rmspropw_sde, sgd_momentum_sde,
                      sgd_sde, signsgd_sde, signum_sde)
from ..optimizers.base import Optimizer
from ..optimizers.svag import run_svag, svag_setting

_MODELS = {"sgd": sgd_sde, "sgd_momentum": sgd_momentum_sde, "signsgd": signsgd_sde,
           "signum": signum_sde,
           "rmsprop": rmsprop_sde, "adam": adam_sde, "rmspropw": rmspropw_sde,
           "adamw": adamw_sde}


def reference_model(problem, optimizer, sde_order=1):
    """The SDE model (:mod:`sde_engine.models`) of ``optimizer`` on ``problem``.

    ``sde_order=2`` gives SGD's second-order SDE (``sgd_sde(..., order=2)``); the
    other optimizers have only first-order models.
    """
    if isinstance(sde_order, bool) or sde_order not in (1, 2) \
            or (sde_order == 2 and optimizer.name != "sgd"):
        raise ValueError(f"`sde_order` must be 1, or 2 for SGD; got {sde_order!r} for "
                         f"{optimizer.name}")
    if sde_order == 2:
        return _MODELS["sgd"](problem, **optimizer.hyperparameters, order=2)
    return _MODELS[optimizer.name](problem, **optimizer.hyperparameters)


def svag_convergence(problem, optimizer, theta0, n_steps, *, ells=(1, 2, 4, 8), n_runs=100_000,
                     v0=None, seed=0, level=0.95, n_threads=None, progress=None):
    """Weak error of SVAG at T = n_steps · h against the exact SDE moments, for each ℓ.

    Parameters
    ----------
    problem : Quadratic
        From :func:`sde_engine.problems.quadratic` (constant Σ; any noise family).
    optimizer : Optimizer
        The original algorithm (ℓ = 1); its SDE is the reference.
    theta0 : array_like, shape (d,)
    n_steps : int
        Steps of the original algorithm; T = n_steps · lr^p.
    ells : sequence of float
        SVAG parameters ℓ ≥ 1.
    n_runs : int or sequence of int
        Runs per ℓ (one number for all, or one per ℓ).
    v0 : float or array_like of shape (d,), optional
        Initial v of the original algorithm (u0 = v0/σ²).
    seed : int
    level : float
        Confidence level of the fitted orders.
    n_threads : int, optional
    progress : callable, optional
        Called with a one-line message after each ℓ.

    Returns
    -------
    dict
        ``T``, ``ells``, ``h`` (lr/ℓ), ``n_runs``, per observable (``theta``,
        ``theta_sq``, ``u``; coordinate 0) the ``error`` and ``stderr`` arrays,
        the ``fit`` over all ℓ and (with ≥ 3 values) ``fit_tail`` without the
        smallest ℓ (:meth:`OrderFit.as_dict`), the ``reference`` values, and
        ``seconds`` per ℓ.
    """
    if not isinstance(optimizer, Optimizer):
        raise ValueError(f"`optimizer` must be an Optimizer, got {optimizer!r}")
    n_steps = check.positive_int(n_steps, "n_steps")
    ells = [float(e) for e in ells]
    if len(ells) < 2:
        raise ValueError(f"`ells` must hold at least 2 values to fit an order, got {ells}")
    settings = [svag_setting(optimizer, ell) for ell in ells]    # validates every ℓ first
    runs = [n_runs] * len(ells) if np.ndim(n_runs) == 0 else list(n_runs)
    if len(runs) != len(ells):
        raise ValueError(f"`n_runs` must be one number or one per ℓ ({len(ells)}), got {n_runs}")
    runs = [check.positive_int(n, "n_runs") for n in runs]
    model = reference_model(problem, optimizer)
    T = float(model.time_of_step(np.int64(n_steps)))
    x0 = model.initial_state(theta0) if optimizer.name == "sgd" else \
        model.initial_state(theta0, v0=np.broadcast_to(0.0 if v0 is None else v0, (problem.dim,)))
    ref = exact_moments(model, x0, [T])
    reference = {"theta": ref.theta_mean[-1, 0], "theta_sq": ref.theta_sq[-1, 0]}
    names = ["theta", "theta_sq"]
    if optimizer.name != "sgd":
        reference["u"] = ref.u[-1, 0]
        names.append("v")
    d = problem.dim
    sigma2 = problem.noise_scale**2
    errors = {k: [] for k in reference}
    stderrs = {k: [] for k in reference}
    seconds = []
    for ell, setting, n in zip(ells, settings, runs):
        start = time.perf_counter()
        sol = run_svag(problem, optimizer, ell, theta0, n_steps, n, v0=v0, seed=seed,
                       observables=names, on_divergence="raise", n_threads=n_threads)
        seconds.append(time.perf_counter() - start)
        mean, se = sol.mean[-1], np.sqrt(sol.var[-1] / sol.n_used)
        columns = {"theta": 0, "theta_sq": d}
        scale = {"theta": 1.0, "theta_sq": 1.0}
        if "u" in reference:
            columns["u"] = 2 * d
            scale["u"] = 1.0 / (setting.variance_factor * sigma2)
        for key, col in columns.items():
            errors[key].append(mean[col] * scale[key] - reference[key])
            stderrs[key].append(se[col] * scale[key])
        if progress is not None:
            progress(f"ell={ell:g}: {n} runs x {n_steps * setting.step_factor} steps, "
                     f"error theta {errors['theta'][-1]:+.3e} ± {stderrs['theta'][-1]:.1e} "
                     f"({seconds[-1]:.1f} s)")
    h = optimizer.lr / np.array(ells)
    out = {"T": T, "ells": ells, "h": h, "n_runs": runs, "seconds": seconds,
           "reference": reference, "optimizer": repr(optimizer), "noise": problem.noise,
           "noise_scale": problem.noise_scale, "n_steps": n_steps}
    for key in reference:
        e, s = np.array(errors[key]), np.array(stderrs[key])
        fit = fit_order(h, e, s, level=level)
        out[key] = {"error": e, "stderr": s, "fit": fit.as_dict()}
        if len(ells) >= 3:     # the smallest ℓ is often pre-asymptotic: fit without it too
            out[key]["fit_tail"] = fit_order(h[1:], e[1:], s[1:], level=level).as_dict()
    return out


def spec_rmsprop_example(eta, *, noise="gaussian", sigma0=1.0, eps0=0.1, c2=1.0):
    """The SPEC §4 RMSprop example at learning rate ``eta``: (problem, optimizer, v0).

    f = θ²/2, Σ = 1, σ = σ0/η, eps = ε0/η, β = 1 − c2 η², u0 = 0.5 (v0 = σ² u0).
    """
    from ..optimizers import rmsprop
    from ..problems import quadratic

    eta = check.positive_float(eta, "eta")
    sigma = sigma0 / eta
    problem = quadratic([1.0], Sigma=[1.0], noise=noise, noise_scale=sigma)
    optimizer = rmsprop(lr=eta, beta=1.0 - c2 * eta**2, eps=eps0 / eta)
    return problem, optimizer, 0.5 * sigma**2


def steps_for(T, eta, exponent=2):
    """Number of steps of size eta**exponent in T; T must be a whole number of them."""
    return check.steps_on_grid(check.positive_float(T, "T"), eta**exponent, name="lr")


__all__ = ["svag_convergence", "reference_model", "spec_rmsprop_example", "steps_for"]
