"""Scaling rules checked by batch-size sweeps on exact moments (no Monte Carlo).

* :func:`ema_scaling_sweep`: the EMA rule ρ → ρ^κ (Busbridge et al. 2023).
* :func:`momentum_scaling_sweep`: SGD with momentum under
  :func:`sde_engine.models.scaling.momentum_rule` (η → κ²η, 1 − μ → κ(1 − μ))
  against the linear rule with μ kept.

EMA: SGD with a model EMA on a quadratic at batch size B (noise scale σ), learning
rate η and EMA decay ρ, run for the SDE time T = kη. At batch κB the noise
scale is σ/√κ and the linear rule takes η → κη (k → k/κ steps); the EMA rule
takes ρ → ρ^κ. For each κ this study computes the exact first two moments of
θ_T and of the EMA z_T (:func:`sde_engine.analysis.sgd_iterate_moments`),
with the EMA rule and without it (ρ kept), and the exact moments of the SDE
the rule keeps fixed (:func:`sde_engine.models.ema_sde`). No Monte Carlo: the
differences between κ are the rule's own error, not noise.
"""
import numpy as np

from ..analysis import exact_moments, sgd_iterate_moments, sgd_momentum_iterate_moments
from ..models import ema_sde, sgd_momentum_sde, sgd_sde
from ..models.scaling import ema_rule, linear_rule, momentum_rule


def ema_scaling_sweep(problem, theta0, lr, ema_decay, kappas, *, horizon=1.0):
    """Moments of θ_T and z_T of SGD + EMA across batch scalings κ.

    Parameters
    ----------
    problem : Quadratic
        At the base batch size (its ``noise_scale`` is σ).
    theta0 : array_like, shape (d,)
    lr, ema_decay : float
        η and ρ at the base batch size.
    kappas : sequence of float
        Batch scalings κ ≥ 1; ``horizon / (κ lr)`` must be whole.
    horizon : float
        SDE time T.

    Returns
    -------
    dict
        ``kappas``; ``rule`` and ``no_rule``: {``ema_mean``, ``ema_var``,
        ``theta_mean``, ``theta_var``} lists over κ of (d,) lists (variances
        are the diagonals); ``sde``: the same keys for the SDE (one value);
        ``config``.
    """
    kappas = np.asarray(kappas, dtype=float)
    out = {"rule": _empty(), "no_rule": _empty()}
    for kappa in kappas:
        lr_k = linear_rule(kappa, lr=lr)["lr"]
        n_steps = round(horizon / lr_k)
        if abs(n_steps * lr_k - horizon) > 1e-9 * horizon or n_steps < 1:
            raise ValueError(f"`horizon` / (κ·lr) must be a whole number of steps; κ = {kappa:g}, "
                             f"lr = {lr!r}, horizon = {horizon!r}")
        scaled = problem.with_noise_scale(problem.noise_scale / np.sqrt(kappa))
        for key, rho in (("rule", ema_rule(kappa, ema_decay=ema_decay)["ema_decay"]),
                         ("no_rule", ema_decay)):
            _append(out[key], sgd_iterate_moments(scaled, lr_k, theta0, n_steps, rho))
    model = ema_sde(sgd_sde(problem, lr), ema_decay)
    ref = exact_moments(model, model.initial_state(theta0), [horizon])
    sde = dict(theta_mean=ref.theta_mean[0].tolist(),
               theta_var=np.diag(ref.theta_cov[0]).tolist(),
               ema_mean=ref.ema_mean[0].tolist(), ema_var=np.diag(ref.ema_cov[0]).tolist())
    return dict(kappas=kappas.tolist(), **out, sde=sde,
                config=dict(problem=problem.name, noise_scale=problem.noise_scale, lr=lr,
                            ema_decay=ema_decay, horizon=horizon,
                            theta0=np.asarray(theta0).tolist()))


def _empty():
    return dict(theta_mean=[], theta_var=[], ema_mean=[], ema_var=[])


def _append(record, moments):
    record["theta_mean"].append(moments["theta_mean"].tolist())
    record["theta_var"].append(np.diag(moments["theta_cov"]).tolist())
    record["ema_mean"].append(moments["ema_mean"].tolist())
    record["ema_var"].append(np.diag(moments["ema_cov"]).tolist())


def momentum_scaling_sweep(problem, theta0, lr, momentum, kappas, *, horizon=1.0):
    """Moments of θ_T for SGD with momentum across batch scalings κ.

    At batch κB (σ → σ/√κ, k → k/κ steps of SDE time κ√η): ``rule`` uses
    :func:`~sde_engine.models.scaling.momentum_rule`; ``linear`` the linear rule
    with μ kept (η → κη), the rule of the SGD SDE at fixed μ. ``sde``: the
    exact moments of :func:`sde_engine.models.sgd_momentum_sde` at κ = 1.

    Parameters
    ----------
    problem : Quadratic
    theta0 : array_like, shape (d,)
    lr, momentum : float
        η and μ at the base batch size.
    kappas : sequence of float
        κ(1 − μ) < 1; ``horizon / (κ√η)`` must be whole.
    horizon : float

    Returns
    -------
    dict
        ``kappas``; ``rule`` and ``linear``: {``theta_mean``, ``theta_var``}
        lists over κ of (d,) lists; ``sde``: the same keys; ``config``.
    """
    kappas = np.asarray(kappas, dtype=float)
    out = {"rule": dict(theta_mean=[], theta_var=[]), "linear": dict(theta_mean=[], theta_var=[])}
    for kappa in kappas:
        step = kappa * lr**0.5
        n_steps = round(horizon / step)
        if abs(n_steps * step - horizon) > 1e-9 * horizon or n_steps < 1:
            raise ValueError(f"`horizon` / (κ√lr) must be a whole number of steps; κ = {kappa:g}, "
                             f"lr = {lr!r}, horizon = {horizon!r}")
        scaled = problem.with_noise_scale(problem.noise_scale / np.sqrt(kappa))
        rule = momentum_rule(kappa, lr=lr, momentum=momentum)
        for key, (lr_k, mu_k) in (("rule", (rule["lr"], rule["momentum"])),
                                  ("linear", (linear_rule(kappa, lr=lr)["lr"], momentum))):
            m = sgd_momentum_iterate_moments(scaled, lr_k, mu_k, theta0, n_steps)
            out[key]["theta_mean"].append(m["theta_mean"].tolist())
            out[key]["theta_var"].append(np.diag(m["theta_cov"]).tolist())
    model = sgd_momentum_sde(problem, lr, momentum)
    ref = exact_moments(model, model.initial_state(theta0), [horizon])
    return dict(kappas=kappas.tolist(), **out,
                sde=dict(theta_mean=ref.theta_mean[0].tolist(),
                         theta_var=np.diag(ref.theta_cov[0]).tolist()),
                config=dict(problem=problem.name, noise_scale=problem.noise_scale, lr=lr,
                            momentum=momentum, horizon=horizon,
                            theta0=np.asarray(theta0).tolist()))
