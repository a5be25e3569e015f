"""Batch-size sweeps with and without a scaling rule (SPEC §5).

The same problem is run at batch sizes B = κ·B0 (σ = σ0/√κ; minibatch
problems change B itself), each with hyperparameters mapped from those tuned
at B0 by a rule:

* ``"sqrt"``      — the square-root rule (RMSprop/Adam): lr √κ, 1−β → κ(1−β), eps/√κ;
* ``"linear"``    — the linear rule (SGD): lr κ;
* ``"linear_lr"`` — contrast for adaptive methods: lr κ, betas and eps unchanged;
* ``"none"``      — the B0 hyperparameters at every B.

A run at B takes n_steps/κ steps (the same number of examples as n_steps steps
at B0) and is recorded at the same fractions of the run. Curves are plotted
against the SDE time of the base run, t = (k κ)·η0^p (p = 2 for RMSprop/Adam,
1 for SGD, SPEC §3): under the matching rule this is exactly k·η_B^p, the SDE
time of the run itself, so the curves of all B should agree when the SDE
describes the algorithms; under the contrast rules they need not.

Agreement with the base batch is measured per record time by
z = (mean_B − mean_B0)/√(se_B² + se_B0²) (independent runs); |z| ≲ 3 is
agreement within Monte Carlo error.

The SDE needs the noise to dominate the gradient (SPEC §3). The check
:func:`noise_dominance` reports, at given points θ, the ratio
σ_B √diag Σ(θ) / |∇f(θ)| coordinate-wise; where it is small the rule may fail.
"""
import math

import numpy as np

from .. import validation as check
from ..models.scaling import linear_rule, rescale_v, sqrt_rule
from ..optimizers.base import Optimizer
from ..runner import run_optimizer

RULES = ("sqrt", "linear", "linear_lr", "none")


def rule_hyperparameters(optimizer, rule, kappa):
    """Hyperparameters of ``optimizer`` at batch ratio ``kappa`` under ``rule``.

    Returns a dict of torch.optim-style keywords (``bias_correction`` kept).
    The square-root rule refuses κ(1−β) ≥ 1 with a ``ValueError``.
    """
    check.choice(rule, "rule", RULES)
    hp = dict(optimizer.hyperparameters)
    core = {k: v for k, v in hp.items() if k != "bias_correction"}
    if rule == "sqrt":
        if optimizer.name == "sgd":
            raise ValueError("rule 'sqrt' is for RMSprop/Adam; SGD uses rule 'linear'")
        hp.update(sqrt_rule(kappa, **core))
    elif rule in ("linear", "linear_lr"):
        hp.update(linear_rule(kappa, lr=core["lr"]))
    return hp


def problem_at(problem, kappa, base_batch):
    """``problem`` at batch size κ·B0: ``with_batch_size`` if it has one, else σ/√κ."""
    if hasattr(problem, "with_batch_size"):
        batch = kappa * base_batch
        if abs(batch - round(batch)) > 1e-9:
            raise ValueError(f"batch size kappa*base_batch must be whole, got {batch}")
        return problem.with_batch_size(int(round(batch)))
    return problem.with_noise_scale(problem.noise_scale / math.sqrt(kappa))


def noise_dominance(problem, thetas):
    """σ √diag Σ(θ) / |∇f(θ)| per coordinate at each θ (SPEC §3's regime check).

    Parameters
    ----------
    problem : Problem
        At the batch size of interest (σ = problem.noise_scale).
    thetas : array_like, shape (n, d)

    Returns
    -------
    ndarray, shape (n, d)
        The ratio (inf where ∇f_i = 0). Values ≫ 1: noise dominates, the SDE
        (and the scaling rule) applies; values ≲ 1: it may not.
    """
    thetas = np.atleast_2d(np.asarray(thetas, dtype=np.float64))
    if thetas.shape[1] != problem.dim:
        raise ValueError(f"`thetas` must have shape (n, {problem.dim}), got {thetas.shape}")
    out = np.empty_like(thetas)
    for i, theta in enumerate(thetas):
        noise = problem.noise_scale * np.sqrt(np.clip(np.diag(problem.noise_cov(theta)), 0, None))
        grad = np.abs(problem.grad_at(theta))
        with np.errstate(divide="ignore"):
            out[i] = np.where(grad > 0, noise / np.where(grad > 0, grad, 1.0), np.inf)
    return out


def scaling_sweep(problem, optimizer, theta0, n_steps, *, base_batch, batch_sizes, rule,
                  n_runs=1000, n_records=16, v0=None, seed=0, observables=("loss",),
                  n_threads=None, progress=None):
    """Run ``optimizer`` on ``problem`` at several batch sizes under ``rule``.

    Parameters
    ----------
    problem : Problem
        At the base batch B0 (σ0 = ``problem.noise_scale``).
    optimizer : Optimizer
        Hyperparameters tuned at B0.
    theta0 : array_like, shape (d,)
    n_steps : int
        Steps at B0; the run at B = κ·B0 takes n_steps/κ steps (must be whole).
    base_batch : int
        B0.
    batch_sizes : sequence of int
        B values (multiples or divisors of B0 with whole step counts).
    rule : {"sqrt", "linear", "linear_lr", "none"}
    n_runs : int
        Independent runs per batch size.
    n_records : int
        Record points, evenly spaced in the base run (each must be a whole
        step of every run).
    v0 : float or array_like, optional
        Initial v at B0; the square-root rule rescales it to v0/κ.
    seed : int
    observables : sequence of str
        Names for :func:`~sde_engine.runner.run_optimizer`. θ is always
        recorded for the noise-dominance check, but reported only if asked for.
    n_threads : int, optional
    progress : callable, optional
        Called with one line per batch size.

    Returns
    -------
    dict
        ``t`` (n_records+1,): base SDE times; ``labels``; per batch size
        (``runs[B]``): ``kappa``, ``hyperparameters``, ``steps``, ``mean`` and
        ``stderr`` (n_records+1, n_labels), ``z`` against B0, ``max_abs_z``
        and ``max_rel_diff`` per label, and ``noise_dominance`` (min and median
        over coordinates at θ0 and at the final mean θ).
    """
    if not isinstance(optimizer, Optimizer):
        raise ValueError(f"`optimizer` must be an Optimizer, got {optimizer!r}")
    check.choice(rule, "rule", RULES)
    n_steps = check.positive_int(n_steps, "n_steps")
    base_batch = check.positive_int(base_batch, "base_batch")
    batch_sizes = [check.positive_int(b, "batch_sizes") for b in batch_sizes]
    if base_batch not in batch_sizes:
        raise ValueError(f"`batch_sizes` must contain base_batch={base_batch}, got {batch_sizes}")
    n_records = check.positive_int(n_records, "n_records")
    names = list(observables) if not isinstance(observables, str) else [observables]
    extra_theta = "theta" not in names     # needed for the noise-dominance check only
    if extra_theta:
        names.append("theta")
    base_rec = np.linspace(0, n_steps, n_records + 1)
    plan = {}
    for b in batch_sizes:          # validate everything before running anything
        kappa = b / base_batch
        steps_b = n_steps / kappa
        rec_b = base_rec / kappa
        if abs(steps_b - round(steps_b)) > 1e-9 or np.any(np.abs(rec_b - np.round(rec_b)) > 1e-9):
            raise ValueError(f"`n_steps`={n_steps} and `n_records`={n_records} must give whole "
                             f"steps at batch {b} (kappa={kappa:g}): n_steps/kappa = {steps_b:g}")
        hp = rule_hyperparameters(optimizer, rule, kappa)
        plan[b] = (kappa, int(round(steps_b)), np.round(rec_b).astype(np.int64), hp)
    tau0 = optimizer.time_per_step
    runs, base = {}, None
    for b in sorted(batch_sizes, key=lambda x: x != base_batch):
        kappa, steps_b, rec_b, hp = plan[b]
        prob_b = problem_at(problem, kappa, base_batch)
        opt_b = optimizer.with_hyperparameters(**hp)
        v0_b = v0
        if v0 is not None and rule == "sqrt":
            v0_b = rescale_v(np.asarray(v0, dtype=np.float64), kappa)
        sol = run_optimizer(prob_b, opt_b, theta0, steps_b, n_runs, seed=seed, v0=v0_b,
                            record_steps=rec_b, observables=names, on_divergence="drop",
                            n_threads=n_threads)
        all_labels = sol.info["labels"]
        theta_cols = [i for i, lab in enumerate(all_labels) if lab.startswith("theta[")]
        points = np.array([np.broadcast_to(np.asarray(theta0, dtype=np.float64), (problem.dim,)),
                           sol.mean[-1, theta_cols]])
        ratio = noise_dominance(prob_b, points)
        keep = [i for i in range(len(all_labels)) if not (extra_theta and i in theta_cols)]
        labels = [all_labels[i] for i in keep]
        mean = sol.mean[:, keep]
        stderr = np.sqrt(sol.var[:, keep] / max(sol.n_used, 1))
        rec = {"kappa": kappa, "batch_size": b, "hyperparameters": hp, "steps": steps_b,
               "time_per_step": opt_b.time_per_step, "own_time": rec_b * opt_b.time_per_step,
               "mean": mean, "stderr": stderr, "n_used": sol.n_used,
               "n_diverged": len(sol.diverged.paths) if sol.diverged is not None else 0,
               "noise_dominance": {"at": ["theta0", "final mean theta"],
                                   "min": ratio.min(axis=1), "median": np.median(ratio, axis=1)}}
        if base is None:
            base = rec
        diff = mean - base["mean"]
        z = diff / np.sqrt(stderr**2 + base["stderr"]**2 + 1e-300)
        rec["z"] = z
        rec["max_abs_z"] = np.max(np.abs(z), axis=0)
        rec["max_rel_diff"] = np.max(np.abs(diff) / np.maximum(np.abs(base["mean"]), 1e-300),
                                     axis=0)
        runs[b] = rec
        if progress is not None:
            progress(f"rule={rule} B={b} (kappa={kappa:g}): {steps_b} steps, lr={hp['lr']:.4g}, "
                     f"max|z| {labels[0]} = {rec['max_abs_z'][0]:.1f}, noise/grad at end "
                     f"(median) = {rec['noise_dominance']['median'][-1]:.2g}")
    return {"rule": rule, "t": base_rec * tau0, "labels": labels, "base_batch": base_batch,
            "batch_sizes": batch_sizes, "n_runs": n_runs, "n_steps": n_steps,
            "optimizer": repr(optimizer), "runs": {b: runs[b] for b in batch_sizes}}


def newton_minimum(problem, theta0=None, *, tol=1e-12, max_iter=100):
    """Minimiser of a smooth, strictly convex ``problem`` by Newton's method on ``hessian``.

    Used to start sweeps where the noise dominates (at θ*, ∇f = 0). Stops when
    max |∇f| < tol; raises if it does not converge in ``max_iter`` steps.
    """
    theta = np.zeros(problem.dim) if theta0 is None else np.array(theta0, dtype=np.float64)
    for _ in range(check.positive_int(max_iter, "max_iter")):
        grad = problem.grad_at(theta)
        if np.max(np.abs(grad)) < tol:
            return theta
        theta = theta - np.linalg.solve(problem.hessian(theta), grad)
    raise ValueError(f"Newton's method did not reach max|grad| < {tol:g} in {max_iter} steps "
                     f"(max|grad| = {np.max(np.abs(grad)):.3g}); is the problem strictly convex?")


def sklearn_logistic(dataset, batch_size, *, l2=1e-2):
    """Logistic regression with real minibatch noise on a scikit-learn data set.

    ``dataset`` is ``"breast_cancer"`` (569 × 30, binary) or ``"digits01"``
    (the 0/1 images of load_digits). Features are standardised and a constant
    column is appended (the intercept).
    """
    from sklearn import datasets

    from ..problems import logistic_regression

    check.choice(dataset, "dataset", ("breast_cancer", "digits01"))
    if dataset == "breast_cancer":
        X, y = datasets.load_breast_cancer(return_X_y=True)
    else:
        X, y = datasets.load_digits(n_class=2, return_X_y=True)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    X = np.hstack([(X - X.mean(axis=0)) / scale, np.ones((len(y), 1))])
    return logistic_regression(X, y.astype(np.float64), batch_size, l2=l2)
