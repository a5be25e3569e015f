"""Richardson (Talay–Tubaro) extrapolation of E φ(X_t) on coupled paths.

A scheme of weak order p has, for smooth φ and coefficients, the error
expansion E φ(X^dt_t) = E φ(X_t) + C dt^p + O(dt^{p+1}) (Talay & Tubaro 1990),
so

    A = (2^p E φ(X^dt) − E φ(X^{2dt})) / (2^p − 1)

has bias O(dt^{p+1}); for a weak order 1 scheme, A = 2 E φ(X^dt) − E φ(X^{2dt})
has weak order 2. Both runs use the same Brownian path per sample path: the
fine one at dt and the coarse one at 2dt on the sums of pairs of its
increments (``simulate``'s ``brownian_dt = dt``). A is then estimated per path,
D_i = (2^p φ(X^dt_i) − φ(X^{2dt}_i)) / (2^p − 1), and its standard error is
that of the mean of the D_i: the coupling keeps Var D close to Var φ (the
difference φ(X^dt) − φ(X^{2dt}) is small pathwise), where independent runs
would have (4^p + 1) / (2^p − 1)² times it (5 for p = 1).

For ``weak2`` the three-point increments are maps of the driving increments
(:mod:`solvers.weak2`), so its runs at dt and 2dt are coupled too, but not
pathwise close: the estimate stays unbiased, its variance is larger.
"""
import warnings
from dataclasses import dataclass
from typing import Optional

import numba
import numpy as np
from numba import njit

from solvers.registry import get_scheme

from . import validation as check
from .sde import SDE
from .simulate import DIVERGENCE_POLICIES, probe_observables, simulate
from .solution import DivergenceReport

#: Paths simulated per batch (bounds the memory of the saved states).
BATCH_PATHS = 2**17


@dataclass
class Extrapolation:
    """Result of :func:`extrapolate`.

    Attributes
    ----------
    t : ndarray, shape (n_save,)
        Save times (on the coarse grid t0 + 2k dt).
    mean, stderr : ndarray, shape (n_save, n_observables)
        The extrapolated estimate of E φ(X_t) and its Monte Carlo standard error.
    fine_mean, coarse_mean : ndarray, shape (n_save, n_observables)
        E φ(X^dt_t) and E φ(X^{2dt}_t) over the same paths.
    fine_bias, fine_bias_stderr : ndarray, shape (n_save, n_observables)
        (E φ(X^dt) − E φ(X^{2dt})) / (2^p − 1), the estimated discretisation
        error of the fine run, and its standard error.
    order : float
        The weak order p used in the combination.
    n_used : int
        Paths that stayed finite in both runs.
    diverged : DivergenceReport
        Paths that became non-finite in either run (step and time of the
        first run in which they did; fine run first).
    values : ndarray, shape (n_save, n_used, n_observables), or None
        The per-path D_i (``keep_paths=True``).
    W : ndarray, shape (n_save, n_used, noise_dim), or None
        The fine run's saved W at the save times (``keep_paths=True``): the
        Brownian path, or for ``weak2`` its three-point walk.
    """

    t: np.ndarray
    mean: np.ndarray
    stderr: np.ndarray
    fine_mean: np.ndarray
    coarse_mean: np.ndarray
    fine_bias: np.ndarray
    fine_bias_stderr: np.ndarray
    order: float
    n_used: int
    diverged: DivergenceReport
    values: Optional[np.ndarray] = None
    W: Optional[np.ndarray] = None
    info: Optional[dict] = None


def extrapolate(sde, x0, t_span, dt, n_paths, *, observables=None, n_observables=None,
                method="euler_maruyama", order=None, seed=0, save_at=None, path_offset=0,
                n_threads=None, on_divergence="raise", brownian_dt=None, keep_paths=False,
                batch_paths=BATCH_PATHS):
    """Richardson-extrapolated E φ(X_t) from coupled runs at dt and 2dt.

    Parameters
    ----------
    sde : SDE or OptimizerSDE
        The equation (an optimizer model's ``.sde`` is used).
    x0 : array_like, shape (dim,) or (n_paths, dim)
    t_span : (float, float)
        (t0, t1); (t1 − t0) / (2 dt) must be a whole number.
    dt : float
        The fine step; the coarse run steps 2dt on the same Brownian path.
    n_paths : int
    observables : callable, optional
        ``observables(t, x, params, out)`` writing ``n_observables`` values φ
        (as in :func:`sde_engine.simulate`); default φ(x) = x.
    n_observables : int
        Required with ``observables``.
    method : str
        A registry scheme (``"euler_maruyama"`` by default).
    order : float, optional
        Weak order p of the combination; default the scheme's declared one.
    seed, path_offset, n_threads
        As in :func:`sde_engine.simulate` (path i uses stream (seed, path_offset + i)
        in both runs, so results do not depend on threads or ``batch_paths``).
    save_at : array_like, optional
        Times on the coarse grid t0 + 2k dt; default (t0, t1).
    on_divergence : {"raise", "warn", "drop"}
        ``"raise"``: a path that becomes non-finite in either run raises
        :class:`~sde_engine.DivergenceError`; otherwise such paths leave the
        estimate (``"warn"`` also warns) and are listed in ``diverged``.
    brownian_dt : float, optional
        Resolution of the shared Brownian path (default dt; it must divide
        dt). One value across several dt couples a whole order study.
    keep_paths : bool
        Also return the per-path D_i and the fine run's W (memory
        n_save × n_paths × (n_observables + noise_dim) floats).
    batch_paths : int
        Paths per pair of ``simulate`` calls.

    Returns
    -------
    Extrapolation

    Examples
    --------
    >>> ex = se.extrapolate(se.gbm(), [1.0], (0.0, 1.0), 2**-4, 10**5)
    >>> ex.mean[-1], ex.stderr[-1]      # E X_1 = e^{0.5} up to O(dt^2)
    """
    if not isinstance(sde, SDE) and isinstance(getattr(sde, "sde", None), SDE):
        sde = sde.sde
    if not isinstance(sde, SDE):
        raise ValueError(f"`sde` must be an SDE or an optimizer model, got {sde!r}")
    scheme = get_scheme(method)
    order = scheme.weak_order if order is None else check.positive_float(order, "order")
    dt = check.positive_float(dt, "dt")
    n_paths = check.positive_int(n_paths, "n_paths")
    path_offset = check.nonnegative_int(path_offset, "path_offset", upper=2**62)
    batch_paths = check.positive_int(batch_paths, "batch_paths")
    t0, t1 = check.time_span(t_span)
    n_coarse = check.steps_on_grid(t1 - t0, 2.0 * dt, name="2*dt")
    _, times = check.save_steps(save_at, t0, t1, 2.0 * dt, n_coarse)
    x0 = check.initial_state(x0, sde.dim, n_paths)
    check.choice(on_divergence, "on_divergence", DIVERGENCE_POLICIES)
    check.flag(keep_paths, "keep_paths")
    if observables is None:
        if n_observables not in (None, 0):
            raise ValueError(f"`n_observables` given ({n_observables!r}) without `observables`")
        obs, n_obs = None, sde.dim
    else:
        n_obs = check.positive_int(n_observables, "n_observables")
        probe_observables(observables, n_obs, t0, x0[0], sde.params)
        obs = _jitted(observables)

    weight = 2.0 ** order
    runs = dict(t_span=(t0, t1), method=method, seed=seed, save_at=times, save_paths=True,
                brownian_dt=dt if brownian_dt is None else brownian_dt, save_brownian=bool(keep_paths), n_threads=n_threads,
                on_divergence="raise" if on_divergence == "raise" else "drop")
    batches = range(0, n_paths, batch_paths)
    stats = np.zeros((2, len(batches), len(times), 3 * n_obs))   # mean, M2 per batch
    counts = np.zeros(len(batches), dtype=np.int64)
    kept_values, kept_w, bad = [], [], []
    for b, start in enumerate(batches):
        size = min(batch_paths, n_paths - start)
        x0_batch = x0[0] if x0.shape[0] == 1 else x0[start:start + size]
        fine = simulate(sde, x0_batch, dt=dt, n_paths=size, path_offset=path_offset + start,
                        **runs)
        coarse = simulate(sde, x0_batch, dt=2.0 * dt, n_paths=size,
                          path_offset=path_offset + start, **runs)
        both = _kept_in_both(fine, coarse, size)
        phi_fine = _observe(obs, times, fine.x[:, both[0]], sde.params, n_obs)
        phi_coarse = _observe(obs, times, coarse.x[:, both[1]], sde.params, n_obs)
        _check_finite(phi_fine, phi_coarse, both[0], path_offset + start)
        values = (weight * phi_fine - phi_coarse) / (weight - 1.0)
        columns = np.concatenate([values, phi_fine - phi_coarse, phi_coarse], axis=2)
        n_b = columns.shape[1]
        counts[b] = n_b
        if n_b:
            stats[0, b] = columns.mean(axis=1)
            stats[1, b] = ((columns - stats[0, b][:, None, :]) ** 2).sum(axis=1)
        bad.append((fine.diverged, coarse.diverged))
        if keep_paths:
            kept_values.append(values)
            kept_w.append(fine.W[:, both[0]])
    mean, m2, n_used = _merge_batches(stats[0], stats[1], counts)
    var = m2 / max(n_used - 1, 1)
    stderr = np.sqrt(var / max(n_used, 1))
    estimate, gap, coarse_mean = np.split(mean, 3, axis=1)
    est_err, gap_err, _ = np.split(stderr, 3, axis=1)
    report = _merged_report(bad)
    if len(report) and on_divergence == "warn":
        warnings.warn(report.describe(), RuntimeWarning, stacklevel=2)
    return Extrapolation(
        t=times, mean=estimate, stderr=est_err, fine_mean=coarse_mean + gap,
        coarse_mean=coarse_mean, fine_bias=gap / (weight - 1.0),
        fine_bias_stderr=gap_err / (weight - 1.0), order=float(order), n_used=int(n_used),
        diverged=report,
        values=np.concatenate(kept_values, axis=1) if keep_paths else None,
        W=np.concatenate(kept_w, axis=1) if keep_paths else None,
        info=dict(method=method, dt=dt, seed=seed, n_paths=n_paths, path_offset=path_offset))


_JITTED = {}


def _jitted(fn):
    """``fn`` as a Numba dispatcher (compiled once per function object)."""
    if isinstance(fn, numba.core.registry.CPUDispatcher):
        return fn
    if fn not in _JITTED:
        _JITTED[fn] = njit(fn)
    return _JITTED[fn]


@njit
def _observe_paths(obs, times, x, params, out):
    for s in range(x.shape[0]):
        for p in range(x.shape[1]):
            obs(times[s], x[s, p], params, out[s, p])


def _observe(obs, times, x, params, n_obs):
    """φ at every saved state: x (n_save, n, dim) -> (n_save, n, n_obs)."""
    if obs is None:
        return x
    out = np.empty(x.shape[:2] + (n_obs,))
    _observe_paths(obs, times, np.ascontiguousarray(x), params, out)
    return out


def _merge_batches(means, m2s, counts):
    """Chan et al.'s pairwise merge of per-batch means and M2, in batch order."""
    mean, m2, n = np.zeros(means.shape[1:]), np.zeros(means.shape[1:]), 0
    for mean_b, m2_b, n_b in zip(means, m2s, counts):
        if n_b:
            delta = mean_b - mean
            mean = mean + delta * n_b / (n + n_b)
            m2 = m2 + m2_b + delta * delta * n * n_b / (n + n_b)
            n += int(n_b)
    return mean, m2, n


def _check_finite(phi_fine, phi_coarse, rows, first_path):
    """Refuse non-finite observables of finite paths (they would poison the mean)."""
    bad = ~np.isfinite(phi_fine) | ~np.isfinite(phi_coarse)
    if np.any(bad):
        s, p, q = np.argwhere(bad)[0]
        raise ValueError(f"`observables` returned a non-finite value {q} at save index {s} "
                         f"on the finite path {first_path + rows[p]}")


def _kept_in_both(fine, coarse, n):
    """Indices into each run's ``x`` of the paths that stayed finite in both."""
    keep = np.ones(n, dtype=bool)
    for sol in (fine, coarse):
        keep[np.asarray(sol.diverged.paths) - sol.info["path_offset"]] = False
    index = []
    for sol in (fine, coarse):
        local = np.arange(n) if sol.kept_paths is None else np.asarray(sol.kept_paths)
        index.append(np.flatnonzero(keep[local]))
    return index


def _merged_report(pairs):
    """One report of the paths that diverged in either run (fine run's entry first)."""
    seen = {}
    for fine, coarse in pairs:
        for report in (fine, coarse):
            for p, s, t in zip(report.paths, report.steps, report.times):
                seen.setdefault(int(p), (s, t))
    paths = np.array(sorted(seen), dtype=np.int64)
    return DivergenceReport(paths=paths,
                            steps=np.array([seen[p][0] for p in paths], dtype=np.int64),
                            times=np.array([seen[p][1] for p in paths], dtype=float))
