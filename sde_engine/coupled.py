"""Coupled discrete–SDE weak errors: an optimizer and its SDE on one Brownian path.

The weak error e = E φ(θ_k) − E φ(X_{kh}) of a discrete optimizer against its
SDE (SPEC §3; h = η for SGD, η² for RMSprop/Adam) is usually estimated from
independent runs of both sides, whose Monte Carlo variance Var φ(θ) + Var φ(X)
is O(1). Here both sides are driven by the *same* Brownian path W (issue 14 §1):

* discrete step k draws m·d standard normals ξ_{k,j} (j = 1..m, the path's
  block normal sequence, :func:`solvers.rng.fill_normal_block`) and uses the
  Gaussian gradient noise

      g_k = ∇f(θ_{k−1}) + σ S(θ_{k−1}) ξ_k,    ξ_k = (Σ_j ξ_{k,j}) / √m  ~ N(0, I),

  which is the normalised increment (W_{kh} − W_{(k−1)h}) / √h;
* the SDE takes m Euler–Maruyama sub-steps of dt = h/m over [(k−1)h, kh] on
  the sub-increments ΔW_j = s √dt ξ_{k,j} (they sum to s √h ξ_k), and a
  second, coarse copy takes m/2 sub-steps of 2dt on the pair sums.

The sign s matches the noise of the two sides: the RMSprop/Adam SDEs carry the
gradient noise with the sign it has in g (s = +1), the SGD SDE as written in
:mod:`sde_engine.models.sgd` with the opposite one (dX = −∇f dt + σ√η S dW,
while θ moves by −η σ S ξ), so s = −1 there. SGD with momentum carries it
with the sign it has in g (s = +1). SignSGD's SDE has its own diffusion
√η √(1 − erf²) rather than the gradient noise; driving it with s = −1 couples
the SDE's noise with the part of −η sign(g) that moves with ξ; Signum's
(−η sign(m), m an average of the g's) likewise. Any coupling
leaves each side's law, and so the weak error, unchanged; a good one only
makes the difference's variance small.

Per path and record step the kernel observes, for each test function φ,

    D = φ(θ_k) − φ(X^m),  B = φ(X^m) − φ(X^{m/2}),  E = D − B = φ(θ_k) − (2φ(X^m) − φ(X^{m/2})),
    φ(θ_k),  φ(X^m),  2φ(X^m) − φ(X^{m/2}),

and streams their means and variances (:class:`~sde_engine.studies.statistics.Moments`).
mean D is the weak error against the m-step SDE; its variance is the squared
strong distance of the two sides, O(h), instead of O(1). Euler–Maruyama has
weak order 1, so mean B estimates the SDE's own bias at dt, and mean E is the
error against the Richardson (Talay–Tubaro) extrapolated SDE, whose bias is
O(dt²).

Only problems with Gaussian noise g = ∇f + σ S ξ couple pathwise with W
(:func:`coupling_applies`); Rademacher, skewed, minibatch or user oracles are
refused with a ``ValueError``.

Path i uses the stream (seed, path_offset + i) on the chunked driver
(:mod:`solvers.driver`), so results do not depend on threads or chunking; its
SDE path equals that of :func:`sde_engine.simulate` with Euler–Maruyama at
dt = h/m on the same stream (the fine copy; the coarse copy is ``simulate`` at
2dt with ``brownian_dt = dt``).
"""
import functools
import math
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit

from solvers.driver import PathKernel, make_driver, run_paths
from solvers.euler_maruyama import make_step
from solvers.rng import fill_normal_block

from . import validation as check
from .optimizers.base import Optimizer
from .problems.base import Problem
from .simulate import (DIVERGENCE_POLICIES, check_n_threads, enforce_divergence_policy,
                       numba_threads, streamed_report)
from .solution import DivergenceReport

#: Sign s of ΔW = s √dt ξ relative to the discrete noise ξ (see the module docstring).
NOISE_SIGN = {"sgd": -1.0, "sgd_momentum": 1.0, "signsgd": -1.0, "signum": -1.0, "rmsprop": 1.0,
              "adam": 1.0, "rmspropw": 1.0, "adamw": 1.0}
#: What the kernel observes per φ, in order (rows of :attr:`CoupledWeakError.moments`).
QUANTITIES = ("difference", "sde_bias", "extrapolated_difference", "discrete", "sde",
              "sde_extrapolated")
#: Names of the default test functions (:func:`theta_observables`).
DEFAULT_LABELS = ("theta1", "theta_sq", "loss", "theta1_cubed")
#: Normals drawn per block (rounded down to whole discrete steps, at least one).
BLOCK_NORMALS = 1024

_COMPILED = {}


def coupling_applies(problem):
    """Whether ``problem``'s gradient noise couples pathwise with a Brownian motion.

    Returns
    -------
    (bool, str)
        True for Gaussian noise g = ∇f + σ S(θ) ξ; otherwise False and the reason.
    """
    if getattr(problem, "noise", None) == "gaussian":
        return True, ""
    return False, (f"noise {getattr(problem, 'noise', None)!r} is not Gaussian "
                   f"(g = ∇f + σ S(θ) ξ, ξ ~ N(0, I)): there is no pathwise coupling with W")



@functools.lru_cache(maxsize=None)
def theta_observables(loss):
    """Jitted ``phi(theta, params, out)``: out = (θ₁, ‖θ‖², f(θ), θ₁³) (:data:`DEFAULT_LABELS`).

    ``params`` are the problem's; one compiled function per problem loss.
    """
    @njit
    def phi(theta, params, out):
        sq = 0.0
        for i in range(theta.shape[0]):
            sq += theta[i] * theta[i]
        out[0] = theta[0]
        out[1] = sq
        out[2] = loss(theta, params)
        out[3] = theta[0] * theta[0] * theta[0]

    return phi


@dataclass
class CoupledWeakError:
    """What :func:`coupled_weak_error` returns.

    Attributes
    ----------
    mean, m2 : ndarray, shape (n_save, 6, n_phi)
        Mean and Σ(value − mean)² over the paths counted at each record step;
        axis 1 is :data:`QUANTITIES`.
    counts : ndarray of int, shape (n_save,)
        Paths in the statistics of each record step (a path that diverged at
        step k counts only at the record steps before k).
    steps : ndarray of int, shape (n_save,)
        Record steps k.
    t : ndarray, shape (n_save,)
        SDE times k·h.
    labels : tuple of str, length n_phi
    substeps : int
        m, Euler–Maruyama sub-steps of the fine SDE per discrete step.
    n_paths : int
    diverged : DivergenceReport
    info : dict
        Optimizer, hyperparameters, problem, h, seed, path_offset.
    """

    mean: np.ndarray
    m2: np.ndarray
    counts: np.ndarray
    steps: np.ndarray
    t: np.ndarray
    labels: tuple
    substeps: int
    n_paths: int
    diverged: DivergenceReport
    info: dict

    def moments(self, s=-1):
        """:class:`~sde_engine.studies.statistics.Moments` of record step ``s``, shape (6, n_phi)."""
        from .studies.statistics import Moments

        return Moments(int(self.counts[s]), self.mean[s], self.m2[s])

    def _row(self, name):
        i = QUANTITIES.index(name)
        n = self.counts[:, None].astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            var = np.where(n >= 2, self.m2[:, i] / (n - 1), np.nan)
            return self.mean[:, i], np.sqrt(var / n), var

    def error(self, reference="extrapolated"):
        """Weak error and its standard error, each shape (n_save, n_phi).

        ``reference="extrapolated"``: E[φ(θ_k) − (2φ(X^m) − φ(X^{m/2}))] (SDE bias
        O(dt²)); ``"simulate"``: E[φ(θ_k) − φ(X^m)] (SDE bias ≈ :meth:`sde_bias`).
        """
        check.choice(reference, "reference", ("extrapolated", "simulate"))
        name = "extrapolated_difference" if reference == "extrapolated" else "difference"
        mean, se, _ = self._row(name)
        return mean, se

    def sde_bias(self):
        """E φ(X^m) − E φ(X^{m/2}) and its stderr: the fine SDE's own bias (weak order 1)."""
        mean, se, _ = self._row("sde_bias")
        return mean, se

    def variance_reduction(self, reference="extrapolated"):
        """(Var φ(θ) + Var φ(X)) / Var(difference), shape (n_save, n_phi).

        How many times more paths the independent estimator (both sides
        simulated, as many paths each) needs for the same standard error.
        """
        check.choice(reference, "reference", ("extrapolated", "simulate"))
        _, _, v_disc = self._row("discrete")
        _, _, v_sde = self._row("sde" if reference == "simulate" else "sde_extrapolated")
        _, _, v_diff = self._row("extrapolated_difference" if reference == "extrapolated"
                                 else "difference")
        with np.errstate(divide="ignore", invalid="ignore"):
            return (v_disc + v_sde) / v_diff

    def summary(self, reference="extrapolated"):
        """A plain-text table of the last record step."""
        err, se = self.error(reference)
        bias, bias_se = self.sde_bias()
        vrf = self.variance_reduction(reference)
        lines = [f"coupled weak error at step {self.steps[-1]} (t = {self.t[-1]:.6g}), "
                 f"{self.counts[-1]} paths, m = {self.substeps} SDE sub-steps per step, "
                 f"reference: {reference}",
                 f"{'phi':>14} {'weak error':>12} {'stderr':>10} {'SDE bias':>11} "
                 f"{'variance reduction':>19}"]
        for q, label in enumerate(self.labels):
            lines.append(f"{label:>14} {err[-1, q]:12.4e} {se[-1, q]:10.2e} "
                         f"{bias[-1, q]:11.2e} {vrf[-1, q]:18.1f}x")
        return "\n".join(lines)


def coupled_weak_error(problem, optimizer, theta0, n_steps, n_paths, *, substeps=4, seed=0,
                       m0=None, v0=None, record_steps=None, observables=None,
                       n_observables=None, labels=None, on_divergence="raise",
                       path_offset=0, n_threads=None, sde_order=1):
    """Weak error of ``optimizer`` against its SDE with both driven by one Brownian path.

    See the module docstring for the coupling and what is observed.

    Parameters
    ----------
    problem : Problem
        With Gaussian noise (``problem.noise == "gaussian"``): quadratics,
        :func:`~sde_engine.problems.custom_problem` with the default oracle,
        regression with ``noise="gaussian"``. Anything else is refused.
    optimizer : Optimizer
        SGD (plain, with momentum, SignSGD or Signum), RMSprop or Adam (with or without
        bias correction); its SDE is
        :func:`sde_engine.studies.svag_convergence.reference_model`.
    theta0 : array_like, shape (d,) or (n_paths, d)
    n_steps : int
        Discrete steps k; the SDE runs to t = k·h.
    n_paths : int
    substeps : int
        m ≥ 2, even: Euler–Maruyama sub-steps of the fine SDE per discrete
        step (the coarse SDE takes m/2).
    seed : int
        Path i uses the stream (seed, path_offset + i).
    m0, v0 : float or array_like of shape (d,), optional
        Discrete initial moments (default 0); the SDE starts at u0 = v0/σ².
    record_steps : array_like of int, optional
        Sorted steps in [1, n_steps] to record (default: ``[n_steps]``).
    observables : callable, optional
        Jitted or plain ``phi(theta, params, out)`` writing ``n_observables``
        values from θ (d,) and the problem's params; default
        :func:`theta_observables` (θ₁, ‖θ‖², f(θ), θ₁³).
    n_observables : int
        Length of ``out`` (required with ``observables``).
    labels : sequence of str, optional
        Names of the observables.
    on_divergence : {"raise", "warn", "drop"}
        As in :func:`sde_engine.simulate` (a path diverges when any of its
        three copies does); diverged paths never enter the statistics.
    path_offset : int
    n_threads : int, optional
    sde_order : {1, 2}
        The SDE the optimizer is compared with: its first-order model, or for
        SGD the second-order model of Li, Tai & E (``sgd_sde(..., order=2)``).

    Returns
    -------
    CoupledWeakError
    """
    from .studies.svag_convergence import reference_model

    if not isinstance(problem, Problem):
        raise ValueError(f"`problem` must be a sde_engine.problems.Problem, got {problem!r}")
    ok, why = coupling_applies(problem)
    if not ok:
        raise ValueError(f"`problem` {problem.name}: {why}; use the independent estimator "
                         f"(run_optimizer against a separate SDE reference)")
    if not isinstance(optimizer, Optimizer) or optimizer.name not in NOISE_SIGN:
        raise ValueError(f"`optimizer` must be one of {sorted(NOISE_SIGN)} (an Optimizer), got "
                         f"{optimizer!r}")
    n_steps = check.positive_int(n_steps, "n_steps")
    n_paths = check.positive_int(n_paths, "n_paths")
    substeps = check.positive_int(substeps, "substeps")
    if substeps < 2 or substeps % 2:
        raise ValueError(f"`substeps` must be an even integer ≥ 2 (the coarse SDE takes "
                         f"substeps/2), got {substeps}")
    seed = check.nonnegative_int(seed, "seed")
    path_offset = check.nonnegative_int(path_offset, "path_offset", upper=2**62)
    check.choice(on_divergence, "on_divergence", DIVERGENCE_POLICIES)
    n_threads = check_n_threads(n_threads)
    steps = _record_steps(record_steps, n_steps)
    if observables is None:
        if n_observables is not None:
            raise ValueError(f"`n_observables` ({n_observables!r}) is only for a callable "
                             f"`observables`")
        phi, n_phi = theta_observables(problem.loss), len(DEFAULT_LABELS)
        labels = DEFAULT_LABELS if labels is None else labels
    else:
        n_phi = check.positive_int(n_observables, "n_observables")
        phi = observables if isinstance(observables, numba.core.registry.CPUDispatcher) \
            else njit(observables)
        _probe(phi, n_phi, np.asarray(theta0, dtype=float).reshape(-1, problem.dim)[0],
               problem.params)
    labels = tuple(labels) if labels is not None else tuple(f"phi[{q}]" for q in range(n_phi))
    if len(labels) != n_phi:
        raise ValueError(f"`labels` must name the {n_phi} observables, got {labels!r}")

    model = reference_model(problem, optimizer, sde_order)
    x0 = np.ascontiguousarray(_initial_states(problem, optimizer, model, theta0, m0, v0))
    d, n_opt, n_sde = problem.dim, len(optimizer.blocks) * problem.dim, model.sde.dim
    h = optimizer.time_per_step
    dt = h / substeps
    setup = (optimizer.hyper_for_run(n_steps), d, n_opt, n_sde, substeps, dt,
             math.sqrt(dt), NOISE_SIGN[optimizer.name], len(model.sde.params) - len(problem.params),
             n_phi)
    run = _compiled_driver(problem, optimizer, model, phi)
    with numba_threads(n_threads):
        out = run_paths(run, x0, n_steps, steps, model.sde.params, setup, seed, path_offset,
                        n_paths, len(QUANTITIES) * n_phi, save_x=False)
    names = [f"{name}[{label}]" for name in QUANTITIES for label in labels]
    report = streamed_report(out["diverged"], path_offset, lambda k: k * h, names)
    enforce_divergence_policy(report, path_offset, on_divergence, ())
    shape = (len(steps), len(QUANTITIES), n_phi)
    return CoupledWeakError(
        mean=out["mean"].reshape(shape), m2=out["m2"].reshape(shape), counts=out["counts"],
        steps=steps, t=steps * h, labels=labels, substeps=substeps,
        n_paths=n_paths, diverged=report,
        info=dict(optimizer=optimizer.name, hyperparameters=dict(optimizer.hyperparameters),
                  sde_order=sde_order,
                  problem=problem.name, noise_scale=problem.noise_scale, h=h, dt=dt,
                  seed=seed, path_offset=path_offset, n_steps=n_steps))


def _record_steps(record_steps, n_steps):
    if record_steps is None:
        return np.array([n_steps], dtype=np.int64)
    arr = np.atleast_1d(np.asarray(record_steps))
    if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu" \
            or np.any(arr < 1) or np.any(arr > n_steps) or np.any(np.diff(arr) < 0):
        raise ValueError(f"`record_steps` must be non-decreasing whole steps in "
                         f"[1, n_steps={n_steps}], got {record_steps!r}")
    return np.ascontiguousarray(arr.astype(np.int64))


def _probe(phi, n_phi, theta, params):
    out = np.full(n_phi, np.nan)
    try:
        getattr(phi, "py_func", phi)(np.array(theta), params, out)
    except Exception as exc:
        raise ValueError(f"`observables` failed when writing {n_phi} values "
                         f"(`n_observables`): {type(exc).__name__}: {exc}") from exc
    if not np.all(np.isfinite(out)):
        raise ValueError(f"`observables` left some of its {n_phi} outputs unset or "
                         f"non-finite at theta0: {out}")


def _initial_states(problem, optimizer, model, theta0, m0, v0):
    """[discrete state ; SDE state ; SDE state], shape (1 or n_paths, n_opt + 2·n_sde)."""
    theta0 = np.asarray(theta0, dtype=np.float64)
    if theta0.shape[-1:] != (problem.dim,) or theta0.ndim not in (1, 2):
        raise ValueError(f"`theta0` must have shape ({problem.dim},) or (n_paths, "
                         f"{problem.dim}), got {theta0.shape}")
    disc = optimizer.init(theta0, m0=m0, v0=v0)
    moments = {}
    if "m" in optimizer.blocks:
        moments["m0"] = m0
    if "v" in optimizer.blocks:
        moments["v0"] = v0
    sde = np.atleast_2d(model.initial_state(theta0, **moments))
    disc = np.atleast_2d(disc)
    n = max(disc.shape[0], sde.shape[0])
    return np.concatenate([np.broadcast_to(disc, (n, disc.shape[1])),
                           np.broadcast_to(sde, (n, sde.shape[1])),
                           np.broadcast_to(sde, (n, sde.shape[1]))], axis=1)


def _compiled_driver(problem, optimizer, model, phi):
    key = (problem.grad, problem.noise_sqrt, optimizer.update, model.sde.drift_jit,
           model.sde.diffusion_jit, phi)
    if key not in _COMPILED:
        _COMPILED[key] = make_driver(make_coupled_kernel(
            problem.grad, problem.noise_sqrt, optimizer.update, make_step(model.sde), phi))
    return _COMPILED[key]


def make_coupled_kernel(grad, noise_sqrt, update, em_step, phi):
    """The :class:`~solvers.driver.PathKernel` of one coupled path.

    State x = [discrete (n_opt) ; fine SDE (n_sde) ; coarse SDE (n_sde)].
    ``setup = (hyper, d, n_opt, n_sde, m, dt, √dt, s, n_head, n_phi)`` with
    ``hyper`` the optimizer's run vector, dt = h/m, s the noise sign and
    ``n_head`` the number of SDE constants before the problem's params in the
    driver's ``params`` (the SDE's). ``work`` = (normals, rejected_at,
    rejected_words, ξ (d), g (d), S (d, d), EM work, ΔW (d), a, b (n_sde),
    φ scratch (3, n_phi)).
    """

    @njit(inline="always")
    def steps_per_block(setup):
        return max(1, BLOCK_NORMALS // (setup[4] * setup[1]))

    @njit
    def new_work(dim, setup):
        d, n_sde, n_phi = setup[1], setup[3], setup[9]
        block = steps_per_block(setup) * setup[4] * d
        em = (np.empty(n_sde), np.empty((n_sde, d)), np.empty((n_sde, d)), np.empty(n_sde))
        return (np.empty(block), np.empty(block, dtype=np.int64),
                np.empty(block, dtype=np.uint64), np.empty(d), np.empty(d), np.empty((d, d)),
                em, np.empty(d), np.empty(n_sde), np.empty(n_sde), np.empty((3, n_phi)))

    @njit(inline="always")
    def start_path(work, setup):
        pass

    @njit(inline="always")
    def draw_block(n_steps, rng, work, setup):
        fill_normal_block(rng, work[0], n_steps * setup[4] * setup[1], 1.0, work[1], work[2])

    @njit
    def sde_steps(k, x, x_new, offset, group, params, work, setup, first):
        # one copy of the SDE over [(k−1)h, kh]: m/group EM steps of group·dt on sums of
        # `group` sub-increments; the time is simulate's t0 + (K − 1)·step, so that
        # both give the same path (one call site of the inlined step keeps compiling cheap)
        d, n_sde, m = setup[1], setup[3], setup[4]
        sqrt_dt, sign = setup[6], setup[7]
        normals, dW, a, b = work[0], work[7], work[8], work[9]
        n = m // group
        step = setup[5] * group
        for c in range(n_sde):
            a[c] = x[offset + c]
        for j in range(n):
            for c in range(d):
                z = 0.0
                for r in range(group):
                    z += normals[first + (j * group + r) * d + c]
                dW[c] = sign * (z * sqrt_dt)
            em_step(((k - 1) * n + j) * step, step, a, dW, params, work[6], b)
            for c in range(n_sde):
                a[c] = b[c]
        for c in range(n_sde):
            x_new[offset + c] = a[c]

    @njit
    def discrete_step(k, x, x_new, params, work, setup, first):
        # ξ = Σ_j ξ_j / √m, g = ∇f + σ S ξ, then the optimizer's update
        d, n_opt, m, n_head = setup[1], setup[2], setup[4], setup[8]
        normals, xi, g, S = work[0], work[3], work[4], work[5]
        pp = params[n_head:]
        for c in range(d):
            xi[c] = 0.0
        for j in range(m):
            for c in range(d):
                xi[c] += normals[first + j * d + c]
        inv = 1.0 / math.sqrt(m)
        grad(x[:d], pp, g)
        noise_sqrt(x[:d], pp, S)
        for r in range(d):
            acc = 0.0
            for c in range(d):
                acc += S[r, c] * (xi[c] * inv)
            g[r] += pp[0] * acc
        update(k, g, x[:n_opt], setup[0], x_new[:n_opt])

    @njit
    def advance(k, i, x, rng, params, work, setup, x_new):
        first = i * setup[4] * setup[1]
        discrete_step(k, x, x_new, params, work, setup, first)
        for copy in range(2):           # fine (m steps), then coarse (m/2 steps of 2dt)
            sde_steps(k, x, x_new, setup[2] + copy * setup[3], 1 + copy, params, work, setup,
                      first)

    @njit
    def observe(k, x, params, work, setup, out):
        d, n_opt, n_sde, n_head, n_phi = setup[1], setup[2], setup[3], setup[8], setup[9]
        pp = params[n_head:]
        tmp = work[10]
        phi(x[:d], pp, tmp[0])
        phi(x[n_opt:n_opt + d], pp, tmp[1])
        phi(x[n_opt + n_sde:n_opt + n_sde + d], pp, tmp[2])
        for q in range(n_phi):
            disc, fine, coarse = tmp[0, q], tmp[1, q], tmp[2, q]
            out[q] = disc - fine
            out[n_phi + q] = fine - coarse
            out[2 * n_phi + q] = (disc - fine) - (fine - coarse)
            out[3 * n_phi + q] = disc
            out[4 * n_phi + q] = fine
            out[5 * n_phi + q] = 2.0 * fine - coarse

    @njit(inline="always")
    def record(work, setup, out):
        pass

    return PathKernel(new_work, start_path, steps_per_block, draw_block, advance, observe,
                      record)
