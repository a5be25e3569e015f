"""AdamQLR against SGD, SGD with momentum and Adam at small scale (issue 7, SPEC §7).

The numerics behind ``python -m experiments.adamqlr`` (which loads the config,
calls these functions and writes the figures and the summary JSON):

1. :func:`run_rosenbrock`: Rosenbrock from (1, −1): AdamQLR with Hessian
   curvature (engine optimizer, :func:`sde_engine.optimizers.adamqlr.adamqlr_run`),
   untuned (with and without the learning-rate clipping |α| ≤ 0.1 of the authors'
   untuned configuration) and tuned by a grid over (λ0, ω_dec, ω_inc), no clipping;
   GD, GD with momentum and
   Adam (``torch.optim``) tuned by grids over lr (and momentum). The problem is
   deterministic, so "tuned" means the best final loss.
2. :func:`run_mlp` / :func:`summarize_mlp`: MLPs (torch, float32, tanh):
   regression 10-50-1 on load_diabetes (MSE on standardised targets),
   classification 64-50-10 on load_digits (cross-entropy). SGD, SGD with
   momentum and Adam (batch ``baseline_batch``) are tuned by a random search over
   lr (and momentum); AdamQLR (Gauss–Newton curvature) runs untuned (SPEC §7
   defaults, full batch, with and without the clipping |α| ≤ 0.1) and tuned by a
   random search over (λ0, ω_dec, ω_inc, batch size), no clipping. Every trial (seed 0) gets the same training budget of
   :data:`CLOCK` seconds and is scored by its final validation loss; the winners
   then run with the final seeds. Evaluation time is excluded from the clock.
3. :func:`run_noise`: AdamQLR on a quadratic with Gaussian gradient noise of
   scale σ (σ = 1/√B), many seeded runs; α and the final loss vs σ; the
   square-root rule on betas and eps (SPEC §5), curves against the rescaled
   step count k·κ (the SDE time kη² when η → √κ η); logistic regression with
   minibatch noise.

torch and scikit-learn are imported inside the functions that need them.
"""
import math
import time

import numpy as np

from sde_engine.optimizers.adamqlr import LR_CLIPPING, adamqlr_run
from sde_engine.problems.quadratic import quadratic
from sde_engine.problems.regression import logistic_regression, synthetic_regression
from sde_engine.problems.rosenbrock import rosenbrock

# The training clock is the process CPU time of a single-threaded run: on the shared
# machine other processes' load would otherwise distort wall-clock comparisons; on an
# idle machine the two agree.
CLOCK = time.process_time
# The authors' untuned configuration (AdamQLR_NoHPO, SPEC §7), learning-rate clipping included.
QLR_DEFAULTS = dict(damping=1e-3, omega_dec=0.5, omega_inc=2.0, lr_clipping=LR_CLIPPING)
# Untuned runs are also repeated without the clipping (the rule as it ran before SPEC §7 named
# it), in the same run, so that the clipping's effect is measured under the same machine load.
# The tuned searches and the controlled-noise study (part 3) use no clipping.
UNTUNED = {"AdamQLR untuned": QLR_DEFAULTS,
           "AdamQLR untuned, no clipping": dict(QLR_DEFAULTS, lr_clipping=None)}


# ---- 1. Rosenbrock ----------------------------------------------------------------------
def _torch_rosenbrock(opt_name, lr, momentum, x0, steps):
    import torch
    theta = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    if opt_name == "Adam":
        opt = torch.optim.Adam([theta], lr=lr)
    else:
        opt = torch.optim.SGD([theta], lr=lr, momentum=momentum)
    losses, path = [], [theta.detach().numpy().copy()]
    for _ in range(steps):
        opt.zero_grad()
        loss = (1 - theta[0]) ** 2 + 100 * (theta[1] - theta[0] ** 2) ** 2
        losses.append(float(loss.detach()))
        loss.backward()
        opt.step()
        path.append(theta.detach().numpy().copy())
    with torch.no_grad():
        losses.append(float((1 - theta[0]) ** 2 + 100 * (theta[1] - theta[0] ** 2) ** 2))
    return np.array(losses), np.array(path)


def _finite_or_inf(x):
    return float(x) if np.isfinite(x) else math.inf


def run_rosenbrock(cfg):
    """Part 1: every method on Rosenbrock from ``cfg["x0"]`` for ``cfg["steps"]`` steps.

    Returns ``{label: dict(hyperparameters, loss (steps+1,), path (steps+1, 2)
    [, alpha, damping, rho (steps,) for AdamQLR])}``; "tuned" = best final loss
    over the config's grids.
    """
    problem = rosenbrock()
    x0, steps = list(cfg["x0"]), int(cfg["steps"])
    out = {}
    best = None
    for lam in cfg["qlr_damping"]:
        for dec in cfg["qlr_omega_dec"]:
            for inc in cfg["qlr_omega_inc"]:
                hp = dict(damping=lam, omega_dec=dec, omega_inc=inc, lr_clipping=None)
                r = adamqlr_run(problem, x0, steps, noisy=False, curvature="hessian", **hp)
                score = _finite_or_inf(r.loss[0, -1])
                if best is None or score < best[0]:
                    best = (score, hp)
    for label, hp in (*UNTUNED.items(), ("AdamQLR tuned", best[1])):
        res = adamqlr_run(problem, x0, steps, noisy=False, curvature="hessian", save_path=True,
                          **hp)
        out[label] = dict(hyperparameters=hp, loss=res.loss[0], path=res.path[0],
                          alpha=res.alpha[0], damping=res.damping[0], rho=res.rho[0])
    searches = {"GD": [(lr, 0.0) for lr in cfg["gd_lr"]],
                "GD+momentum": [(lr, mu) for lr in cfg["gdm_lr"] for mu in cfg["momentum"]],
                "Adam": [(lr, 0.0) for lr in cfg["adam_lr"]]}
    for label, grid in searches.items():
        scored = []
        for lr, mu in grid:
            losses, path = _torch_rosenbrock(label, lr, mu, x0, steps)
            scored.append((_finite_or_inf(losses[-1]), lr, mu, losses, path))
        score, lr, mu, losses, path = min(scored, key=lambda s: s[0])
        hp = dict(lr=lr) if label != "GD+momentum" else dict(lr=lr, momentum=mu)
        out[label] = dict(hyperparameters=hp, loss=losses, path=path)
    return out


# ---- 2. MLPs ---------------------------------------------------------------------------
def load_task(name, split, data_seed):
    """Standardised train/val/test tensors of a scikit-learn data set."""
    import torch
    from sklearn.datasets import load_diabetes, load_digits
    X, y = (load_diabetes if name == "diabetes" else load_digits)(return_X_y=True)
    order = np.random.default_rng(data_seed).permutation(len(y))
    n_tr, n_va = int(split[0] * len(y)), int(split[1] * len(y))
    parts = order[:n_tr], order[n_tr:n_tr + n_va], order[n_tr + n_va:]
    mean, scale = X[parts[0]].mean(0), X[parts[0]].std(0)
    scale[scale == 0] = 1.0
    X = (X - mean) / scale
    if name == "diabetes":
        y = (y - y[parts[0]].mean()) / y[parts[0]].std()
        ys = [torch.tensor(y[p], dtype=torch.float32).unsqueeze(1) for p in parts]
    else:
        ys = [torch.tensor(y[p], dtype=torch.int64) for p in parts]
    xs = [torch.tensor(X[p], dtype=torch.float32) for p in parts]
    return dict(name=name, x=xs, y=ys, n_out=1 if name == "diabetes" else 10)


def _loss_fn(task):
    import torch.nn.functional as F
    return F.mse_loss if task["name"] == "diabetes" else F.cross_entropy


def _model(task, hidden, seed):
    import torch
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(task["x"][0].shape[1], hidden), torch.nn.Tanh(),
                               torch.nn.Linear(hidden, task["n_out"]))


def train(task, method, hp, seed, budget_s, cfg):
    """Train until ``budget_s`` seconds of training time; returns curves (evaluation unclocked)."""
    import torch
    from sde_engine.optimizers.adamqlr_torch import AdamQLR, module_fn
    model = _model(task, cfg["hidden"], seed)
    lf = _loss_fn(task)
    x_tr, y_tr = task["x"][0], task["y"][0]
    n = len(y_tr)
    qlr = method.startswith("AdamQLR")
    if qlr:
        opt = AdamQLR(model.parameters(), damping=hp["damping"], omega_dec=hp["omega_dec"],
                      omega_inc=hp["omega_inc"], lr_clipping=hp["lr_clipping"])
        batch = hp["batch"] or n
    elif method == "Adam":
        opt, batch = torch.optim.Adam(model.parameters(), lr=hp["lr"]), cfg["baseline_batch"]
    else:
        opt = torch.optim.SGD(model.parameters(), lr=hp["lr"], momentum=hp.get("momentum", 0.0))
        batch = cfg["baseline_batch"]
    gen = torch.Generator().manual_seed(seed)
    curve, alphas, lambdas = [], [], []

    def evaluate(clock, step):
        with torch.no_grad():
            curve.append([clock, step] + [float(lf(model(x), y))
                                          for x, y in zip(task["x"], task["y"])])

    clock, step, perm, pos = 0.0, 0, torch.randperm(n, generator=gen), 0
    evaluate(0.0, 0)
    next_eval = cfg["eval_every_s"]
    while clock < budget_s:
        if pos + batch > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        idx = perm[pos:pos + batch]
        pos += batch
        xb, yb = x_tr[idx], y_tr[idx]
        t0 = CLOCK()
        if qlr:
            opt.step(model_fn=module_fn(model, xb), loss_fn=lambda out: lf(out, yb))
        else:
            opt.zero_grad()
            lf(model(xb), yb).backward()
            opt.step()
        clock += CLOCK() - t0
        step += 1
        if qlr:
            alphas.append(opt.last_step["alpha"])
            lambdas.append(opt.last_step["damping"])
        if clock >= next_eval or clock >= budget_s:
            evaluate(clock, step)
            next_eval = clock + cfg["eval_every_s"]
            if not math.isfinite(curve[-1][2]):
                break
    out = dict(curve=np.array(curve), steps=step)
    if qlr:
        out.update(alpha=np.array(alphas), damping=np.array(lambdas))
    return out


def _sample(method, rng, cfg):
    def logu(lo_hi):
        lo, hi = lo_hi
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    if method == "SGD":
        return dict(lr=logu(cfg["sgd_lr"]))
    if method == "SGD+momentum":
        return dict(lr=logu(cfg["sgd_lr"]), momentum=float(rng.uniform(*cfg["momentum"])))
    if method == "Adam":
        return dict(lr=logu(cfg["adam_lr"]))
    return dict(damping=logu(cfg["qlr_damping"]), omega_dec=float(rng.uniform(*cfg["qlr_omega_dec"])),
                omega_inc=float(rng.uniform(*cfg["qlr_omega_inc"])),
                batch=int(rng.choice(cfg["qlr_batch"])), lr_clipping=None)


def step_cost(task, cfg, batch):
    """Median seconds per step of Adam and AdamQLR (GN, Hessian) at one batch size.

    The three optimizers step in turn (interleaved), so load from other processes
    on the machine affects them alike.
    """
    import torch
    from sde_engine.optimizers.adamqlr_torch import AdamQLR, module_fn
    lf = _loss_fn(task)
    xb, yb = task["x"][0][:batch], task["y"][0][:batch]
    steppers = {}
    for name in ("Adam", "AdamQLR (Gauss-Newton)", "AdamQLR (Hessian)"):
        model = _model(task, cfg["hidden"], 0)
        if name == "Adam":
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)

            def stepper(model=model, opt=opt):
                opt.zero_grad()
                lf(model(xb), yb).backward()
                opt.step()
        else:
            opt = AdamQLR(model.parameters(),
                          curvature="hessian" if "Hessian" in name else "gauss_newton")

            def stepper(model=model, opt=opt):
                opt.step(model_fn=module_fn(model, xb), loss_fn=lambda out: lf(out, yb))
        steppers[name] = stepper
    times = {name: [] for name in steppers}
    for i in range(cfg["cost_steps"]):
        for name, stepper in steppers.items():
            t0 = CLOCK()
            stepper()
            if i >= 5:   # warm-up
                times[name].append(CLOCK() - t0)
    med = {name: float(np.median(ts)) for name, ts in times.items()}
    return dict(batch=batch, seconds=med,
                ratio={k: v / med["Adam"] for k, v in med.items() if k != "Adam"})


def run_mlp(name, cfg, quick):
    """Part 2 on data set ``name`` ("diabetes" or "digits"): random search, then final seeds.

    Every run gets ``cfg[name]["budget_s"]`` seconds of :data:`CLOCK` (a tenth
    with ``quick``, which also cuts trials and seeds). Returns the task, the
    budget, the chosen and searched hyperparameters, the runs of :func:`train`
    per method and seed, and :func:`step_cost` at the baseline and full batch.
    """
    task = load_task(name, cfg["split"], cfg["data_seed"])
    budget = cfg[name]["budget_s"] * (0.1 if quick else 1.0)
    n_trials = 2 if quick else cfg["n_trials"]
    seeds = cfg["seeds"][:2] if quick else cfg["seeds"]
    rng = np.random.default_rng(cfg["data_seed"] + (0 if name == "diabetes" else 1))
    chosen, searches = {}, {}
    for method in ("SGD", "SGD+momentum", "Adam", "AdamQLR tuned"):
        trials = []
        for _ in range(n_trials):
            hp = _sample(method, rng, cfg)
            val = train(task, method, hp, 0, budget, cfg)["curve"][-1, 3]
            trials.append(dict(hyperparameters=hp, val_loss=_finite_or_inf(val)))
        searches[method] = trials
        chosen[method] = min(trials, key=lambda t: t["val_loss"])["hyperparameters"]
    for label, hp in UNTUNED.items():
        chosen[label] = dict(hp, batch=0)
    runs = {m: [train(task, m, hp, s, budget, cfg) for s in seeds] for m, hp in chosen.items()}
    n_train = len(task["y"][0])
    cost = [step_cost(task, cfg, b) for b in (cfg["baseline_batch"], n_train)]
    return dict(task=task, budget_s=budget, chosen=chosen, searches=searches, runs=runs,
                step_cost=cost)


def on_grid(curves, grid, column):
    """Each run's ``column`` as a step function of time on ``grid``; shape (n_runs, n_grid)."""
    out = np.full((len(curves), len(grid)), np.nan)
    for i, c in enumerate(curves):
        j = np.searchsorted(c[:, 0], grid, side="right") - 1
        ok = j >= 0
        out[i, ok] = c[j[ok], column]
        out[i, grid > c[-1, 0]] = np.nan
    return out


def summarize_mlp(res):
    """Final numbers of :func:`run_mlp`: medians over seeds of the train/val/test loss,
    the early-stopped test loss, steps taken and, for AdamQLR, median |α| over the
    second half of each run."""
    out = dict(budget_s=res["budget_s"], chosen=res["chosen"], searches=res["searches"],
               step_cost=res["step_cost"], final={})
    for label, runs in res["runs"].items():
        final = np.array([r["curve"][-1, 2:] for r in runs])
        # early stopping: the test loss at the evaluation with the lowest validation loss
        early = [r["curve"][np.nanargmin(r["curve"][:, 3]), 4] for r in runs]
        out["final"][label] = dict(
            train_median=float(np.median(final[:, 0])), val_median=float(np.median(final[:, 1])),
            test_median=float(np.median(final[:, 2])), test_per_seed=final[:, 2],
            early_stopped_test_median=float(np.median(early)),
            steps_median=float(np.median([r["steps"] for r in runs])))
        if label.startswith("AdamQLR"):
            out["final"][label]["alpha_median_last_half"] = float(np.median(np.concatenate(
                [np.abs(r["alpha"][len(r["alpha"]) // 2:]) for r in runs])))
    return out


# ---- 3. controlled noise --------------------------------------------------------------
def run_noise(cfg, quick):
    """Part 3: AdamQLR under controlled gradient noise (engine, seeded runs).

    Returns per σ the mean |α| per step, its second-half mean (± s.e. over
    runs), the fraction of negative α and E f at the end (± s.e.); the
    square-root rule ("sqrt") against unchanged betas/eps ("none") per κ; and
    logistic regression per batch size, with the exact-gradient runs as
    references. ``quick`` uses 32 runs.
    """
    d = int(cfg["dim"])
    h = np.logspace(np.log10(cfg["h_min"]), np.log10(cfg["h_max"]), d)
    x0 = np.full(d, float(cfg["x0"]))
    n_paths = 32 if quick else int(cfg["n_paths"])
    steps = int(cfg["steps"])
    base = quadratic(h)
    clean = adamqlr_run(base, x0, steps, noisy=False, curvature="gauss_newton", lr_clipping=None)
    sweep = []
    for sigma in cfg["sigmas"]:
        r = adamqlr_run(base.with_noise_scale(sigma), x0, steps, n_paths=n_paths,
                        seed=cfg["seed"], curvature="gauss_newton", lr_clipping=None)
        final = r.loss[:, -1]
        late = r.alpha[:, steps // 2:]
        per_path = np.abs(late).mean(axis=1)
        sweep.append(dict(sigma=sigma, batch=1.0 / sigma ** 2,
                          alpha_abs_mean=np.abs(r.alpha).mean(axis=0),
                          alpha_last_half=float(late.mean()),
                          alpha_abs_last_half=float(per_path.mean()),
                          alpha_abs_last_half_se=float(per_path.std(ddof=1) / math.sqrt(n_paths)),
                          negative_fraction_last_half=float((late < 0).mean()),
                          final_loss=float(final.mean()),
                          final_loss_se=float(final.std(ddof=1) / math.sqrt(n_paths)),
                          loss_mean=r.loss.mean(axis=0)))
    scaling = {}
    b1, b2 = cfg["scaling_betas"]
    for rule in ("sqrt", "none"):
        scaling[rule] = []
        for kappa in cfg["scaling_kappas"]:
            if rule == "sqrt":
                betas = (1 - kappa * (1 - b1), 1 - kappa * (1 - b2))
                eps = cfg["scaling_eps"] / math.sqrt(kappa)
            else:
                betas, eps = (b1, b2), cfg["scaling_eps"]
            n = int(cfg["scaling_steps"]) // kappa
            r = adamqlr_run(base.with_noise_scale(cfg["scaling_sigma"] / math.sqrt(kappa)), x0, n,
                            n_paths=n_paths, seed=cfg["seed"], curvature="gauss_newton",
                            lr_clipping=None, betas=betas, eps=eps)
            scaling[rule].append(dict(kappa=kappa, betas=betas, eps=eps, steps=n,
                                      t=np.arange(n + 1) * kappa, loss_mean=r.loss.mean(axis=0),
                                      loss_se=r.loss.std(axis=0, ddof=1) / math.sqrt(n_paths),
                                      alpha_mean=r.alpha.mean(axis=0),
                                      final_loss=float(r.loss[:, -1].mean()),
                                      final_loss_se=float(r.loss[:, -1].std(ddof=1)
                                                          / math.sqrt(n_paths))))
    X, y, _ = synthetic_regression(cfg["logistic_samples"], cfg["logistic_features"],
                                   kind="logistic", noise=cfg["logistic_label_noise"],
                                   seed=cfg["seed"])
    logistic = []
    for batch in cfg["logistic_batches"]:
        problem = logistic_regression(X, y, batch)
        r = adamqlr_run(problem, np.zeros(X.shape[1]), steps, n_paths=n_paths, seed=cfg["seed"],
                        curvature="gauss_newton", lr_clipping=None)
        per_path = np.abs(r.alpha[:, steps // 2:]).mean(axis=1)
        logistic.append(dict(batch=batch, sigma=1 / math.sqrt(batch),
                             alpha_abs_mean=np.abs(r.alpha).mean(axis=0),
                             alpha_abs_last_half=float(per_path.mean()),
                             alpha_abs_last_half_se=float(per_path.std(ddof=1) / math.sqrt(n_paths)),
                             negative_fraction_last_half=float((r.alpha[:, steps // 2:] < 0).mean()),
                             final_loss=float(r.loss[:, -1].mean()),
                             final_loss_se=float(r.loss[:, -1].std(ddof=1) / math.sqrt(n_paths))))
    full = logistic_regression(X, y, X.shape[0])
    clean_logistic = adamqlr_run(full, np.zeros(X.shape[1]), steps, noisy=False,
                                 curvature="gauss_newton", lr_clipping=None)
    return dict(h=h, n_paths=n_paths, steps=steps, clean_loss=clean.loss[0],
                clean_alpha=clean.alpha[0], sweep=sweep, scaling=scaling, logistic=logistic,
                logistic_clean_loss=clean_logistic.loss[0])


def subsample(record, max_points=200):
    """Copy of ``record`` with every curve longer than ``max_points`` thinned.

    ``record`` is a tree of dicts, lists and arrays. A 1-D numeric sequence of
    length n > ``max_points`` keeps the entries 0, s, 2s, … with stride
    s = ⌈n / (max_points − 1)⌉, and always the last one (index n − 1), so at
    most ``max_points`` + 1 values; the sibling key ``<key>_subsampled`` records
    ``{"stride": s, "length": n}``. Scalars, short sequences and other values
    are kept as they are.
    """
    if isinstance(record, dict):
        out = {}
        for key, value in record.items():
            arr = np.asarray(value) if isinstance(value, (list, tuple, np.ndarray)) else None
            if arr is not None and arr.ndim == 1 and arr.dtype.kind in "fiu" \
                    and arr.size > max_points:
                stride = -(-arr.size // (max_points - 1))
                idx = np.arange(0, arr.size, stride)
                if idx[-1] != arr.size - 1:
                    idx = np.append(idx, arr.size - 1)
                out[key] = arr[idx]
                out[f"{key}_subsampled"] = {"stride": int(stride), "length": int(arr.size)}
            else:
                out[key] = subsample(value, max_points)
        return out
    if isinstance(record, (list, tuple)):
        return [subsample(v, max_points) for v in record]
    return record
