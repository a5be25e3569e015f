"""Dynamics of a discrete optimizer and of its SDE against SDE time (SPEC §3).

The discrete run at learning rate η is recorded at steps k and drawn at SDE
time t = k·h (h = η², or η for SGD); the SDE is simulated with Euler–Maruyama
at a fine step on paths disjoint from the discrete runs. Both are reduced to
the mean and standard deviation over paths of each test function φ.
"""
import math

import numpy as np

from .order_config import GRID_RTOL
from .units import tag_failure
from .weak_order import (PHI_COLUMNS, REFERENCE_OFFSET, build_model, discrete_moments,
                         phi_values, sde_initial_state)


def _grid(n_steps, n_points):
    return np.unique(np.round(np.linspace(0, n_steps, min(n_steps + 1, n_points))).astype(np.int64))


def discrete_curve(cfg, lr, n_paths, n_points=41):
    """Mean and sd of every φ of ``cfg.tests`` over ``n_paths`` discrete runs.

    Returns
    -------
    dict
        ``t`` (n_t,) SDE times k·h, ``steps`` (n_t,), ``mean``/``sd`` (n_t, n_tests).
    """
    steps = _grid(cfg.n_steps(lr), n_points)
    sol = discrete_moments(cfg, lr, 0, n_paths, record_steps=steps)
    cols = [PHI_COLUMNS.index(t) for t in cfg.tests]
    return dict(lr=lr, t=steps * cfg.step_size(lr), steps=steps, mean=sol.mean[:, cols],
                sd=np.sqrt(sol.var[:, cols]), n_paths=sol.n_used)


def sde_steps(cfg, dt, name="dt"):
    """Steps of size ``dt`` in the horizon T of ``cfg``; dt must divide T into whole steps.

    Raises a ValueError naming ``name`` when dt is not positive, is larger
    than T, or leaves a fraction of a step.
    """
    from .. import validation as check

    if not (isinstance(dt, (int, float)) and dt > 0 and math.isfinite(dt)):
        raise ValueError(f"`{name}` must be a finite number > 0, got {dt!r}")
    if dt > cfg.horizon * (1 + GRID_RTOL):
        raise ValueError(f"`{name}` {dt:g} is larger than the horizon {cfg.horizon:g}")
    return check.steps_on_grid(cfg.horizon, dt, name=name)


def sde_curve(cfg, lr, n_paths, n_points=41, dt=None, keep_paths=False):
    """Mean and sd of every φ over ``n_paths`` Euler–Maruyama paths of the SDE at ``lr``.

    A given ``dt`` must divide the horizon T into whole steps (:func:`sde_steps`);
    the default ``cfg.reference_dt()`` runs the whole steps that fit in [0, T].
    Save times are multiples of dt spread over that span. With ``keep_paths``
    the states (n_t, n_paths, state_dim) are returned as ``x``.
    """
    from ..simulate import simulate

    if dt is None:
        dt = cfg.reference_dt()
        n_steps = max(1, int(math.floor(cfg.horizon / dt * (1 + GRID_RTOL))))
    else:
        n_steps = sde_steps(cfg, dt)
    t1 = n_steps * dt
    steps = _grid(n_steps, n_points)
    model = build_model(cfg, lr)
    sol = simulate(model.sde, sde_initial_state(cfg, model, lr), (0.0, t1), dt, n_paths,
                   seed=cfg.seed, path_offset=REFERENCE_OFFSET, save_at=steps * dt,
                   on_divergence="raise")
    d = len(cfg.theta0)
    # (n_t, n_paths, n_tests)
    phi = np.stack([phi_values(cfg, model.problem, x[:, :d]) for x in sol.x])
    out = dict(t=sol.t, mean=phi.mean(axis=1), sd=phi.std(axis=1, ddof=1), n_paths=n_paths,
               dt=dt)
    if keep_paths:
        out["x"] = sol.x
    return out


def trajectory_record(cfg, lrs=None, n_paths=20_000, sde_paths=None, n_points=41):
    """Discrete curves for several η and the SDE curve, for :func:`plotting.plot_trajectories`."""
    lrs = list(lrs or cfg.lrs)
    curves = []
    for lr in lrs:
        try:
            curves.append(discrete_curve(cfg, lr, n_paths, n_points))
        except FloatingPointError as exc:
            raise tag_failure(exc, f"lr {lr:g}")
    try:
        sde = sde_curve(cfg, min(lrs), sde_paths or n_paths, n_points=201)
    except FloatingPointError as exc:
        raise tag_failure(exc, f"the SDE of lr {min(lrs):g}")
    return dict(study="trajectories", config=cfg.as_dict(), tests=list(cfg.tests),
                discrete=curves, sde=sde)


def trajectory_figures(record):
    """One figure per test function: discrete mean ± sd per η, the SDE on top."""
    from .. import plotting
    from .weak_order import TEST_LABELS

    figs = {}
    algo = record["config"]["algorithm"]
    for j, test in enumerate(record["tests"]):
        curves = [dict(label=f"{algo}, η = {c['lr']:g}", t=c["t"], mean=np.asarray(c["mean"])[:, j],
                       band=np.asarray(c["sd"])[:, j]) for c in record["discrete"]]
        s = record["sde"]
        sde = dict(label="SDE (mean ± sd)", t=s["t"], mean=np.asarray(s["mean"])[:, j],
                   band=np.asarray(s["sd"])[:, j])
        figs[test] = plotting.plot_trajectories(
            curves, sde, ylabel=TEST_LABELS.get(test, test),
            title=f"{algo} vs its SDE: mean ± sd of {TEST_LABELS.get(test, test)} over paths")
    return figs
