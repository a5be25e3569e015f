"""``simulate``: the one entry point that integrates an SDE and picks a backend."""
import contextlib
import math
import warnings

import numba
import numpy as np
from numba import njit

from solvers.driver import run_paths
from solvers.sde_kernel import make_sde_driver
from solvers.registry import SCHEMES, get_scheme

from . import validation as check
from .backends import backend_simulator
from .sde import as_sde
from .user_functions import (as_dispatcher, bounds_checked, sde_function_types, user_code_errors,
                             warn_if_allocating)
from .solution import DivergenceError, DivergenceReport, Solution

DIVERGENCE_POLICIES = ("raise", "warn", "drop")
BACKENDS = ("numba", "torch")
# Refuse to allocate saved paths beyond this; streaming observables need no such memory.
MAX_SAVED_BYTES = 8 * 2**30


@njit
def _no_observables(t, x, params, out):
    pass


def simulate(sde, x0, t_span, dt, n_paths, *, method="euler_maruyama", seed=0,
             save_at=None, observables=None, n_observables=None, save_paths=None,
             save_brownian=False, brownian_dt=None, on_divergence="raise",
             path_offset=0, n_threads=None, backend="numba", device=None, dtype=None,
             check_bounds=False):
    """Simulate ``n_paths`` independent paths of ``sde`` on a fixed step grid.

    Parameters
    ----------
    sde : SDE or OptimizerSDE
        The equation dX = f(t, X) dt + g(t, X) dW, or an optimizer model
        (:mod:`sde_engine.models`), whose ``.sde`` is integrated.
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
        ``"milstein"``, ``"weak2"``: weak order 2 with three-point increments,
        whose saved W is its own three-point walk). An SDE driven by α-stable
        noise (``SDE(levy_alpha=α)``) takes ``"euler_maruyama"`` only: the Euler
        scheme with increments dt^{1/α} S_α, weak order 1 for smooth
        coefficients and test functions (Protter & Talay 1997).
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
        Also return the Brownian path W at the save times (``Solution.W``);
        the Lévy path L for an α-stable driven SDE.
    brownian_dt : float, optional
        Resolution of the Brownian path: every step's increment is the sum of
        dt / brownian_dt increments of size brownian_dt, drawn in order. Runs
        with different ``dt`` and the same ``brownian_dt`` and ``seed`` share
        one Brownian path (needed for strong-error studies). Default ``dt``.
        Not for α-stable driven SDEs.
    on_divergence : {"raise", "warn", "drop"}
        What to do when paths become NaN/inf (or an observable does on a
        finite path): raise :class:`DivergenceError`, warn and keep them (NaN
        in ``x``), or drop them from ``x`` silently. A path that stopped at
        step k enters ``mean``/``var`` at the save times before k only
        (``Solution.counts``); ``Solution.diverged`` lists them. A save time
        with no finite path has NaN statistics and a RuntimeWarning.
    path_offset : int
        Index of the first path's stream (for splitting a study in pieces).
    n_threads : int, optional
        Numba threads for this call (default: Numba's setting). Results do
        not depend on it.
    backend : {"numba", "torch"}
        Execution backend. ``"torch"`` runs the SDE's torch form through
        ``torchsde.sdeint`` batched over paths; what differs (observables as
        torch functions, refused options) is in :mod:`sde_engine.torch.simulate`.
    device : str, optional
        Torch device for ``backend="torch"`` (``"cpu"`` default, ``"cuda"``).
    dtype : {None, "float64", "float32"} or a NumPy or torch dtype
        Precision of the paths (None: float64). float32 is for
        ``backend="torch"`` (as on GPUs); the Numba engine computes in float64
        only, because float32 paths measured no faster there (README,
        "Performance").
    check_bounds : bool
        Compile the user's functions (drift, diffusion, diffusion_dx,
        observables) with Numba's bounds checking, so that an index out of
        bounds at some later t or x raises an ``IndexError`` naming the
        function instead of returning numbers (:mod:`sde_engine.user_functions`).
        A separate compiled driver, cached like the plain one. Measured on an
        Ornstein–Uhlenbeck SDE (dim 1, Euler–Maruyama, one thread, a loaded
        2-core machine): compiling took 13.2–13.4 s of CPU against 10.3–11.5 s
        without the check; 10⁵ paths × 256 steps ran in the same time (0.37 s
        of CPU, within 3%).

    Returns
    -------
    Solution
        ``t`` (n_save,), ``x`` (n_save, n_paths, dim) or None, ``mean``/``var``
        (n_save, n_observables) or None.
    """
    check.choice(backend, "backend", BACKENDS)
    if check.flag(check_bounds, "check_bounds") and backend != "numba":
        raise ValueError(f"`check_bounds` applies to backend='numba' only, got backend={backend!r}")
    precision = check.float_dtype(dtype)
    if backend != "numba":
        return backend_simulator(backend)(
            sde, x0, t_span, dt, n_paths, method=method, seed=seed, save_at=save_at,
            observables=observables, n_observables=n_observables, save_paths=save_paths,
            save_brownian=save_brownian, brownian_dt=brownian_dt, on_divergence=on_divergence,
            path_offset=path_offset, n_threads=n_threads, device=device, dtype=precision)
    if device is not None:
        raise ValueError(f"`device` ({device!r}) applies to backend='torch' only")
    if precision != "float64":
        raise ValueError(f"`dtype` ({dtype!r}): the Numba engine computes in float64 only; "
                         f"float32 paths run on backend='torch'")
    sde = as_sde(sde)
    scheme = get_scheme(method)
    if sde.noise not in scheme.noise_types:
        raise ValueError(
            f"method {method!r} supports {scheme.noise_types} noise, but the SDE has "
            f"{sde.noise!r} noise; use one of "
            f"{[name for name, sch in SCHEMES.items() if sde.noise in sch.noise_types]}")
    levy = sde.levy_alpha is not None
    if levy and not scheme.levy_driven:
        raise ValueError(
            f"method {method!r} assumes Brownian increments, but the SDE is driven by "
            f"α-stable noise (levy_alpha={sde.levy_alpha:g}); use one of "
            f"{[name for name, sch in SCHEMES.items() if sch.levy_driven]}")
    if levy and brownian_dt is not None:
        raise ValueError(f"`brownian_dt` ({brownian_dt!r}) refines a Brownian path; the SDE "
                         f"is driven by α-stable noise (levy_alpha={sde.levy_alpha:g})")
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
    if save_paths:
        check_saved_size("save_paths", n_save, n_paths, sde.dim)
    n_threads = check_n_threads(n_threads)
    sde.probe(t0, x0[0])
    if n_obs:
        probe_observables(obs_fn, n_obs, t0, x0[0], sde.params)

    suspects = sde.user_functions() + (
        [("observables", as_dispatcher(obs_fn), sde_function_types(1))] if n_obs else [])
    run = _compiled_driver(sde, scheme, obs_fn, n_obs, refine > 1, bool(save_brownian),
                           bool(check_bounds), suspects)
    m = sde.noise_dim
    alpha = sde.levy_alpha if levy else 2.0
    setup = (t0, dt, refine, m, math.sqrt(dt / refine),
             2 * m if levy else scheme.draws_per_step(sde), alpha, dt ** (1.0 / alpha))
    with numba_threads(n_threads), user_code_errors(suspects):
        out = run_paths(run, x0, n_steps, steps, sde.params, setup, seed, path_offset,
                        n_paths, n_obs, save_x=bool(save_paths),
                        n_aux=m if save_brownian else 0)
    report = streamed_report(out["diverged"], path_offset, lambda k: t0 + k * dt)
    kept, (x_out, w_out) = enforce_divergence_policy(report, path_offset, on_divergence,
                                                     (out["x"], out["aux"]))
    mean, var = streamed_moments(out, times, stacklevel=2)
    return Solution(
        t=times, x=x_out, mean=mean, var=var, n_used=out["n_used"], counts=out["counts"],
        diverged=report, W=w_out, kept_paths=kept,
        info=dict(method=method, dt=dt, n_steps=n_steps, seed=seed, n_paths=n_paths,
                  path_offset=path_offset, brownian_dt=dt / refine, backend=backend))


def apply_divergence_policy(diverged_step, path_offset, diverged_times, on_divergence,
                            arrays, stacklevel=3):
    """Report non-finite paths and apply ``on_divergence`` to the saved arrays.

    Parameters
    ----------
    diverged_step : ndarray of int, shape (n_paths,)
        First non-finite step of each path, −1 for paths that stayed finite.
    path_offset : int
        Global index of path 0 (reports use global indices).
    diverged_times : ndarray, shape (n_paths,)
        The time of each path's ``diverged_step`` (only diverged entries are read).
    on_divergence : {"raise", "warn", "drop"}
    arrays : tuple of (ndarray of shape (n_save, n_paths, ...) or None)
        Per-path saved arrays; with ``"drop"`` the diverged paths are removed.
    stacklevel : int
        Warning stack level (the caller of the public function).

    Returns
    -------
    report : DivergenceReport
    kept : ndarray of int or None
        Kept path indices (local) after ``"drop"``, else None.
    arrays : tuple
        ``arrays``, with diverged paths removed under ``"drop"``.

    Raises
    ------
    DivergenceError
        When some path diverged and ``on_divergence="raise"``.
    """
    bad = np.flatnonzero(diverged_step >= 0)
    report = DivergenceReport(paths=bad + path_offset, steps=diverged_step[bad],
                              times=diverged_times[bad])
    kept, arrays = enforce_divergence_policy(report, path_offset, on_divergence, arrays,
                                             stacklevel + 1)
    return report, kept, arrays


def enforce_divergence_policy(report, path_offset, on_divergence, arrays, stacklevel=3):
    """Apply ``on_divergence`` to a :class:`DivergenceReport` and the saved arrays.

    Raises :class:`DivergenceError` (``"raise"``), warns (``"warn"``) or removes
    the reported paths from ``arrays`` (``"drop"``) when the report is not
    empty. Returns ``(kept, arrays)`` as :func:`apply_divergence_policy`; ``kept``
    is None when no array is saved (a streaming run allocates nothing per path).
    """
    kept = None
    if len(report):
        if on_divergence == "raise":
            raise DivergenceError(report)
        if on_divergence == "warn":
            warnings.warn(report.describe(), RuntimeWarning, stacklevel=stacklevel)
        elif any(a is not None for a in arrays):
            keep = np.ones(next(a for a in arrays if a is not None).shape[1], dtype=bool)
            keep[report.paths - path_offset] = False
            kept = np.flatnonzero(keep)
            arrays = tuple(None if a is None else a[:, kept] for a in arrays)
    return kept, arrays


def streamed_report(diverged, path_offset, time_of_step, labels=None):
    """The :class:`DivergenceReport` of :func:`solvers.driver.run_paths`'s ``diverged``.

    ``diverged = (paths, steps, observables)`` with local path indices;
    ``time_of_step(steps)`` gives their times.
    """
    paths, steps, observables = diverged
    return DivergenceReport(paths=paths + path_offset, steps=steps, times=time_of_step(steps),
                            observables=observables, labels=labels)


def streamed_moments(out, times, stacklevel=2):
    """Mean and unbiased variance from :func:`solvers.driver.run_paths`'s output.

    ``var = m2 / (count − 1)`` per save time, NaN where fewer than two paths
    counted; ``mean`` is NaN where none did, with a RuntimeWarning naming those
    times (``times``: the save times). Returns ``(None, None)`` without observables.
    """
    if out["mean"] is None:
        return None, None
    counts = out["counts"][:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(counts >= 2, out["m2"] / (counts - 1), np.nan)
    empty = out["counts"] == 0
    if np.any(empty):
        shown = ", ".join(f"{t:.6g}" for t in times[empty][:5])
        more = f" and {empty.sum() - 5} more" if empty.sum() > 5 else ""
        warnings.warn(f"no path was usable (finite, with finite observables) at {empty.sum()} "
                      f"save time(s) (t = {shown}{more}): "
                      f"mean and var are NaN there", RuntimeWarning, stacklevel=stacklevel + 1)
    # finite values whose sums overflow float64 (e.g. x² near 1e300)
    overflow = ~np.isfinite(out["mean"]) & (counts >= 1) | ~np.isfinite(var) & (counts >= 2)
    if np.any(overflow):
        s, q = np.argwhere(overflow)[0]
        warnings.warn(f"mean/var overflowed float64 at {overflow.sum()} (save time, observable) "
                      f"pair(s), first at t = {times[s]:.6g}, observable {q}: the observables "
                      f"are finite but too large to average", RuntimeWarning,
                      stacklevel=stacklevel + 1)
    return out["mean"], var


def _compiled_driver(sde, scheme, obs_fn, n_obs, refined, save_w, check_bounds, suspects):
    """The compiled path loop for this SDE and these options (built once, then reused);
    building it first warns about user functions that allocate per call."""
    stable = sde.levy_alpha is not None
    key = (scheme.name, obs_fn, n_obs, refined, save_w, check_bounds, stable)
    if key not in sde._compiled:
        warn_if_allocating(suspects, stacklevel=4)
        step = scheme.make_step(sde.bounds_checked() if check_bounds else sde)
        obs_jit = obs_fn if isinstance(obs_fn, numba.core.registry.CPUDispatcher) else njit(obs_fn)
        if check_bounds and n_obs:
            obs_jit = bounds_checked(obs_jit, "observables", f"({n_obs},) (`n_observables`)")
        sde._compiled[key] = make_sde_driver(step, sde.noise == "diagonal", obs_jit, refined,
                                             save_w, stable)
    return sde._compiled[key]


def probe_observables(fn, n_obs, t, x, params):
    """Call the Python ``fn(t, x, params, out)`` once; refuse failures or unset outputs."""
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


def check_saved_size(name, n_save, n_paths, dim):
    """Refuse to keep n_save x n_paths x dim float64 states above MAX_SAVED_BYTES."""
    if n_save * n_paths * dim * 8 > MAX_SAVED_BYTES:
        raise ValueError(
            f"`{name}` would store {n_save}x{n_paths}x{dim} float64 "
            f"(> {MAX_SAVED_BYTES / 2**30:.0f} GiB); pass `observables` and {name}=False")


def check_n_threads(n_threads):
    """``None`` (Numba's setting) or a thread count within Numba's pool."""
    if n_threads is not None:
        n_threads = check.positive_int(n_threads, "n_threads")
        if n_threads > numba.config.NUMBA_NUM_THREADS:
            raise ValueError(f"`n_threads` must be at most {numba.config.NUMBA_NUM_THREADS}, "
                             f"got {n_threads}")
    return n_threads


@contextlib.contextmanager
def numba_threads(n):
    """Run the block with ``n`` Numba threads (``None``: leave the setting alone)."""
    if n is None:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(previous)
