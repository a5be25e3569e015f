"""``simulate``: the one entry point that integrates an SDE and picks a backend."""
import contextlib
import warnings

import numba
import numpy as np
from numba import njit

from solvers.driver import CHUNK_PATHS, make_driver, merge_chunk_statistics
from solvers.registry import SCHEMES, get_scheme

from . import validation as check
from .solution import DivergenceError, DivergenceReport, Solution

DIVERGENCE_POLICIES = ("raise", "warn", "drop")
BACKENDS = ("numba",)
# Refuse to allocate saved paths beyond this; streaming observables need no such memory.
MAX_SAVED_BYTES = 8 * 2**30


@njit
def _no_observables(t, x, params, out):
    pass


def simulate(sde, x0, t_span, dt, n_paths, *, method="euler_maruyama", seed=0,
             save_at=None, observables=None, n_observables=None, save_paths=None,
             save_brownian=False, brownian_dt=None, on_divergence="raise",
             path_offset=0, n_threads=None, backend="numba"):
    """Simulate ``n_paths`` independent paths of ``sde`` on a fixed step grid.

    Parameters
    ----------
    sde : SDE
        The equation dX = f(t, X) dt + g(t, X) dW.
    x0 : array_like, shape (dim,) or (n_paths, dim)
        Initial state, shared or per path.
    t_span : (float, float)
        Start and end time, t0 < t1.
    dt : float
        Step size; (t1 - t0) / dt must be a whole number.
    n_paths : int
        Number of paths.
    method : str
        A scheme of :data:`solvers.registry.SCHEMES` (``"euler_maruyama"``,
        ``"milstein"``).
    seed : int
        Path ``i`` uses the random stream ``(seed, path_offset + i)``.
    save_at : array_like, optional
        Times on the grid t0 + k dt at which to record; default ``(t0, t1)``.
    observables : callable, optional
        ``observables(t, x, params, out)`` writing ``n_observables`` values;
        their running mean and variance over paths are returned in
        ``Solution.mean``/``Solution.var`` without storing paths.
    n_observables : int
        Length of the ``out`` array ``observables`` fills (required with it).
    save_paths : bool, optional
        Keep every path's states (``Solution.x``). Default: True unless
        observables are given.
    save_brownian : bool
        Also return the Brownian path W at the save times (``Solution.W``).
    brownian_dt : float, optional
        Resolution of the Brownian path: every step's increment is the sum of
        dt / brownian_dt increments of size brownian_dt, drawn in order. Runs
        with different ``dt`` and the same ``brownian_dt`` and ``seed`` share
        one Brownian path (needed for strong-error studies). Default ``dt``.
    on_divergence : {"raise", "warn", "drop"}
        What to do when paths become NaN/inf: raise :class:`DivergenceError`,
        warn and keep them (NaN in ``x``), or drop them from ``x`` silently.
        They never enter ``mean``/``var``; ``Solution.diverged`` lists them.
    path_offset : int
        Index of the first path's stream (for splitting a study in pieces).
    n_threads : int, optional
        Numba threads for this call (default: Numba's setting). Results do
        not depend on it.
    backend : {"numba"}
        Execution backend.

    Returns
    -------
    Solution
        ``t`` (n_save,), ``x`` (n_save, n_paths, dim) or None, ``mean``/``var``
        (n_save, n_observables) or None.
    """
    check.choice(backend, "backend", BACKENDS)
    scheme = get_scheme(method)
    if sde.noise not in scheme.noise_types:
        raise ValueError(
            f"method {method!r} supports {scheme.noise_types} noise, but the SDE has "
            f"{sde.noise!r} noise; use one of "
            f"{[name for name, sch in SCHEMES.items() if sde.noise in sch.noise_types]}")
    dt = check.positive_float(dt, "dt")
    n_paths = check.positive_int(n_paths, "n_paths")
    seed = check.nonnegative_int(seed, "seed")
    path_offset = check.nonnegative_int(path_offset, "path_offset", upper=2**62)
    t0, t1 = check.time_span(t_span)
    n_steps = check.steps_on_grid(t1 - t0, dt)
    if brownian_dt is None:
        refine = 1
    else:
        brownian_dt = check.positive_float(brownian_dt, "brownian_dt")
        refine = check.steps_on_grid(dt, brownian_dt, name="brownian_dt")
    steps, times = check.save_steps(save_at, t0, t1, dt, n_steps)
    x0 = check.initial_state(x0, sde.dim, n_paths)
    check.choice(on_divergence, "on_divergence", DIVERGENCE_POLICIES)
    if observables is None:
        if n_observables not in (None, 0):
            raise ValueError(f"`n_observables` given ({n_observables!r}) without `observables`")
        n_obs, obs_fn = 0, _no_observables
    else:
        n_obs = check.positive_int(n_observables, "n_observables")
        obs_fn = observables
    if save_paths is None:
        save_paths = observables is None
    n_save = len(steps)
    if save_paths and n_save * n_paths * sde.dim * 8 > MAX_SAVED_BYTES:
        raise ValueError(
            f"`save_paths` would store {n_save}x{n_paths}x{sde.dim} float64 "
            f"(> {MAX_SAVED_BYTES / 2**30:.0f} GiB); pass `observables` and save_paths=False")
    if n_threads is not None:
        n_threads = check.positive_int(n_threads, "n_threads")
        if n_threads > numba.config.NUMBA_NUM_THREADS:
            raise ValueError(f"`n_threads` must be at most {numba.config.NUMBA_NUM_THREADS}, "
                             f"got {n_threads}")
    sde.probe(t0, x0[0])
    if n_obs:
        _probe_observables(obs_fn, n_obs, t0, x0[0], sde.params)

    run = _compiled_driver(sde, scheme, obs_fn, n_obs)
    n_chunks = -(-n_paths // CHUNK_PATHS)
    m = sde.noise_dim
    x_out = np.empty((n_save, n_paths if save_paths else 0, sde.dim))
    w_out = np.empty((n_save, n_paths if save_brownian else 0, m))
    chunk_mean = np.zeros((n_chunks, n_save, n_obs))
    chunk_m2 = np.zeros((n_chunks, n_save, n_obs))
    chunk_count = np.zeros(n_chunks, dtype=np.int64)
    diverged_step = np.empty(n_paths, dtype=np.int64)
    with _threads(n_threads):
        run(x0, t0, dt, n_steps, refine, steps, sde.params, seed, path_offset, n_paths, m,
            save_paths, save_brownian, x_out, w_out, chunk_mean, chunk_m2, chunk_count,
            diverged_step)

    bad = np.flatnonzero(diverged_step >= 0)
    report = DivergenceReport(paths=bad + path_offset, steps=diverged_step[bad],
                              times=t0 + diverged_step[bad] * dt)
    kept = None
    if len(report):
        if on_divergence == "raise":
            raise DivergenceError(report)
        if on_divergence == "warn":
            warnings.warn(report.describe(), RuntimeWarning, stacklevel=2)
        else:
            kept = np.flatnonzero(diverged_step < 0)
            x_out = x_out[:, kept] if save_paths else x_out
            w_out = w_out[:, kept] if save_brownian else w_out
    mean = var = None
    n_used = n_paths - len(report)
    if n_obs:
        mean, m2, n_used = merge_chunk_statistics(chunk_mean, chunk_m2, chunk_count)
        var = m2 / max(n_used - 1, 1)
    return Solution(
        t=times, x=x_out if save_paths else None, mean=mean, var=var, n_used=int(n_used),
        diverged=report, W=w_out if save_brownian else None, kept_paths=kept,
        info=dict(method=method, dt=dt, n_steps=n_steps, seed=seed, n_paths=n_paths,
                  path_offset=path_offset, brownian_dt=dt / refine, backend=backend))


def _compiled_driver(sde, scheme, obs_fn, n_obs):
    key = (scheme.name, obs_fn, n_obs)
    if key not in sde._compiled:
        step = scheme.make_step(sde)
        obs_jit = obs_fn if isinstance(obs_fn, numba.core.registry.CPUDispatcher) else njit(obs_fn)
        sde._compiled[key] = make_driver(step, sde.noise == "diagonal", obs_jit, n_obs)
    return sde._compiled[key]


def _probe_observables(fn, n_obs, t, x, params):
    py = getattr(fn, "py_func", fn)
    out = np.full(n_obs, np.nan)
    try:
        py(float(t), np.array(x), params, out)
    except Exception as exc:
        raise ValueError(f"`observables` failed when writing {n_obs} values "
                         f"(`n_observables`): {type(exc).__name__}: {exc}") from exc
    if not np.all(np.isfinite(out)):
        raise ValueError(f"`observables` left some of its {n_obs} outputs (`n_observables`) "
                         f"unset or non-finite at x0: {out}")


@contextlib.contextmanager
def _threads(n):
    if n is None:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(previous)
