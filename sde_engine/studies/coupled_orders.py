"""Weak order of a discrete optimizer against an SDE model, by the coupled estimator.

Each study runs the optimizer at a sweep of step sizes to a fixed SDE time T and
compares it, one Brownian path per run (:func:`sde_engine.coupled_weak_error`),
with the Richardson-extrapolated Euler–Maruyama solution of the model (bias
O(dt²) with dt = h/m). The errors of every test function (θ₁, ‖θ‖², f(θ), θ₁³)
are fitted by :func:`sde_engine.analysis.fit_order` with their Monte Carlo
standard errors. Records (JSON-ready dicts, drawn by
:func:`sde_engine.plotting.plot_coupled_weak_errors`)::

    x, x_label          the step sizes and what they are (η, or h = √η)
    labels              the test functions
    series[name]        error, stderr: (len(x), n_phi) lists; fits: {label: OrderFit dict}
    config, title, wall_s

* :func:`sgd_sde_orders`: SGD against its first-order SDE (weak order 1 in η)
  and the second-order SDE of Li, Tai & E (order 2; ``sgd_sde(..., order=2)``).
* :func:`momentum_sde_order`: SGD with momentum μ = 1 − γh at η = h² against
  its SDE in the momentum timescale (order 1 in h = √η;
  :mod:`sde_engine.models.momentum`).
* :func:`signsgd_sde_order`: SignSGD against its erf-drift SDE, and Signum
  against the SDE derived for it (order 1 in η; :mod:`sde_engine.models.sign`).
"""
import time

import numpy as np

from ..analysis import fit_order
from ..coupled import DEFAULT_LABELS, coupled_weak_error
from ..optimizers import sgd, sgd_momentum, signsgd, signum


def _whole_steps(horizon, steps, name):
    """k = horizon / step for each step size; refused unless whole."""
    steps = np.asarray(steps, dtype=float)
    k = np.rint(horizon / steps).astype(int)
    if np.any(np.abs(k * steps - horizon) > 1e-9 * horizon) or np.any(k < 1):
        raise ValueError(f"`horizon` / {name} must be a whole number of steps for every "
                         f"{name}; horizon={horizon!r}, {name}s={steps.tolist()}")
    return k


def _series(problem, optimizers, n_steps, x, theta0, sde_order=1, **coupled):
    """error, stderr and fits of the coupled weak errors of ``optimizers[i]`` run
    ``n_steps[i]`` steps (x[i] the step size the fits are against)."""
    rows = [coupled_weak_error(problem, opt, theta0, int(k), sde_order=sde_order,
                               **coupled).error()
            for opt, k in zip(optimizers, n_steps)]
    error = np.array([r[0][-1] for r in rows])
    stderr = np.array([r[1][-1] for r in rows])
    return dict(error=error.tolist(), stderr=stderr.tolist(),
                fits={label: fit_order(x, error[:, q], stderr[:, q]).as_dict()
                      for q, label in enumerate(DEFAULT_LABELS)})


def _study(problem, theta0, x, x_label, n_steps, series, title, *, horizon, n_paths, substeps,
           seed, n_threads, **config):
    """The record of the module docstring for ``series`` = [(name, optimizers, sde_order)]."""
    started = time.perf_counter()
    coupled = dict(n_paths=n_paths, substeps=substeps, seed=seed, n_threads=n_threads)
    return dict(x=np.asarray(x, dtype=float).tolist(), x_label=x_label,
                labels=list(DEFAULT_LABELS),
                series={name: _series(problem, optimizers, n_steps, x, theta0, sde_order=order,
                                      **coupled)
                        for name, optimizers, order in series},
                title=title,
                config=dict(problem=problem.name, dim=problem.dim,
                            noise_scale=problem.noise_scale, theta0=np.asarray(theta0).tolist(),
                            horizon=horizon, n_paths=n_paths, substeps=substeps, seed=seed,
                            **config),
                wall_s=time.perf_counter() - started)


def sgd_sde_orders(problem, theta0, lrs, *, horizon=1.0, n_paths=8192, substeps=8, seed=0,
                   n_threads=None):
    """Weak errors at T = ``horizon`` of SGD against its first- and second-order SDEs.

    Parameters
    ----------
    problem : Problem
        With Gaussian noise (the coupled estimator's condition).
    theta0 : array_like, shape (d,)
    lrs : array_like, shape (n,)
        Learning rates η; ``horizon / lr`` must be whole.
    horizon : float
        T = k η.
    n_paths, substeps, seed, n_threads
        As in :func:`sde_engine.coupled_weak_error` (the same paths for both SDEs).

    Returns
    -------
    dict
        The record of the module docstring; series "first-order SDE" and
        "second-order SDE (Li, Tai & E)".
    """
    lrs = np.asarray(lrs, dtype=float)
    n_steps = _whole_steps(horizon, lrs, "lr")
    optimizers = [sgd(lr=lr) for lr in lrs]
    return _study(problem, theta0, lrs, "learning rate η", n_steps,
                  [("first-order SDE", optimizers, 1),
                   ("second-order SDE (Li, Tai & E)", optimizers, 2)],
                  f"SGD vs its SDEs on {problem.name}", horizon=horizon, n_paths=n_paths,
                  substeps=substeps, seed=seed, n_threads=n_threads)


def momentum_sde_order(problem, theta0, hs, *, gamma, horizon=1.0, n_paths=8192, substeps=8,
                       seed=0, n_threads=None):
    """Weak errors at T = ``horizon`` of SGD with momentum against its SDE.

    Step h = √η of the SDE: each run has η = h², μ = 1 − γh and k = T/h steps.

    Parameters
    ----------
    problem : Problem
        With Gaussian noise.
    theta0 : array_like, shape (d,)
    hs : array_like, shape (n,)
        SDE steps h, with γh < 1; ``horizon / h`` must be whole.
    gamma : float
        The friction γ > 0 held fixed.
    horizon, n_paths, substeps, seed, n_threads
        As for :func:`sgd_sde_orders`.

    Returns
    -------
    dict
        The record of the module docstring; one series, "SGD with momentum vs its SDE".
    """
    hs = np.asarray(hs, dtype=float)
    n_steps = _whole_steps(horizon, hs, "h")
    if not gamma > 0 or np.any(gamma * hs >= 1.0):
        raise ValueError(f"`gamma` must be > 0 with gamma·h < 1 for every h (μ = 1 − γh), got "
                         f"gamma={gamma!r}, hs={hs.tolist()}")
    optimizers = [sgd_momentum(lr=h * h, momentum=1.0 - gamma * h) for h in hs]
    return _study(problem, theta0, hs, "SDE step h = √η", n_steps,
                  [("SGD with momentum vs its SDE", optimizers, 1)],
                  f"SGD with momentum (γ = {gamma:g}) vs its SDE on {problem.name}",
                  horizon=horizon, n_paths=n_paths, substeps=substeps, seed=seed,
                  n_threads=n_threads, gamma=gamma)


def signsgd_sde_order(problem, theta0, lrs, *, momenta=(), horizon=1.0, n_paths=8192,
                      substeps=8, seed=0, n_threads=None):
    """Weak errors at T = ``horizon`` of SignSGD (and Signum) against their SDEs, per η.

    Parameters
    ----------
    problem : Problem
        Gaussian noise with diagonal Σ (what the SignSGD and Signum SDEs need).
    theta0, lrs, horizon, n_paths, substeps, seed, n_threads
        As for :func:`sgd_sde_orders`.
    momenta : sequence of float
        β of Signum runs to add, each against its SDE
        (:func:`sde_engine.models.signum_sde`).

    Returns
    -------
    dict
        The record of the module docstring; series "SignSGD vs its SDE" and
        "Signum β = … vs its SDE" per β.
    """
    lrs = np.asarray(lrs, dtype=float)
    n_steps = _whole_steps(horizon, lrs, "lr")
    series = [("SignSGD vs its SDE", [signsgd(lr=lr) for lr in lrs], 1)]
    series += [(f"Signum β = {beta:g} vs its SDE",
                [signum(lr=lr, momentum=beta) for lr in lrs], 1) for beta in momenta]
    title = "SignSGD" + (" and Signum" if len(momenta) else "")
    return _study(problem, theta0, lrs, "learning rate η", n_steps, series,
                  f"{title} vs their SDEs on {problem.name}", horizon=horizon, n_paths=n_paths,
                  substeps=substeps, seed=seed, n_threads=n_threads, momenta=list(momenta))
