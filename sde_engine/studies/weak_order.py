"""Weak-approximation order of a discrete optimizer against its SDE (SPEC §3–4).

For each learning rate η of an :class:`~.order_config.OrderConfig` the study
estimates E φ(x_k) of the discrete algorithm at step k = ⌊T/h⌋ (h = η², or η for
SGD) and the SDE value E φ(X_t) at t = k·h, then fits the order of the weak error

    e(η) = E φ(x_k) − E φ(X_{kh})

against log η and against log h with :func:`sde_engine.analysis.fit_order`, and
fits |e| = η² (a + b ln 1/η) (η for SGD: order 1 in h with a logarithm, SPEC §4)
with :func:`~sde_engine.analysis.fit_log_model`, saying which the data prefer.

* Discrete side: ``paths`` runs split in chunks of ``chunk_paths``; chunk c
  holds runs [c·chunk_paths, …) with ``path_offset`` = its first run, so run i
  draws from the stream (seed, i) however the work is split. Each chunk is
  reduced to streamed moments of φ (:class:`.statistics.Moments`) — no paths
  are kept — and chunks are merged in chunk order.
* SDE side: exact when the SDE is linear-Gaussian (quadratic f, constant Σ:
  :func:`sde_engine.analysis.moments.exact_moments`); otherwise simulated with
  Euler–Maruyama at ``sde_dt`` on paths disjoint from the discrete ones
  (offset :data:`REFERENCE_OFFSET`). The simulated reference reports its own
  bias, estimated on coupled paths as E[φ(X^{dt}) − φ(X^{2dt})] (weak order 1:
  the error of the fine run is about that difference).
* Coupled estimator (``estimator = "coupled"``, or ``"auto"`` with Gaussian
  noise): each chunk runs the discrete algorithm and the SDE on one Brownian
  path (:func:`coupled_chunk`, :mod:`.coupled`); the weak error is the mean of
  φ(θ_k) − φ(X_{kh}) over paths, with the SDE extrapolated (default) or at
  dt = h/``sde_substeps``; the record holds the variance-reduction factor
  measured on the run.
* ``reference = "extrapolated"`` (independent estimator): the simulated
  reference is 2 E φ(X^dt) − E φ(X^2dt) on coupled paths, with its stderr.
* The weak error's standard error combines both sides (independent streams).
  Points with |e| < 3 stderr are flagged and left out of the fits.
* Checkpoints: after every chunk the point's file in ``DIR/checkpoint/`` is
  rewritten atomically; a rerun with the same numeric settings and the same
  definition of the random streams (:data:`solvers.rng.STREAMS_VERSION`)
  reloads finished chunks and points instead of recomputing them. Result files are written
  atomically, so an interrupted study never leaves a half-written file.
* Executors: the chunks of all points still to compute are handed at once to an
  ``executor`` (:class:`InProcess` by default, or
  :class:`sde_engine.studies.distributed.DaskExecutor`), which may evaluate
  them anywhere and in any order; each is checkpointed as it arrives.
"""
import functools
import hashlib
import json
import os
import time
from dataclasses import dataclass

import numpy as np
from numba import njit

from solvers.rng import STREAMS_VERSION

from ..analysis import compare_fits, fit_log_model, fit_order
from ..coupled import coupled_weak_error, theta_observables
from . import order_problems
from .checkpoints import PointStore  # noqa: F401  (re-exported)
from .coupled import coupled_points, resolve_estimator
from .order_config import NON_NUMERIC_KEYS
from .progress import Progress
from .results import write_csv, write_json
from .units import evaluate
from .statistics import Moments, chunk_bounds

# Path indices of the simulated SDE reference start here: disjoint from the discrete runs.
REFERENCE_OFFSET = 2**40
FLOOR_SIGMAS = 3.0
TEST_LABELS = {"theta1": "θ₁", "theta_sq": "‖θ‖²", "loss": "f(θ)", "theta1_cubed": "θ₁³"}


# ---- test functions ------------------------------------------------------------------
def phi_values(cfg, problem, theta):
    """φ(θ) for each test of ``cfg``: shape (n, n_tests) from θ of shape (n, d);
    "loss" is ``problem``'s f."""
    theta = np.ascontiguousarray(theta, dtype=float)
    out = np.empty((theta.shape[0], len(PHI_COLUMNS)))
    _rowwise_phi(problem.loss)(theta, problem.params, out)
    return out[:, [PHI_COLUMNS.index(t) for t in cfg.tests]]


@functools.lru_cache(maxsize=None)
def _rowwise_phi(loss):
    """Jitted ``rows(theta, params, out)``: out[i] = (θ₁, ‖θ‖², f(θ), θ₁³) of theta[i]."""
    phi = theta_observables(loss)

    @njit
    def rows(theta, params, out):
        for i in range(theta.shape[0]):
            phi(theta[i], params, out[i])

    return rows


def exact_test_means(ref, tests):
    """E φ(X_T) from a :class:`~sde_engine.analysis.moments.MomentReference` (last time)."""
    vals = {"theta1": ref.theta_mean[-1, 0], "theta_sq": ref.theta_sq[-1].sum(),
            "loss": ref.loss_mean[-1], "theta1_cubed": ref.theta_cube[-1, 0]}
    return np.array([vals[t] for t in tests], dtype=float)


# ---- the discrete algorithm and its SDE at one learning rate ---------------------------
def build_problem(cfg, lr):
    """The study's problem at the noise scale σ of learning rate ``lr``
    (:mod:`.order_problems`)."""
    return order_problems.build_problem(cfg, cfg.hyperparameters(lr)["noise_scale"])


def build_model(cfg, lr):
    """The :class:`~sde_engine.models.OptimizerSDE` of the algorithm at ``lr``."""
    from ..models import adam_sde, rmsprop_sde, sgd_sde

    problem = build_problem(cfg, lr)
    hp = cfg.hyperparameters(lr)
    if cfg.algorithm == "sgd":
        return sgd_sde(problem, lr)
    if cfg.algorithm == "rmsprop":
        return rmsprop_sde(problem, lr, beta=hp["beta"], eps=hp["eps"],
                           bias_correction=cfg.bias_correction)
    return adam_sde(problem, lr, betas=hp["betas"], eps=hp["eps"],
                    bias_correction=cfg.bias_correction)


def initial_v(cfg, lr):
    """v0 = σ² u0 of the discrete run (None: the standard start v0 = 0)."""
    if cfg.u0 is None:
        return None
    return cfg.hyperparameters(lr)["noise_scale"] ** 2 * np.asarray(cfg.u0)


def sde_initial_state(cfg, model, lr):
    theta0 = np.asarray(cfg.theta0)
    return model.initial_state(theta0) if cfg.algorithm == "sgd" else \
        model.initial_state(theta0, v0=initial_v(cfg, lr))


# ---- units of work ---------------------------------------------------------------------
def build_optimizer(cfg, lr):
    """The discrete optimizer at ``lr`` (hyperparameters of :meth:`OrderConfig.hyperparameters`)."""
    from ..optimizers import make_optimizer

    hp = dict(cfg.hyperparameters(lr))
    hp.pop("noise_scale")
    if cfg.algorithm == "sgd":
        hp.pop("bias_correction", None)
    return make_optimizer(cfg.algorithm, **hp)


@functools.lru_cache(maxsize=None)
def phi_observer(loss, n_blocks):
    """Jitted ``observe(k, x, params, out)``: out = (θ₁, ‖θ‖², f(θ), θ₁³) of the state x.

    One per (problem loss, state blocks); ``params`` are the problem's.
    """
    phi = theta_observables(loss)

    @njit
    def observe(k, x, params, out):
        phi(x[:x.shape[0] // n_blocks], params, out)

    return observe


PHI_COLUMNS = ("theta1", "theta_sq", "loss", "theta1_cubed")


def discrete_moments(cfg, lr, path_offset, n_paths, record_steps=None):
    """Streamed mean/var of all φ over runs [path_offset, path_offset + n_paths).

    Returns the :class:`~sde_engine.Solution` of :func:`sde_engine.runner.run_optimizer`
    whose ``mean``/``var`` have shape (n_record, 4) in :data:`PHI_COLUMNS` order.
    """
    from ..runner import run_optimizer

    problem = build_problem(cfg, lr)
    opt = build_optimizer(cfg, lr)
    observe = phi_observer(problem.loss, len(opt.blocks))
    return run_optimizer(problem, opt, np.asarray(cfg.theta0), cfg.n_steps(lr), n_paths,
                         seed=cfg.seed, v0=initial_v(cfg, lr),
                         record_steps=[cfg.n_steps(lr)] if record_steps is None else record_steps,
                         observables=observe, n_observables=len(PHI_COLUMNS),
                         run_offset=path_offset, on_divergence="raise")


def uses_control_variate(cfg):
    return cfg.control_variate and cfg.algorithm == "rmsprop" and cfg.problem == "quadratic"


def discrete_chunk(cfg, lr, path_offset, n_paths):
    """Moments of φ(x_k), shape (n_tests,), over runs [path_offset, path_offset + n_paths).

    With the control variate (:func:`uses_control_variate`) the moments are those
    of E φ(y_k) + φ(x_k) − φ(y_k): same mean, smaller variance.
    """
    cols = [PHI_COLUMNS.index(t) for t in cfg.tests]
    if uses_control_variate(cfg):
        return _controlled_chunk(cfg, lr, path_offset, n_paths, cols)
    sol = discrete_moments(cfg, lr, path_offset, n_paths)
    return Moments.from_mean_var(sol.mean[-1, cols], sol.var[-1, cols], sol.n_used)


def _controlled_chunk(cfg, lr, path_offset, n_paths, cols):
    from ..runner import run_optimizer
    from . import control_variate as cv

    problem = build_problem(cfg, lr)
    hp = cfg.hyperparameters(lr)
    d = len(cfg.theta0)
    v0 = np.zeros(d) if cfg.u0 is None else initial_v(cfg, lr)
    noise_var = hp["noise_scale"] ** 2 * np.asarray(cfg.noise_cov)
    args = (lr, hp["beta"], hp["eps"], cfg.bias_correction, np.asarray(cfg.curvature),
            noise_var, v0)
    sol = run_optimizer(problem, cv.controlled_rmsprop(*args), np.asarray(cfg.theta0),
                        cfg.n_steps(lr), n_paths, seed=cfg.seed, v0=v0,
                        record_steps=[cfg.n_steps(lr)],
                        observables=cv.difference_observer(problem.loss),
                        n_observables=len(PHI_COLUMNS), run_offset=path_offset,
                        on_divergence="raise")
    exact = cv.control_means(*cv.control_moments(cfg.n_steps(lr), *args, cfg.theta0,
                                                 cv.THIRD_MOMENT[cfg.noise]), cfg.curvature)
    return Moments.from_mean_var(sol.mean[-1, cols] + exact[cols], sol.var[-1, cols],
                                 sol.n_used)


def coupled_chunk(cfg, lr, path_offset, n_paths):
    """Coupled discrete/SDE moments over runs [path_offset, path_offset + n_paths).

    Shape (6, n_tests), rows :data:`sde_engine.coupled.QUANTITIES` (see
    :mod:`.coupled`); run i and its SDE share the stream (seed, i).
    """
    cols = [PHI_COLUMNS.index(t) for t in cfg.tests]
    result = coupled_weak_error(
        build_problem(cfg, lr), build_optimizer(cfg, lr), np.asarray(cfg.theta0),
        cfg.n_steps(lr), n_paths, substeps=cfg.sde_substeps, seed=cfg.seed,
        v0=initial_v(cfg, lr), path_offset=path_offset, on_divergence="raise")
    m = result.moments()
    return Moments(m.count, m.mean[:, cols], m.m2[:, cols])


def reference_chunk(cfg, lrs, path_offset, n_paths):
    """Simulated SDE reference on one chunk, at the SDE times of ``lrs``.

    Returns Moments of shape (n_times, 3·n_tests): [φ(X^dt_t), φ(X^dt_t) − φ(X^2dt_t),
    2φ(X^dt_t) − φ(X^2dt_t)] on coupled paths (same Brownian path at resolution dt).
    """
    from ..simulate import simulate

    lr = lrs[0]
    model = build_model(cfg, lr)
    x0 = sde_initial_state(cfg, model, lr)
    dt = cfg.reference_dt()
    times = sorted({cfg.sde_time(x) for x in lrs})
    common = dict(x0=x0, t_span=(0.0, times[-1]), n_paths=n_paths, seed=cfg.seed,
                  path_offset=REFERENCE_OFFSET + path_offset, brownian_dt=dt,
                  method="euler_maruyama", save_at=times, on_divergence="raise")
    d = len(cfg.theta0)
    fine = simulate(model.sde, dt=dt, **common).x[:, :, :d]
    coarse = simulate(model.sde, dt=2 * dt, **common).x[:, :, :d]
    rows = []
    for x in lrs:
        i = times.index(cfg.sde_time(x))
        f, c = phi_values(cfg, model.problem, fine[i]), phi_values(cfg, model.problem, coarse[i])
        rows.append(np.concatenate([f, f - c, 2 * f - c], axis=1))
    return Moments.of(np.stack(rows, axis=1))


def use_exact_reference(cfg):
    if cfg.reference in ("simulate", "extrapolated", "mlmc") \
            or resolve_estimator(cfg)[0] == "coupled":
        return False
    return cfg.problem == "quadratic"     # linear-Gaussian SDE: exact moments apply


def exact_reference(cfg, lr):
    """E φ(X_t) at t = k·h from the exact moment ODEs (SPEC §4); shape (n_tests,)."""
    from ..analysis.moments import exact_moments

    model = build_model(cfg, lr)
    ref = exact_moments(model, sde_initial_state(cfg, model, lr), [cfg.sde_time(lr)])
    return exact_test_means(ref, cfg.tests)


# ---- checkpoints -------------------------------------------------------------------------
def fingerprint(cfg, extra=()):
    """Hash of the numeric settings, and the streams' version, a finished point depends on."""
    d = {k: v for k, v in cfg.as_dict().items() if k not in NON_NUMERIC_KEYS}
    d["extra"] = list(extra)
    d["streams"] = STREAMS_VERSION
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def point_name(lr):
    return f"lr_{lr!r}"


# ---- executors ---------------------------------------------------------------------------
class InProcess:
    """The default executor: evaluate units one after the other in this process.

    An executor is called as ``executor(fn, cfg, units)`` with ``units`` a list
    of argument tuples and yields ``(unit, fn(cfg, *unit))`` once per unit, in
    any order; ``workers`` is recorded in the result file.
    """

    workers = 1

    def __call__(self, fn, cfg, units):
        for unit in units:
            yield unit, evaluate(fn, cfg, unit)


# ---- the study ---------------------------------------------------------------------------
@dataclass
class OrderResult:
    """What :func:`run_order_study` returns; ``record`` is what order.json holds."""

    record: dict
    complete: bool

    def table(self):
        return format_table(self.record)


def run_order_study(cfg, out_dir=None, *, evaluator=None, reference=None,
                    max_points=None, progress=None, plot=True, executor=None):
    """Run (or resume) a weak-order study.

    Parameters
    ----------
    cfg : OrderConfig
    out_dir : str, optional
        Folder for ``order.json``, ``order.csv`` and ``checkpoint/``; None keeps
        everything in memory.
    evaluator : callable, optional
        ``evaluator(cfg, lr, path_offset, n_paths) -> Moments`` of shape
        (n_tests,): the discrete side of one chunk (default :func:`discrete_chunk`).
    reference : callable, optional
        ``reference(cfg, lr) -> (value, stderr, bias)`` arrays (n_tests,) that
        replaces the built-in exact/simulated reference (for tests).
    max_points : int, optional
        Stop after computing this many new learning rates (finished ones that
        are reloaded do not count); the study is then incomplete and a rerun
        continues it.
    progress : bool, optional
        Draw a progress bar (default: only when stderr is a terminal).
    plot : bool
        Also draw ``order.png``.
    executor : callable, optional
        Where the chunks are evaluated (see :class:`InProcess`, the default,
        and :class:`sde_engine.studies.distributed.DaskExecutor`); the result
        does not depend on it.

    Returns
    -------
    OrderResult
        ``complete`` is False when ``max_points`` stopped it early; result
        files are then not written.
    """
    start = time.perf_counter()
    coupled = evaluator is None and resolve_estimator(cfg)[0] == "coupled"
    evaluator = evaluator or (coupled_chunk if coupled else discrete_chunk)
    store = PointStore(out_dir)
    key = fingerprint(cfg)
    bounds = chunk_bounds(cfg.paths, cfg.chunk_paths)
    done = {lr: store.load(point_name(lr), key, bounds) for lr in cfg.lrs}
    from_checkpoint = sum(len(done[lr]) == len(bounds) for lr in cfg.lrs)
    work = sum(cfg.paths * cfg.n_steps(lr) for lr in cfg.lrs)
    already = sum(sum(m.count for m in chunks.values()) * cfg.n_steps(lr)
                  for lr, chunks in done.items())
    bar = Progress(work, already, label="order", enabled=progress)
    executor = executor or InProcess()
    pending = [lr for lr in cfg.lrs if len(done[lr]) < len(bounds)]
    chosen = pending if max_points is None else pending[:max_points]
    units = [(lr, off, n) for lr in chosen for off, n in bounds if off not in done[lr]]
    n_done, n_all = sum(map(len, done.values())), len(cfg.lrs) * len(bounds)
    try:
        for (lr, off, n), moments in executor(evaluator, cfg, units):
            done[lr][off] = moments
            store.append(point_name(lr), key, off, moments,
                       dict(lr=lr, n_steps=cfg.n_steps(lr), paths=cfg.paths))
            n_done += 1
            bar.advance(n * cfg.n_steps(lr), note=f"{n_done}/{n_all} chunks")
    finally:
        bar.close()
    if len(chosen) < len(pending):
        return OrderResult(dict(config=cfg.as_dict()), complete=False)
    discrete = [Moments.merge(done[lr][off] for off, _ in bounds) for lr in cfg.lrs]
    errors = None
    if coupled:
        discrete, refs, errors = coupled_points(cfg, discrete)
    elif reference is not None:
        refs = [(*reference(cfg, lr), "given") for lr in cfg.lrs]
    else:
        refs = sde_reference(cfg, store, executor)
    record = assemble(cfg, discrete, refs, wall_s=time.perf_counter() - start,
                      workers=executor.workers, coupled=errors)
    record["points_from_checkpoint"] = from_checkpoint     # their time is not in wall_s
    if out_dir is not None:
        write_outputs(record, out_dir, plot=plot)
    return OrderResult(record, complete=True)


def sde_reference(cfg, store=None, executor=None):
    """E φ(X_t) at each learning rate's SDE time t = k·h.

    Returns
    -------
    list of (value, stderr, bias, method)
        One per learning rate; arrays of shape (n_tests,). Exact references
        have zero stderr and bias.
    """
    n = len(cfg.tests)
    if use_exact_reference(cfg):
        return [(exact_reference(cfg, lr), np.zeros(n), np.zeros(n), "exact moment ODEs")
                for lr in cfg.lrs]
    store = store or PointStore(None)
    if cfg.reference == "mlmc":
        from .mlmc_reference import mlmc_reference
        # RMSprop/Adam: the SDE of lrs[0] (and its initial state: v0 = σ² u0 is in the
        # units of that η) serves every η, as for the simulated reference
        model_lr = {lr: lr if cfg.algorithm == "sgd" else cfg.lrs[0] for lr in cfg.lrs}
        models = {lr: build_model(cfg, model_lr[lr]) for lr in cfg.lrs}
        points = [(models[lr], sde_initial_state(cfg, models[lr], model_lr[lr]),
                   cfg.sde_time(lr)) for lr in cfg.lrs]
        return mlmc_reference(points, cfg.tests, min(map(cfg.step_size, cfg.lrs)), cfg.seed,
                              checkpoint_dir=store.folder, executor=executor)
    executor = executor or InProcess()
    paths = cfg.sde_paths or cfg.paths
    dt = cfg.reference_dt()
    extrapolated = cfg.reference == "extrapolated"
    method = f"Euler–Maruyama, dt = {dt:.4g}, {paths} paths" + (
        ", extrapolated 2·φ(X^dt) − φ(X^2dt)" if extrapolated else "")
    # RMSprop/Adam: one SDE for every η (fixed constants); SGD: one SDE per η
    groups = [[lr] for lr in cfg.lrs] if cfg.algorithm == "sgd" else [list(cfg.lrs)]
    out = {}
    for group in groups:
        name = "reference" + (f"_{point_name(group[0])}" if cfg.algorithm == "sgd" else "")
        key = fingerprint(cfg, extra=[dt, paths, group, "with extrapolation"])
        bounds = chunk_bounds(paths, cfg.chunk_paths)
        chunks = store.load(name, key, bounds)
        units = [(group, off, size) for off, size in bounds if off not in chunks]
        for (_, off, _), moments in executor(reference_chunk, cfg, units):
            chunks[off] = moments
            store.append(name, key, off, moments, dict(sde_dt=dt, paths=paths, lrs=group))
        m = Moments.merge(chunks[off] for off, _ in bounds)
        for i, lr in enumerate(group):
            if extrapolated:     # bias O(dt²); the removed first-order bias is not reported
                out[lr] = (m.mean[i, 2 * n:], m.stderr[i, 2 * n:], np.zeros(n), method)
            else:
                out[lr] = (m.mean[i, :n], m.stderr[i, :n], np.abs(m.mean[i, n:2 * n]), method)
    return [out[lr] for lr in cfg.lrs]


def assemble(cfg, discrete, refs, wall_s=float("nan"), workers=1, coupled=None):
    """The result record (order.json) from merged discrete moments and references.

    ``coupled``: per learning rate, the errors of the coupled estimator
    (:func:`.coupled.coupled_points`), which replace disc − ref and the combined
    independent stderr; the points then also hold ``variance_reduction`` and
    ``sde_bias``.
    """
    lrs = np.array(cfg.lrs)
    h = np.array([cfg.step_size(lr) for lr in cfg.lrs])
    points, fits, notes = {}, {}, []
    for j, test in enumerate(cfg.tests):
        disc = np.array([m.mean[j] for m in discrete])
        disc_se = np.array([m.stderr[j] for m in discrete])
        ref = np.array([r[0][j] for r in refs])
        ref_se = np.array([r[1][j] for r in refs])
        bias = np.array([r[2][j] for r in refs])
        err = disc - ref
        se = np.sqrt(disc_se**2 + ref_se**2)
        extra = {}
        if coupled is not None:
            err = np.array([c["error"][j] for c in coupled])
            se = np.array([c["stderr"][j] for c in coupled])
            extra = {key: np.array([c[key][j] for c in coupled])
                     for key in ("variance_reduction", "sde_bias", "sde_bias_stderr")}
        fit_lr = fit_order(lrs, err, se, floor_sigmas=FLOOR_SIGMAS)
        fit_h = fit_order(h, err, se, floor_sigmas=FLOOR_SIGMAS)
        points[test] = dict(discrete=disc, discrete_stderr=disc_se, reference=ref,
                            reference_stderr=ref_se, reference_bias=bias, error=err, stderr=se,
                            below_noise=fit_lr.below_noise, **extra)
        # order 1 in h is η² for RMSprop/Adam (h = η²), η for SGD
        fit_log = fit_log_model(lrs, err, se, power=1.0 if cfg.algorithm == "sgd" else 2.0,
                                floor_sigmas=FLOOR_SIGMAS)
        fits[test] = dict(vs_lr=fit_lr.as_dict(), vs_h=fit_h.as_dict(),
                          log_model=fit_log.as_dict(),
                          comparison=compare_fits(lrs, err, se, fit_lr, fit_log).as_dict())
        if fit_lr.below_noise.any():
            notes.append(f"E {test}: error within {FLOOR_SIGMAS:g} stderr of zero at lr "
                         f"{', '.join(f'{x:g}' for x in lrs[fit_lr.below_noise])}: excluded "
                         f"from the fit; add paths (stderr ∝ 1/√paths)")
        used = fit_lr.used & np.isfinite(err)
        if np.any(bias > 0) and used.any() and np.max(bias) > 0.1 * np.min(np.abs(err[used])):
            notes.append(f"E {test}: the simulated reference's own bias estimate "
                         f"({np.max(bias):.2e}) exceeds 10% of the smallest fitted error; "
                         f"lower sde_dt (coupled estimator: raise sde_substeps, or use "
                         f"reference = 'extrapolated')")
    algo = cfg.algorithm + (" (bias-corrected)" if cfg.bias_correction else "")
    kind, why = resolve_estimator(cfg)
    if why:
        notes.append(why)
    if coupled is not None:
        estimator = (f"coupled: discrete runs and SDE on one Brownian path "
                     f"({cfg.sde_substeps} SDE steps per discrete step)")
    elif uses_control_variate(cfg):
        estimator = "independent, control variate (sde_engine.studies.control_variate)"
    else:
        estimator = "independent, plain mean over runs"
    return dict(
        study="weak_order", title=cfg.title or f"{algo} vs its SDE: {cfg.noise} noise, "
                                                 f"d = {len(cfg.theta0)}, {cfg.paths} paths",
        config=cfg.as_dict(), lrs=lrs, h=h, n_steps=[cfg.n_steps(lr) for lr in cfg.lrs],
        sde_time=[cfg.sde_time(lr) for lr in cfg.lrs],
        tests=list(cfg.tests), labels={t: TEST_LABELS[t] for t in cfg.tests},
        points=points, fits=fits,
        reference=dict(method=refs[0][3], exact=use_exact_reference(cfg)),
        estimator=estimator, estimator_kind="coupled" if coupled is not None else "independent",
        paths=cfg.paths, chunks=len(chunk_bounds(cfg.paths, cfg.chunk_paths)),
        workers=workers, wall_s=wall_s, notes=notes)


CSV_HEADER = ("test", "lr", "h", "n_steps", "discrete", "discrete_stderr", "reference",
              "reference_stderr", "reference_bias", "error", "stderr", "below_noise_floor")


def write_outputs(record, out_dir, plot=True):
    """Write ``order.json``, ``order.csv`` and (``plot``) ``order.png`` in ``out_dir`` atomically."""
    from .. import plotting

    rows = []
    for test in record["tests"]:
        p = record["points"][test]
        for i, lr in enumerate(record["lrs"]):
            rows.append([test, lr, record["h"][i], record["n_steps"][i]]
                        + [p[k][i] for k in ("discrete", "discrete_stderr", "reference",
                                             "reference_stderr", "reference_bias", "error",
                                             "stderr", "below_noise")])
    write_json(os.path.join(out_dir, "order.json"), record)
    write_csv(os.path.join(out_dir, "order.csv"), CSV_HEADER, rows)
    if plot:
        plotting.save_figure(plotting.plot_weak_order(record), os.path.join(out_dir, "order.png"))


def format_table(record):
    """Plain-text table of a weak-order record: one block per test function."""
    lines = [record.get("title", "")]
    if "estimator" in record:
        lines.append(f"estimator: {record['estimator']}")
    for test in record["tests"]:
        p = record["points"][test]
        lines.append(f"\nE {TEST_LABELS.get(test, test)}   (reference: {record['reference']['method']})")
        vrf = p.get("variance_reduction")
        lines.append(f"{'lr':>8} {'h':>10} {'steps':>7} {'discrete':>12} {'reference':>12} "
                     f"{'weak error':>11} {'stderr':>9}"
                     + ("" if vrf is None else f" {'SDE bias':>10} {'var. red.':>9}"))
        for i, lr in enumerate(record["lrs"]):
            flag = "  < noise floor" if p["below_noise"][i] else ""
            more = "" if vrf is None else f" {p['sde_bias'][i]:10.2e} {vrf[i]:8.0f}x"
            lines.append(f"{lr:8.4g} {record['h'][i]:10.4g} {record['n_steps'][i]:7d} "
                         f"{p['discrete'][i]:12.6g} {p['reference'][i]:12.6g} "
                         f"{p['error'][i]:11.3e} {p['stderr'][i]:9.2e}{more}{flag}")
        for label, key in (("vs log lr", "vs_lr"), ("vs log h ", "vs_h")):
            f = record["fits"][test][key]
            lines.append(f"  order {label}: {_num(f['order'])}  95% CI "
                         f"[{_num(f['ci'][0])}, {_num(f['ci'][1])}]")
        g = record["fits"][test].get("log_model")
        if g is not None:
            lines.append(f"  log model |e| = lr^{g['power']:g} (a + b ln 1/lr): "
                         f"a = {_num(g['a'])} [{_num(g['a_ci'][0])}, {_num(g['a_ci'][1])}], "
                         f"b = {_num(g['b'])} [{_num(g['b_ci'][0])}, {_num(g['b_ci'][1])}]")
            lines.append(f"  {record['fits'][test]['comparison']['summary']}")
    for note in record.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _num(x):
    return "nan" if x is None or x != x else f"{x:.3f}"
