"""``expectation``: E φ(X_T) of an SDE to a requested accuracy, by multilevel or plain Monte Carlo.

Multilevel Monte Carlo (Giles, Operations Research 2008; Acta Numerica 2015)
writes the finest level's expectation as a telescoping sum

    E P_L = E P_0 + Σ_{ℓ=1}^{L} E [P_ℓ − P_{ℓ−1}],   P_ℓ = φ(X_T) with step T / (M0 2^ℓ),

and estimates each term with its own samples of coupled pairs
(:mod:`sde_engine.studies.mlmc`). Since the pairs share a Brownian path, the
variance V_ℓ of Y_ℓ = P_ℓ − P_{ℓ−1} falls like 2^{−βℓ} (β = 1 for
Euler–Maruyama), and most samples are taken on the cheap coarse levels.

The requested accuracy is a root-mean-square error tol = max(atol, rtol·|estimate|)
(recomputed from the current estimate as samples come in), split as

    variance Σ V_ℓ / N_ℓ ≤ (1 − θ) tol²,    bias |E P_L − E φ(X_T)| ≤ √θ tol,   θ = 1/2.

* Samples per level minimise the cost Σ N_ℓ C_ℓ under the variance bound
  (Lagrange multiplier): N_ℓ = ⌈ √(V_ℓ/C_ℓ) Σ_k √(V_k C_k) / ((1 − θ) tol²) ⌉,
  with C_ℓ the steps per sample (:func:`optimal_samples`).
* Levels 0, 1, 2 start with ``n_initial`` samples each. When the samples
  are (nearly) what the formula asks, the bias is estimated from the last
  levels, each extrapolated to level L with the weak rate α:
  max_j |E Y_{L−j}| 2^{−jα} / (2^α − 1), j = 0, 1, 2 (:func:`bias_estimate`);
  above √θ tol a level is added (its V extrapolated with the rate β).
* α, β, γ are least-squares slopes of −log2 |E Y_ℓ|, −log2 V_ℓ and log2 C_ℓ
  over ℓ ≥ 1 (α, β at least 1/2), as in Giles' ``mlmc_test``; the estimates
  of E Y_ℓ and V_ℓ used for the decisions are kept from collapsing on deep
  levels by the same rates (a level's value is at least half of its
  predecessor's, scaled by 2^{−α} or 2^{−β}).
* Plain Monte Carlo (``method="mc"``) takes N = ⌈V[P_L] / ((1 − θ) tol²)⌉
  samples at one level L: the given ``level``, or the first level whose bias
  estimate from coupled pilot samples is below √θ tol (pilot samples sized
  so that their standard error is a quarter of that threshold; their cost
  is included).

Costs are counted in steps (fine plus coarse per sample), so the decisions
and the numbers do not depend on the machine's speed; measured seconds are
reported beside them.
"""
import math
import numbers
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from solvers.registry import SCHEMES, get_scheme

from . import validation as check
from .simulate import check_n_threads, numba_threads
from .studies.mlmc import (COLUMNS, MAX_LEVEL, LevelJob, LevelSamples, phi_arity,
                           sample_cost)

METHODS = ("mlmc", "mc")
#: Share θ of the mean-square error given to the bias (the rest to the variance).
THETA = 0.5
#: Levels that start an MLMC run: 0 .. FIRST_LEVELS − 1.
FIRST_LEVELS = 3
#: A level's samples count as "what the formula asks" within this fraction.
SETTLED = 0.01
#: Kurtosis above which the variance estimates of a level are not trusted (Giles).
KURTOSIS_WARNING = 100.0
Y, PF, PC, Y3, Y4 = range(len(COLUMNS))


@dataclass
class ExpectationResult:
    """What :func:`expectation` returns.

    Attributes
    ----------
    estimate : float
        Estimate of E φ(X_T).
    ci95 : (float, float)
        estimate ± 1.96 stderr: the statistical error only (see ``bias``).
    stderr : float
        √(Σ V_ℓ / N_ℓ).
    bias : float
        Estimated |bias| of the finest level (NaN for ``method="mc"`` at a
        given ``level``: not estimated).
    rmse : float
        √(stderr² + bias²), the estimated root-mean-square error.
    tol : float
        The RMSE asked for: max(atol, rtol·|estimate|).
    method : {"mlmc", "mc"}
    levels : ndarray of int, shape (n_levels,)
        Levels ℓ of the estimate.
    steps : ndarray of int, shape (n_levels,)
        Fine steps M0 2^ℓ per path of each level.
    n_per_level : ndarray of int, shape (n_levels,)
        Samples N_ℓ.
    cost : float
        Steps taken in all (fine and coarse, pilot samples included).
    cost_per_level : ndarray, shape (n_levels,)
        N_ℓ C_ℓ.
    seconds : float
        Wall time of the call.
    converged : bool
        False when ``max_level`` stopped the search with the bias above √θ tol.
    diagnostics : dict
        Giles' ``mlmc_test`` quantities: per level ``mean_Y``, ``var_Y``,
        ``mean_Pf``, ``var_Pf``, ``kurtosis``, ``consistency`` (|E P^c_ℓ −
        E P^f_{ℓ−1}| over 3 standard errors: above 1 the coupling is suspect),
        ``seconds_per_sample``; and ``alpha``, ``beta``, ``gamma`` (fitted
        over ℓ ≥ 1; γ from the step counts), ``gamma_seconds`` (from the
        measured seconds), ``warnings``. For ``method="mc"`` the per-level
        entries are those of the pilot levels and ``mc`` holds the moments of
        the plain samples.
    """

    estimate: float
    ci95: tuple
    stderr: float
    bias: float
    rmse: float
    tol: float
    method: str
    levels: np.ndarray
    steps: np.ndarray
    n_per_level: np.ndarray
    cost: float
    cost_per_level: np.ndarray
    seconds: float
    converged: bool
    diagnostics: dict = field(default_factory=dict)

    def table(self):
        """Plain-text summary, one line per level (as Giles' ``mlmc_test`` prints)."""
        dg = self.diagnostics
        lines = [f"{self.method}: E phi = {self.estimate:.6g}, 95% CI [{self.ci95[0]:.6g}, "
                 f"{self.ci95[1]:.6g}], bias ~ {self.bias:.2e}, rmse ~ {self.rmse:.2e} "
                 f"(tol {self.tol:.2e}), cost {self.cost:.4g} steps, {self.seconds:.3g} s"
                 + ("" if self.converged else "  NOT CONVERGED (max_level)")]
        if "mean_Y" in dg and len(dg["mean_Y"]):
            lines.append(f"{'l':>3} {'steps':>7} {'N_l':>10} {'E Y_l':>11} {'V Y_l':>10} "
                         f"{'E P_l':>11} {'V P_l':>10} {'kurt':>7} {'check':>6}")
            for i, lev in enumerate(dg["levels"]):
                lines.append(
                    f"{lev:3d} {dg['steps'][i]:7d} {dg['n'][i]:10d} {dg['mean_Y'][i]:11.4e} "
                    f"{dg['var_Y'][i]:10.3e} {dg['mean_Pf'][i]:11.5g} {dg['var_Pf'][i]:10.3e} "
                    f"{dg['kurtosis'][i]:7.2f} {dg['consistency'][i]:6.2f}")
            lines.append(f"alpha = {dg['alpha']:.3f}, beta = {dg['beta']:.3f}, "
                         f"gamma = {dg['gamma']:.3f} (steps), "
                         f"{dg['gamma_seconds']:.3f} (seconds)")
        for w in dg.get("warnings", []):
            lines.append(f"warning: {w}")
        return "\n".join(lines)


# ---- the formulas ------------------------------------------------------------------------
def optimal_samples(V, C, tol, theta=THETA):
    """Samples per level that reach variance (1 − θ) tol² at least cost.

    Parameters
    ----------
    V, C : array_like, shape (n_levels,)
        Variance of Y_ℓ and cost per sample.
    tol : float
        Root-mean-square error asked for.

    Returns
    -------
    ndarray of int, shape (n_levels,)
        ⌈ √(V_ℓ/C_ℓ) Σ_k √(V_k C_k) / ((1 − θ) tol²) ⌉.
    """
    V = np.asarray(V, dtype=float)
    C = np.asarray(C, dtype=float)
    n = np.sqrt(V / C) * np.sum(np.sqrt(V * C)) / ((1.0 - theta) * tol * tol)
    return np.ceil(n).astype(np.int64)


def bias_estimate(mean_abs, alpha):
    """|bias| of the finest level L from |E Y_ℓ|, ℓ = 0..L (only ℓ ≥ 1 are used).

    Each of the last three differences, extrapolated to level L with the weak
    rate α, bounds |E Y_{L+1}| + |E Y_{L+2}| + … = |E Y_L| / (2^α − 1); the
    largest is returned.
    """
    mean_abs = np.asarray(mean_abs, dtype=float)
    L = len(mean_abs) - 1
    js = [j for j in range(3) if L - j >= 1]
    return max(mean_abs[L - j] * 2.0 ** (-j * alpha) for j in js) / (2.0 ** alpha - 1.0)


def fit_rate(levels, values, floor=None):
    """Slope of −log2 values against ℓ (least squares over positive values)."""
    levels = np.asarray(levels, dtype=float)
    values = np.asarray(values, dtype=float)
    ok = values > 0
    if ok.sum() < 2:
        rate = float("nan")
    else:
        rate = -float(np.polyfit(levels[ok], np.log2(values[ok]), 1)[0])
    if floor is not None:
        rate = floor if not rate >= floor else rate
    return rate


def kurtosis(m):
    """Kurtosis of Y from the Moments of :data:`~sde_engine.studies.mlmc.COLUMNS`."""
    n = max(m.count, 1)
    mu = m.mean[Y]
    ey2 = m.m2[Y] / n + mu * mu
    m4 = m.mean[Y4] - 4 * mu * m.mean[Y3] + 6 * mu * mu * ey2 - 3 * mu**4
    var = m.m2[Y] / n
    return float(m4 / (var * var)) if var > 0 else float("nan")


# ---- the public entry point -------------------------------------------------------------
def expectation(sde, phi, x0, T, *, rtol=1e-2, atol=0.0, method="mlmc",
                scheme="euler_maruyama", steps0=1, seed=0, n_initial=1000, max_level=12,
                level=None, chunk_paths=65536, executor=None, checkpoint_dir=None,
                n_threads=None):
    """E φ(X_T) to a root-mean-square error tol = max(atol, rtol·|E φ|).

    Parameters
    ----------
    sde : SDE or OptimizerSDE
        The SDE (started at t = 0), or an optimizer model (:mod:`sde_engine.models`).
    phi : callable
        ``phi(x) -> float`` or ``phi(x, params) -> float``, Numba-compilable
        (define it at module level to compile it once). For an SDE, ``x`` is
        the state (dim,) and ``params`` the SDE's; for a model, ``x`` is θ (d,)
        and ``params`` the problem's, so ``phi=model.problem.loss`` gives E f(θ_T).
    x0 : array_like, shape (dim,)
        Initial state; for a model θ0 (d,) (mapped by ``model.initial_state``)
        or the whole SDE state.
    T : float
        End time.
    rtol, atol : float
        Relative and absolute RMSE; tol = max(atol, rtol·|estimate|).
    method : {"mlmc", "mc"}
        Multilevel or plain Monte Carlo (see the module docstring).
    scheme : str
        A scheme of the registry driven by Brownian increments
        (``"euler_maruyama"``, ``"milstein"``).
    steps0 : int
        M0, the steps of level 0; level ℓ has M0 2^ℓ steps of T / (M0 2^ℓ).
    seed : int
        Sample i of level ℓ uses the stream (seed, (ℓ + 1)·2^44 + i).
    n_initial : int
        Samples on each starting level (and on each pilot level of ``"mc"``).
    max_level : int
        Finest level allowed.
    level : int, optional
        ``method="mc"`` only: run plain Monte Carlo at this level (no bias search).
    chunk_paths : int
        Samples per unit of work.
    executor : callable, optional
        Where units run: ``executor(fn, job, units)`` as in the order study
        (default in process; or :class:`sde_engine.studies.distributed.DaskExecutor`).
    checkpoint_dir : str, optional
        Keep finished chunks in ``checkpoint_dir/checkpoint/``; a rerun with the
        same settings reuses them (bit-identical result).
    n_threads : int, optional
        Numba threads (results do not depend on it).

    Returns
    -------
    ExpectationResult
    """
    start = time.perf_counter()
    job = level_job(sde, phi, x0, T, scheme=scheme, steps0=steps0, seed=seed)
    check.choice(method, "method", METHODS)
    rtol = _nonnegative(rtol, "rtol")
    atol = _nonnegative(atol, "atol")
    if rtol == 0 and atol == 0:
        raise ValueError("`rtol` and `atol` are both 0: give a positive tolerance")
    n_initial = check.positive_int(n_initial, "n_initial")
    if n_initial < 2:
        raise ValueError(f"`n_initial` must be at least 2 (a variance needs 2 samples), "
                         f"got {n_initial}")
    max_level = check.nonnegative_int(max_level, "max_level", upper=MAX_LEVEL)
    if max_level < FIRST_LEVELS - 1:
        raise ValueError(f"`max_level` must be at least {FIRST_LEVELS - 1}, got {max_level}")
    if level is not None:
        if method != "mc":
            raise ValueError(f"`level` ({level!r}) applies to method='mc' only")
        level = check.nonnegative_int(level, "level", upper=max_level)
    chunk_paths = check.positive_int(chunk_paths, "chunk_paths")
    if executor is not None and not callable(executor):
        raise ValueError(f"`executor` must be callable as executor(fn, job, units), "
                         f"got {executor!r}")
    if checkpoint_dir is not None and not isinstance(checkpoint_dir, str):
        raise ValueError(f"`checkpoint_dir` must be a folder path, got {checkpoint_dir!r}")
    n_threads = check_n_threads(n_threads)
    tolerance = _Tolerance(rtol, atol)
    samples = LevelSamples(job, chunk_paths, executor, checkpoint_dir)
    with numba_threads(n_threads):
        if method == "mlmc":
            result = _mlmc(samples, tolerance, n_initial, max_level)
        else:
            result = _plain_mc(samples, tolerance, n_initial, max_level, level)
    result.seconds = time.perf_counter() - start
    for w in result.diagnostics["warnings"]:
        warnings.warn(w, RuntimeWarning, stacklevel=2)
    return result


def level_diagnostics(sde, phi, x0, T, n_samples, *, levels=6, scheme="euler_maruyama",
                      steps0=1, seed=0, chunk_paths=65536, executor=None, checkpoint_dir=None,
                      n_threads=None):
    """Giles' ``mlmc_test`` convergence tests: ``n_samples`` samples on levels 0..levels.

    The same samples as :func:`expectation` draws (sample i of level ℓ is one
    stream), so the rates measured here are those its decisions use.

    Returns
    -------
    dict
        The ``diagnostics`` of :class:`ExpectationResult` (per level: mean and
        variance of Y_ℓ and P_ℓ, kurtosis, consistency; α, β, γ), plus
        ``cost`` (steps).
    """
    job = level_job(sde, phi, x0, T, scheme=scheme, steps0=steps0, seed=seed)
    n_samples = check.positive_int(n_samples, "n_samples")
    if n_samples < 2:
        raise ValueError(f"`n_samples` must be at least 2, got {n_samples}")
    levels = check.positive_int(levels, "levels")
    if levels > MAX_LEVEL:
        raise ValueError(f"`levels` must be at most {MAX_LEVEL}, got {levels}")
    chunk_paths = check.positive_int(chunk_paths, "chunk_paths")
    samples = LevelSamples(job, chunk_paths, executor, checkpoint_dir)
    with numba_threads(check_n_threads(n_threads)):
        samples.extend({(lev, lev > 0): n_samples for lev in range(levels + 1)})
    stats = [samples.moments(lev, lev > 0) for lev in range(levels + 1)]
    out = _diagnostics(samples, list(range(levels + 1)), stats)
    out["cost"] = float(sum(n_samples * sample_cost(job.steps0, lev, lev > 0)
                            for lev in range(levels + 1)))
    return out


def _nonnegative(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a finite number ≥ 0, got {value!r}")
    return float(value)


def level_job(sde, phi, x0, T, *, scheme="euler_maruyama", steps0=1, seed=0):
    """Validate the problem's arguments into a :class:`~.studies.mlmc.LevelJob` (no work done).

    Arguments as for :func:`expectation`.
    """
    scheme_name = scheme
    from .sde import SDE

    model = None
    if not isinstance(sde, SDE):
        model = sde
        sde = getattr(model, "sde", None)
        if not isinstance(sde, SDE):
            raise ValueError(f"`sde` must be an SDE or an optimizer model (with .sde), "
                             f"got {model!r}")
    if scheme_name not in SCHEMES:
        raise ValueError(f"`scheme` must be one of {sorted(SCHEMES)}, got {scheme_name!r}")
    scheme = get_scheme(scheme_name)
    draws = getattr(scheme, "draws_per_step", None)
    if getattr(scheme, "strong_order", None) is None or \
            (draws is not None and draws(sde) != sde.noise_dim):
        usable = [n for n, s in SCHEMES.items() if getattr(s, "strong_order", None) is not None]
        raise ValueError(f"`scheme` {scheme_name!r} is not driven by the Brownian increments "
                         f"alone, so its levels cannot share a path; use one of {usable}")
    if sde.noise not in scheme.noise_types:
        raise ValueError(f"`scheme` {scheme_name!r} supports {scheme.noise_types} noise, but "
                         f"the SDE has {sde.noise!r} noise")
    if model is not None:
        arr = np.asarray(x0, dtype=float)
        if arr.shape == (model.problem.dim,) and model.problem.dim != sde.dim:
            x0 = model.initial_state(arr)
        phi_dim, phi_params = model.problem.dim, np.asarray(model.problem.params, dtype=float)
    else:
        phi_dim, phi_params = sde.dim, sde.params
    x0 = check.initial_state(x0, sde.dim, 1)[0]
    T = check.positive_float(T, "T")
    steps0 = check.positive_int(steps0, "steps0")
    seed = check.nonnegative_int(seed, "seed")
    n_args = phi_arity(phi)
    _probe_phi(phi, n_args, x0[:phi_dim].copy(), phi_params)
    sde.probe(0.0, x0)
    job_sde = sde.with_params(sde.params)
    job_sde._compiled = {}      # compiled drivers stay behind (the job may be pickled)
    return LevelJob(sde=job_sde, phi=phi, phi_dim=phi_dim,
                    phi_params=np.ascontiguousarray(phi_params, dtype=float), x0=x0, t0=0.0,
                    T=T, scheme=scheme, steps0=steps0, seed=seed)


def _probe_phi(phi, n_args, x, params):
    py = getattr(phi, "py_func", phi)
    try:
        value = py(x) if n_args == 1 else py(x, params)
    except Exception as exc:
        raise ValueError(f"`phi` failed at x0 = {x}: {type(exc).__name__}: {exc}") from exc
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating)) \
            or not math.isfinite(value):
        raise ValueError(f"`phi` must return a finite real number, got {value!r} at x0 = {x}")


class _Tolerance:
    """tol = max(atol, rtol·|estimate|)."""

    def __init__(self, rtol, atol):
        self.rtol, self.atol = rtol, atol

    def __call__(self, estimate):
        tol = max(self.atol, self.rtol * abs(estimate))
        if not tol > 0:
            raise ValueError(f"the tolerance max(atol, rtol·|estimate|) is 0 (estimate "
                             f"{estimate!r}, atol {self.atol!r}): give a positive `atol`")
        return tol


# ---- multilevel Monte Carlo -------------------------------------------------------------
def _mlmc(samples, tolerance, n_initial, max_level):
    steps0 = samples.job.steps0
    L = FIRST_LEVELS - 1
    target = [n_initial] * (L + 1)
    converged = True
    while True:
        samples.extend({(lev, lev > 0): target[lev] for lev in range(L + 1)})
        stats = [samples.moments(lev, lev > 0) for lev in range(L + 1)]
        n = np.array([m.count for m in stats])
        mean_abs = np.abs([m.mean[Y] for m in stats])
        V = np.array([m.var[Y] for m in stats])
        C = np.array([sample_cost(steps0, lev, lev > 0) for lev in range(L + 1)])
        alpha = fit_rate(range(1, L + 1), mean_abs[1:], floor=0.5)
        beta = fit_rate(range(1, L + 1), V[1:], floor=0.5)
        mean_abs, V = _regularised(mean_abs, alpha), _regularised(V, beta)
        tol = tolerance(sum(m.mean[Y] for m in stats))
        want = optimal_samples(V, C, tol)
        if np.all(want - n <= SETTLED * n):
            if bias_estimate(mean_abs, alpha) <= math.sqrt(THETA) * tol:
                break
            if L == max_level:
                converged = False
                break
            L += 1
            V = np.append(V, V[-1] / 2.0**beta)
            C = np.append(C, sample_cost(steps0, L, True))
            n = np.append(n, 0)
            want = optimal_samples(V, C, tol)
        target = [int(max(a, b, 2)) for a, b in zip(n, want)]
    return _result("mlmc", samples, stats, tolerance, converged,
                   list(range(L + 1)), [lev > 0 for lev in range(L + 1)])


def _regularised(values, rate):
    """Keep each value of ℓ ≥ 2 at least half its predecessor's times 2^{−rate}."""
    out = np.array(values, dtype=float)
    for lev in range(2, len(out)):
        out[lev] = max(out[lev], 0.5 * out[lev - 1] / 2.0**rate)
    return out


# ---- plain Monte Carlo --------------------------------------------------------------------
def _plain_mc(samples, tolerance, n_initial, max_level, level):
    steps0 = samples.job.steps0
    converged = True
    pilot = []
    if level is None:
        level, converged, pilot = _search_level(samples, tolerance, n_initial, max_level)
    n_target = n_initial
    while True:
        samples.extend({(level, False): n_target})
        m = samples.moments(level, False)
        tol = tolerance(m.mean[PF])
        want = int(math.ceil(m.var[PF] / ((1.0 - THETA) * tol * tol)))
        if want <= (1 + SETTLED) * m.count:
            break
        n_target = want
    return _result("mc", samples, [m], tolerance, converged, [level], [False], pilot=pilot,
                   steps0=steps0)


def _search_level(samples, tolerance, n_initial, max_level):
    """First level whose bias estimate from coupled pilot samples is below √θ tol."""
    L = FIRST_LEVELS - 1
    target = {lev: n_initial for lev in range(1, L + 1)}
    while True:
        samples.extend({(lev, True): n for lev, n in target.items()})
        stats = {lev: samples.moments(lev, True) for lev in target}
        levels = sorted(stats)
        mean_abs = np.abs([stats[lev].mean[Y] for lev in levels])
        alpha = fit_rate(levels, mean_abs, floor=0.5)
        tol = tolerance(stats[L].mean[PF])
        threshold = math.sqrt(THETA) * tol
        # the last three levels' means to a standard error of a quarter of the threshold
        resolve = 0.25 * threshold * (2.0**alpha - 1.0)
        need = {lev: int(math.ceil(stats[lev].var[Y] / resolve**2))
                for lev in levels[-3:]}
        if all(need[lev] <= (1 + SETTLED) * stats[lev].count for lev in need):
            if bias_estimate(np.concatenate([[0.0], mean_abs]), alpha) <= threshold:
                return L, True, levels
            if L == max_level:
                return L, False, levels
            L += 1
            target[L] = n_initial
        else:
            for lev, n in need.items():
                target[lev] = max(target[lev], n)


# ---- the result ------------------------------------------------------------------------
def _result(method, samples, stats, tolerance, converged, levels, coupled, pilot=(),
            steps0=None):
    job = samples.job
    steps0 = job.steps0
    n = np.array([m.count for m in stats])
    means = np.array([m.mean[Y] for m in stats])
    variances = np.array([m.var[Y] for m in stats])
    estimate = float(np.sum(means))
    stderr = float(math.sqrt(np.sum(variances / n)))
    cost_per_level = np.array([n[i] * sample_cost(steps0, lev, c)
                               for i, (lev, c) in enumerate(zip(levels, coupled))])
    diag_levels = list(levels) if method == "mlmc" else list(pilot)
    diag_stats = stats if method == "mlmc" else [samples.moments(lev, True) for lev in pilot]
    diagnostics = _diagnostics(samples, diag_levels, diag_stats)
    pilot_cost = 0.0
    if method == "mc":
        m = stats[0]
        diagnostics["mc"] = dict(level=levels[0], n=int(m.count), mean=float(m.mean[PF]),
                                 var=float(m.var[PF]))
        pilot_cost = sum(samples.n(lev, True) * sample_cost(steps0, lev, True) for lev in pilot)
    if method == "mlmc" or len(pilot):
        mean_abs = np.abs(diagnostics["mean_Y"])
        if method == "mc":
            mean_abs = np.concatenate([[0.0], mean_abs])
        bias = float(bias_estimate(_regularised(mean_abs, diagnostics["alpha"]),
                                   diagnostics["alpha"]))
    else:
        bias = float("nan")
    tol = tolerance(estimate)
    if not converged:
        diagnostics["warnings"].append(
            f"max_level {levels[-1] if method == 'mlmc' else pilot[-1]} reached with the bias "
            f"estimate {bias:.3g} above sqrt(theta)·tol = {math.sqrt(THETA) * tol:.3g}; "
            f"raise `max_level` or `steps0`")
    half = 1.96 * stderr
    return ExpectationResult(
        estimate=estimate, ci95=(estimate - half, estimate + half), stderr=stderr,
        bias=bias, rmse=float(math.hypot(stderr, bias)) if bias == bias else stderr,
        tol=tol, method=method, levels=np.array(levels),
        steps=np.array([steps0 * 2**lev for lev in levels]), n_per_level=n,
        cost=float(np.sum(cost_per_level) + pilot_cost), cost_per_level=cost_per_level,
        seconds=float("nan"), converged=converged, diagnostics=diagnostics)


def _diagnostics(samples, levels, stats):
    """Giles' ``mlmc_test`` quantities for coupled levels ``levels`` (level 0 uncoupled)."""
    steps0 = samples.job.steps0
    out = dict(levels=list(levels), steps=[steps0 * 2**lev for lev in levels],
               n=[int(m.count) for m in stats],
               mean_Y=np.array([m.mean[Y] for m in stats]),
               var_Y=np.array([m.var[Y] for m in stats]),
               mean_Pf=np.array([m.mean[PF] for m in stats]),
               var_Pf=np.array([m.var[PF] for m in stats]),
               kurtosis=np.array([kurtosis(m) for m in stats]), warnings=[])
    consistency = np.full(len(levels), np.nan)
    for i, lev in enumerate(levels):
        if lev == 0 or i == 0 or levels[i - 1] != lev - 1:
            continue
        a, b = stats[i], stats[i - 1]
        se = math.sqrt(a.var[PC] / a.count) + math.sqrt(b.var[PF] / b.count)
        consistency[i] = abs(a.mean[PC] - b.mean[PF]) / (3.0 * se) if se > 0 else 0.0
    out["consistency"] = consistency
    fit = [i for i, lev in enumerate(levels) if lev >= 1]
    fit_levels = [levels[i] for i in fit]
    out["alpha"] = fit_rate(fit_levels, np.abs(out["mean_Y"][fit]), floor=0.5)
    out["beta"] = fit_rate(fit_levels, out["var_Y"][fit], floor=0.5)
    costs = [sample_cost(steps0, lev, lev > 0) for lev in fit_levels]
    out["gamma"] = -fit_rate(fit_levels, costs)
    per_sample = []
    for lev in levels:
        key = (lev, lev > 0)
        timed = samples.timed.get(key, 0)
        per_sample.append(samples.seconds[key] / timed if timed else float("nan"))
    out["seconds_per_sample"] = np.array(per_sample)
    timed_fit = [(lev, per_sample[i]) for i in fit for lev in [levels[i]]
                 if per_sample[i] == per_sample[i]]
    out["gamma_seconds"] = -fit_rate([t[0] for t in timed_fit], [t[1] for t in timed_fit]) \
        if len(timed_fit) >= 2 else float("nan")
    if np.any(np.nan_to_num(consistency) > 1.0):
        bad = [lev for lev, c in zip(levels, consistency) if c > 1.0]
        out["warnings"].append(
            f"consistency check above 1 on level(s) {bad}: E P^c_l differs from E P^f_(l-1) "
            f"by more than 3 standard errors (the coarse path is not the level below)")
    big = [lev for lev, k in zip(levels, out["kurtosis"]) if k > KURTOSIS_WARNING]
    if big:
        out["warnings"].append(f"kurtosis above {KURTOSIS_WARNING:g} on level(s) {big}: "
                               f"their variance estimates are unreliable")
    return out
