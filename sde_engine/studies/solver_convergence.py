"""Strong and weak convergence of Euler–Maruyama and Milstein on GBM and OU.

Every step size of the study integrates the *same* Brownian paths: all runs use
the same seed and ``brownian_dt`` (coarse increments are sums of the finest
ones), so the reference solution on each path can be compared with each
scheme's solution on that path.

Reference on a path:

* GBM: the exact solution X_T = x0 exp((μ − σ²/2) T + σ W_T) from the saved W_T;
* OU: the exact solution is not a function of W_T alone, so the reference is
  the scheme-free fine solution with step ``min(dts) / reference_refine`` (EM is
  strong order 1 for additive noise); its step is reported.

Errors, per scheme and step size dt, estimated over paths:

* strong:  E |X^dt_T − X_T|;
* weak:    E φ(X^dt_T) − E φ(X_T) for φ(x) = x and x², estimated on coupled
  paths as the mean of φ(X^dt_T) − φ(X_T) (same expectation, far smaller
  variance than comparing two independent means).

Work is split in chunks of paths (``path_offset``), each reduced to streamed
moments and merged in chunk order (:mod:`.statistics`).
"""
import os
from dataclasses import dataclass, field

import numpy as np

from .. import examples
from .. import validation as check
from ..analysis import fit_order
from ..simulate import simulate
from .statistics import Moments, chunk_bounds

MODELS = ("gbm", "ou")
METHODS = ("euler_maruyama", "milstein")
# error kinds, in the order of the last axis of the streamed moments
KINDS = ("strong", "weak_x", "weak_x2")
EXPECTED = {("euler_maruyama", "strong"): 0.5, ("milstein", "strong"): 1.0,
            ("euler_maruyama", "weak"): 1.0, ("milstein", "weak"): 1.0}


@dataclass
class ConvergenceResult:
    """Errors of each scheme at each step size, with fitted orders.

    Attributes
    ----------
    dts : ndarray, shape (n_dt,)
    methods : tuple of str
    kinds : tuple of str
        ``KINDS``.
    error, stderr : ndarray, shape (n_methods, n_dt, n_kinds)
        Estimated error and its Monte Carlo standard error.
    fits : dict
        ``fits[method][kind]`` -> :class:`~sde_engine.analysis.OrderFit`.
    config : dict
        Everything needed to rerun the study.
    """

    dts: np.ndarray
    methods: tuple
    kinds: tuple
    error: np.ndarray
    stderr: np.ndarray
    fits: dict
    config: dict = field(default_factory=dict)

    def as_dict(self):
        return dict(
            study="solver_convergence", config=self.config, dts=self.dts,
            methods=list(self.methods), kinds=list(self.kinds),
            error={m: {k: self.error[i, :, j] for j, k in enumerate(self.kinds)}
                   for i, m in enumerate(self.methods)},
            stderr={m: {k: self.stderr[i, :, j] for j, k in enumerate(self.kinds)}
                    for i, m in enumerate(self.methods)},
            fits={m: {k: f.as_dict() for k, f in kf.items()} for m, kf in self.fits.items()},
            expected_orders={f"{m}/{k}": expected_order(self.config.get("model"), m, k)
                             for m in self.methods for k in self.kinds})

    def table(self):
        """Plain-text table: dt, then error ± stderr per scheme and kind; then the orders."""
        cols = [(i, j) for i in range(len(self.methods)) for j in range(len(self.kinds))]
        head = "dt".rjust(10) + "".join(
            f"{_short(self.methods[i]) + ' ' + self.kinds[j]:>24}" for i, j in cols)
        lines = [head]
        for n, dt in enumerate(self.dts):
            lines.append(f"{dt:10.3e}" + "".join(
                f"{self.error[i, n, j]:>13.3e} ±{self.stderr[i, n, j]:9.1e}" for i, j in cols))
        lines.append("")
        lines.append("fitted orders (95% CI) vs theory:")
        for m, kf in self.fits.items():
            for k, f in kf.items():
                theory = expected_order(self.config.get("model"), m, k)
                lines.append(f"  {m:15s} {k:8s} {f.order:6.3f}  [{f.ci[0]:6.3f}, {f.ci[1]:6.3f}]"
                             f"  theory {theory:g}" + ("".join(f"  ({n})" for n in f.notes)))
        return "\n".join(lines)


def expected_order(model, method, kind):
    """Theoretical order; EM is strong order 1 when the noise is additive (OU)."""
    if model == "ou" and kind == "strong":
        return 1.0
    return EXPECTED[(method, "strong" if kind == "strong" else "weak")]


def _short(method):
    return {"euler_maruyama": "EM", "milstein": "Mil"}.get(method, method)


_TEMPLATES = {}


def _model(model, mu, sigma, theta, mean):
    """The model's SDE; one object per model, so its compiled drivers are reused."""
    if model not in _TEMPLATES:
        _TEMPLATES[model] = examples.gbm() if model == "gbm" else examples.ornstein_uhlenbeck()
    params = [mu, sigma] if model == "gbm" else [theta, mean, sigma]
    return _TEMPLATES[model].with_params(np.array(params, dtype=float))


def solver_convergence(model="gbm", *, methods=METHODS, dts=None, t1=1.0, x0=1.0,
                       n_paths=100_000, seed=0, mu=0.5, sigma=0.8, theta=1.0, mean=0.0,
                       reference_refine=8, chunk_paths=65_536, level=0.95):
    """Run the strong/weak convergence study of EM and Milstein.

    Parameters
    ----------
    model : {"gbm", "ou"}
        dX = μX dt + σX dW (GBM) or dX = θ(mean − X) dt + σ dW (OU), 1-D.
    methods : sequence of str
        Schemes to compare.
    dts : array_like, shape (n_dt,), optional
        Step sizes, each dividing ``t1``; default t1 · 2^-k, k = 2..7.
    t1 : float
        Horizon T.
    x0 : float
        Initial state.
    n_paths : int
        Monte Carlo paths (shared by every scheme and step size).
    seed : int
        Seed of the Brownian paths.
    mu, sigma, theta, mean : float
        Model parameters (σ is the diffusion coefficient of both models).
    reference_refine : int
        OU only: the reference step is ``min(dts) / reference_refine``.
    chunk_paths : int
        Paths per unit of work; results depend on it only through the
        floating-point order of the merge.
    level : float
        Confidence level of the fitted orders.

    Returns
    -------
    ConvergenceResult
    """
    check.choice(model, "model", MODELS)
    methods = tuple(methods)
    if not methods or len(set(methods)) != len(methods):
        raise ValueError(f"`methods` must name at least one scheme, each once, from "
                         f"{', '.join(METHODS)}; got {list(methods)}")
    for m in methods:
        check.choice(m, "methods", METHODS)
    t1 = check.positive_float(t1, "t1")
    if dts is None:
        dts = t1 * 2.0 ** -np.arange(2, 8)
    dts = np.sort(np.asarray(dts, dtype=float))[::-1]
    if dts.ndim != 1 or dts.size < 2:
        raise ValueError(f"`dts` must hold at least 2 step sizes, got {dts}")
    for dt in dts:
        check.positive_float(float(dt), "dts")
        check.steps_on_grid(t1, float(dt), name="dts")
    n_paths = check.positive_int(n_paths, "n_paths")
    seed = check.nonnegative_int(seed, "seed")
    chunk_paths = check.positive_int(chunk_paths, "chunk_paths")
    reference_refine = check.positive_int(reference_refine, "reference_refine")
    x0 = float(x0)
    fine = dts[-1] / (reference_refine if model == "ou" else 1)
    for dt in dts:
        check.steps_on_grid(float(dt), fine, name="dts")   # nested grids share one path
    sde = _model(model, mu, sigma, theta, mean)
    config = dict(model=model, methods=list(methods), dts=dts.tolist(), t1=t1, x0=x0,
                  n_paths=n_paths, seed=seed, mu=mu, sigma=sigma, theta=theta, mean=mean,
                  brownian_dt=fine, chunk_paths=chunk_paths,
                  reference="exact on the Brownian path" if model == "gbm"
                  else f"EM with dt={fine:g} on the Brownian path")

    chunks = [_chunk(sde, model, methods, dts, fine, t1, x0, seed, off, n, mu, sigma)
              for off, n in chunk_bounds(n_paths, chunk_paths)]
    total = Moments.merge(chunks)
    error, stderr = total.mean, total.stderr
    fits = {m: {k: fit_order(dts, error[i, :, j], stderr[i, :, j], level=level)
                for j, k in enumerate(KINDS)} for i, m in enumerate(methods)}
    return ConvergenceResult(dts, methods, KINDS, error, stderr, fits, config)


def _chunk(sde, model, methods, dts, fine, t1, x0, seed, path_offset, n, mu, sigma):
    """Moments of the per-path errors, shape (n_methods, n_dt, n_kinds), for one chunk."""
    common = dict(x0=[x0], t_span=(0.0, t1), n_paths=n, seed=seed, path_offset=path_offset,
                  save_at=[t1], brownian_dt=fine)
    ref = None if model == "gbm" else simulate(sde, dt=fine, **common).x[-1, :, 0]
    per_path = np.empty((n, len(methods), len(dts), len(KINDS)))
    for i, method in enumerate(methods):
        for j, dt in enumerate(dts):
            sol = simulate(sde, dt=float(dt), method=method, save_brownian=ref is None, **common)
            if ref is None:   # GBM: exact solution from this run's Brownian path
                ref = examples.gbm_exact(x0, t1, sol.W[-1, :, 0], mu=mu, sigma=sigma)
            x = sol.x[-1, :, 0]
            per_path[:, i, j, 0] = np.abs(x - ref)
            per_path[:, i, j, 1] = x - ref
            per_path[:, i, j, 2] = x**2 - ref**2
    return Moments.of(per_path)


def save_convergence(result, out_dir, stem="solvers"):
    """Write ``stem``.json (numbers), ``stem``.txt (table) and ``stem``.png (figure).

    Returns
    -------
    dict
        Paths written, keyed ``json``, ``table``, ``plot``.
    """
    from .. import plotting
    from .results import write_json, write_text

    record = result.as_dict()
    paths = dict(json=os.path.join(out_dir, f"{stem}.json"),
                 table=os.path.join(out_dir, f"{stem}.txt"),
                 plot=os.path.join(out_dir, f"{stem}.png"))
    write_json(paths["json"], record)
    write_text(paths["table"], result.table() + "\n")
    plotting.save_figure(plotting.plot_convergence(record), paths["plot"])
    return paths
