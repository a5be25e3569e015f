"""The weight-decay scaling rule checked by a batch-size sweep of discrete runs.

RMSpropW on a quadratic, set up in the SDE limit (σ0 = σ η, ε0 = ε η,
c2 = (1 − β)/η², λ0 = λ/η and u0 = v0/σ² fixed). At batch κB the noise scale
is σ/√κ and the square-root rule gives η → √κη, 1 − β → κ(1 − β), ε → ε/√κ,
v0 → v0/κ; the decay either follows the rule (λ → √κλ, which keeps λ0) or is
kept. Each setting runs to the same SDE time T (k → k/κ steps) and is compared
with the exact moments of the SDE the rule keeps (Monte Carlo error bars).
"""
import numpy as np

from ..analysis import exact_moments
from ..models import rmspropw_sde, sqrt_rule
from ..optimizers import rmspropw
from ..problems import quadratic
from ..runner import run_optimizer


def decay_scaling_sweep(lr, kappas, *, sigma0=1.0, eps0=0.1, c2=1.0, decay0=0.5, u0=0.5,
                        theta0=1.0, horizon=1.0, n_runs=40_000, seed=0, n_threads=None):
    """E θ_T of RMSpropW (1-D, f = θ²/2, Gaussian noise) across batch scalings κ.

    Parameters
    ----------
    lr : float
        η at the base batch size; ``horizon / (κ η²)`` must be whole.
    kappas : sequence of float
    sigma0, eps0, c2, decay0, u0 : float
        The SDE constants held fixed at the base batch size.
    theta0, horizon : float
    n_runs, seed, n_threads
        For :func:`sde_engine.run_optimizer` (each setting).

    Returns
    -------
    dict
        ``kappas``; ``rule`` and ``kept``: {``theta_mean``, ``theta_mean_stderr``}
        lists over κ of 1-element lists; ``sde``: {``theta_mean``}; ``config``
        (the layout of :mod:`.exact_scaling`, for
        :func:`sde_engine.plotting.plot_scaling_sweep`).
    """
    sigma = sigma0 / lr
    base = quadratic([1.0], Sigma=[1.0], noise_scale=sigma)
    hyper = dict(lr=lr, beta=1.0 - c2 * lr**2, eps=eps0 / lr)
    model = rmspropw_sde(base, weight_decay=decay0 * lr, **hyper)
    v0 = u0 * sigma**2
    sde_mean = exact_moments(model, model.initial_state([theta0], v0=v0),
                             [horizon]).theta_mean[0, 0]
    out = {key: dict(theta_mean=[], theta_mean_stderr=[]) for key in ("rule", "kept")}
    for kappa in kappas:
        rule = sqrt_rule(kappa, weight_decay=decay0 * lr, **hyper)
        n_steps = round(horizon / rule["lr"] ** 2)
        if abs(n_steps * rule["lr"] ** 2 - horizon) > 1e-9 * horizon:
            raise ValueError(f"`horizon` / (κ lr²) must be a whole number of steps; "
                             f"κ = {kappa:g}, lr = {lr!r}, horizon = {horizon!r}")
        problem = base.with_noise_scale(sigma / np.sqrt(kappa))
        for key, decay in (("rule", rule["weight_decay"]), ("kept", decay0 * lr)):
            opt = rmspropw(lr=rule["lr"], beta=rule["beta"], eps=rule["eps"],
                           weight_decay=decay)
            runs = run_optimizer(problem, opt, [theta0], n_steps, n_runs, seed=seed,
                                 v0=v0 / kappa, observables=["theta"], n_threads=n_threads)
            out[key]["theta_mean"].append([float(runs.mean[-1][0])])
            out[key]["theta_mean_stderr"].append([float(runs.stderr[-1][0])])
    return dict(kappas=list(map(float, kappas)), **out, sde=dict(theta_mean=[float(sde_mean)]),
                config=dict(lr=lr, sigma0=sigma0, eps0=eps0, c2=c2, decay0=decay0, u0=u0,
                            theta0=theta0, horizon=horizon, n_runs=n_runs, seed=seed))
