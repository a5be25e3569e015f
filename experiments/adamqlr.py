"""AdamQLR at small scale (issue 7, SPEC §7): Rosenbrock, two MLPs, controlled noise.

    python -m experiments.adamqlr [--config experiments/adamqlr.toml] [--out plots] [--quick]

Writes ``adamqlr_*.png`` and ``adamqlr_results.json`` into the output folder.

1. Rosenbrock from (1, −1), 200 steps: AdamQLR with Hessian curvature (engine
   optimizer, :func:`sde_engine.optimizers.adamqlr.adamqlr_run`), untuned and
   tuned by a grid over (λ0, ω_dec, ω_inc); GD, GD with momentum and Adam
   (``torch.optim``) tuned by grids over lr (and momentum). The problem is
   deterministic, so "tuned" means the best final loss.
2. MLPs (torch, float32, tanh, one thread): regression 10-50-1 on load_diabetes
   (MSE on standardised targets), classification 64-50-10 on load_digits
   (cross-entropy). SGD, SGD with momentum and Adam (batch 64) are tuned by a
   random search over lr (and momentum); AdamQLR (Gauss–Newton curvature) runs
   untuned (SPEC §7 defaults, full batch) and tuned by a random search over
   (λ0, ω_dec, ω_inc, batch size). Every trial (seed 0) gets the same training
   wall-clock budget and is scored by its final validation loss; the winners
   then run with the final seeds. Evaluation time is excluded from the clock,
   which is the CPU time of the single-threaded process (see ``CLOCK``).
3. Controlled noise (engine): AdamQLR on a quadratic with Gaussian gradient
   noise of scale σ (σ = 1/√B), many seeded runs; α and the final loss vs σ;
   and the square-root rule on betas and eps (SPEC §5), curves plotted against
   the rescaled step count k·κ (the SDE time kη² when η → √κ η).
"""
import argparse
import math
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

from sde_engine.optimizers.adamqlr import adamqlr_run
from sde_engine.plotting import plt, save_figure
from sde_engine.problems.quadratic import quadratic
from sde_engine.problems.regression import logistic_regression, synthetic_regression
from sde_engine.problems.rosenbrock import rosenbrock
from sde_engine.studies.results import write_json

DEFAULT_CONFIG = Path(__file__).with_name("adamqlr.toml")
# The training clock is the process CPU time of a single-threaded run: on the shared
# machine other processes' load would otherwise distort wall-clock comparisons; on an
# idle machine the two agree.
CLOCK = time.process_time
QLR_DEFAULTS = dict(damping=1e-3, omega_dec=0.5, omega_inc=2.0)
COLORS = {"SGD": "C0", "SGD+momentum": "C1", "Adam": "C2", "AdamQLR untuned": "C3",
          "AdamQLR tuned": "C4", "GD": "C0", "GD+momentum": "C1"}


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
    problem = rosenbrock()
    x0, steps = list(cfg["x0"]), int(cfg["steps"])
    out = {}
    best = None
    for lam in cfg["qlr_damping"]:
        for dec in cfg["qlr_omega_dec"]:
            for inc in cfg["qlr_omega_inc"]:
                hp = dict(damping=lam, omega_dec=dec, omega_inc=inc)
                r = adamqlr_run(problem, x0, steps, noisy=False, curvature="hessian", **hp)
                score = _finite_or_inf(r.loss[0, -1])
                if best is None or score < best[0]:
                    best = (score, hp)
    for label, hp in (("AdamQLR untuned", QLR_DEFAULTS), ("AdamQLR tuned", best[1])):
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


def plot_rosenbrock(res, path):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    for label, r in res.items():
        ax.semilogy(np.maximum(r["loss"], 1e-16), label=f"{label}: {r['loss'][-1]:.2e}",
                    color=COLORS[label], ls="--" if label == "AdamQLR tuned" else "-")
    ax.set(xlabel="step", ylabel="f", title="Rosenbrock from (1, −1), final loss in legend")
    ax.legend(fontsize=7)
    ax = axes[1]
    xs, ys = np.meshgrid(np.linspace(-1.5, 2.0, 300), np.linspace(-1.5, 3.0, 300))
    ax.contour(xs, ys, np.log10((1 - xs) ** 2 + 100 * (ys - xs ** 2) ** 2 + 1e-3), 20,
               colors="0.8", linewidths=0.6)
    for label, r in res.items():
        p = np.clip(r["path"], -5, 5)
        ax.plot(p[:, 0], p[:, 1], ".-", ms=2, lw=0.8, color=COLORS[label], label=label)
    ax.plot(1, 1, "k*", ms=10)
    ax.set(xlim=(-1.5, 2.0), ylim=(-1.5, 3.0), xlabel="x", ylabel="y", title="iterates")
    ax = axes[2]
    for label in ("AdamQLR untuned", "AdamQLR tuned"):
        r = res[label]
        ax.semilogy(np.abs(r["alpha"]), color=COLORS[label], label=f"|α| {label}")
        ax.semilogy(r["damping"], color=COLORS[label], ls=":", label=f"λ {label}")
    ax.set(xlabel="step", title="AdamQLR step size |α| and damping λ")
    ax.legend(fontsize=7)
    save_figure(fig, path)


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
                      omega_inc=hp["omega_inc"])
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
                batch=int(rng.choice(cfg["qlr_batch"])))


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
    chosen["AdamQLR untuned"] = dict(QLR_DEFAULTS, batch=0)
    runs = {m: [train(task, m, hp, s, budget, cfg) for s in seeds] for m, hp in chosen.items()}
    n_train = len(task["y"][0])
    cost = [step_cost(task, cfg, b) for b in (cfg["baseline_batch"], n_train)]
    return dict(task=task, budget_s=budget, chosen=chosen, searches=searches, runs=runs,
                step_cost=cost)


def _on_grid(curves, grid, column):
    """Each run's ``column`` as a step function of time on ``grid``; shape (n_runs, n_grid)."""
    out = np.full((len(curves), len(grid)), np.nan)
    for i, c in enumerate(curves):
        j = np.searchsorted(c[:, 0], grid, side="right") - 1
        ok = j >= 0
        out[i, ok] = c[j[ok], column]
        out[i, grid > c[-1, 0]] = np.nan
    return out


def plot_mlp(res, path):
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.2))
    grid = np.linspace(0.0, res["budget_s"], 200)
    for label, runs in res["runs"].items():
        for ax, col, what in ((axes[0], 2, "train"), (axes[1], 4, "test")):
            vals = _on_grid([r["curve"] for r in runs], grid, col)
            with np.errstate(all="ignore"):
                med = np.nanmedian(vals, axis=0)
                lo, hi = np.nanmin(vals, axis=0), np.nanmax(vals, axis=0)
            ax.plot(grid, med, color=COLORS[label], label=label,
                    ls="--" if label == "AdamQLR tuned" else "-")
            ax.fill_between(grid, lo, hi, color=COLORS[label], alpha=0.15)
            ax.set(yscale="log", xlabel="training time (s, CPU of 1 thread)",
                   ylabel=f"{what} loss", title=f"{res['task']['name']}: {what} loss")
    for label in ("AdamQLR untuned", "AdamQLR tuned"):
        for ax, key in ((axes[2], "alpha"), (axes[3], "damping")):
            n = min(len(r[key]) for r in res["runs"][label])
            med = np.median(np.abs(np.stack([r[key][:n] for r in res["runs"][label]])), axis=0)
            ax.semilogy(med, color=COLORS[label], label=label)
            ax.set(xlabel="step", title="|α| (median over seeds)" if key == "alpha"
                   else "damping λ (median over seeds)")
    axes[0].legend(fontsize=7)
    axes[2].legend(fontsize=7)
    fig.suptitle(f"{res['task']['name']}: median over seeds, band = min–max; budget "
                 f"{res['budget_s']:g} s per run", fontsize=9)
    save_figure(fig, path)


def summarize_mlp(res):
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
    d = int(cfg["dim"])
    h = np.logspace(np.log10(cfg["h_min"]), np.log10(cfg["h_max"]), d)
    x0 = np.full(d, float(cfg["x0"]))
    n_paths = 32 if quick else int(cfg["n_paths"])
    steps = int(cfg["steps"])
    base = quadratic(h)
    clean = adamqlr_run(base, x0, steps, noisy=False, curvature="gauss_newton")
    sweep = []
    for sigma in cfg["sigmas"]:
        r = adamqlr_run(base.with_noise_scale(sigma), x0, steps, n_paths=n_paths,
                        seed=cfg["seed"], curvature="gauss_newton")
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
                            betas=betas, eps=eps)
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
                        curvature="gauss_newton")
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
                                 curvature="gauss_newton")
    return dict(h=h, n_paths=n_paths, steps=steps, clean_loss=clean.loss[0],
                clean_alpha=clean.alpha[0], sweep=sweep, scaling=scaling, logistic=logistic,
                logistic_clean_loss=clean_logistic.loss[0])


def plot_noise(res, path):
    fig, axes = plt.subplots(1, 5, figsize=(24, 4.2))
    sig = np.array([s["sigma"] for s in res["sweep"]])
    ax = axes[0]
    for s in res["sweep"]:
        ax.semilogy(s["alpha_abs_mean"], label=f"σ={s['sigma']:g} (B={s['batch']:.3g})")
    ax.semilogy(np.abs(res["clean_alpha"]), "k--", label="exact gradient")
    ax.set(xlabel="step", title="E|α| vs step (quadratic, Gaussian noise)")
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.errorbar(sig, [s["alpha_abs_last_half"] for s in res["sweep"]],
                yerr=[2 * s["alpha_abs_last_half_se"] for s in res["sweep"]], fmt="o-",
                label="E|α| (±2 se)")
    ax.set(xscale="log", yscale="log", xlabel="σ = 1/√B", title="2nd half of the run vs σ")
    ax_neg = ax.twinx()
    ax_neg.plot(sig, [s["negative_fraction_last_half"] for s in res["sweep"]], "s:", color="C3",
                label="fraction α < 0")
    ax_neg.set(ylim=(0, 1))
    ax.legend(loc="upper left", fontsize=7)
    ax_neg.legend(loc="lower right", fontsize=7)
    ax2 = axes[2]
    final = np.array([s["final_loss"] for s in res["sweep"]])
    ax2.errorbar(sig, final, yerr=[2 * s["final_loss_se"] for s in res["sweep"]], fmt="o-",
                 label=f"noisy (exact gradient: {res['clean_loss'][-1]:.1e})")
    ax2.plot(sig, final[-1] * (sig / sig[-1]) ** 2, "k:", label="∝ σ² guide")
    ax2.set(xscale="log", yscale="log", xlabel="σ = 1/√B",
            title=f"E f after {res['steps']} steps (±2 se)")
    ax2.legend(fontsize=7)
    ax = axes[3]
    for rule, ls in (("sqrt", "-"), ("none", ":")):
        for i, s in enumerate(res["scaling"][rule]):
            ax.semilogy(s["t"], s["loss_mean"], ls=ls, color=f"C{i}",
                        label=f"{rule} rule, κ={s['kappa']}")
    ax.set(xlabel="k·κ (SDE time / η_0²)", title="square-root rule on betas/eps: E f")
    ax.legend(fontsize=7)
    ax = axes[4]
    batches = [s["batch"] for s in res["logistic"]]
    ax.errorbar(batches, [s["final_loss"] - res["logistic_clean_loss"][-1] for s in res["logistic"]],
                yerr=[2 * s["final_loss_se"] for s in res["logistic"]], fmt="o-",
                label="E f − f(exact-gradient run)")
    ax.errorbar(batches, [s["alpha_abs_last_half"] for s in res["logistic"]],
                yerr=[2 * s["alpha_abs_last_half_se"] for s in res["logistic"]], fmt="s--",
                label="E|α|, 2nd half")
    ax.set(xscale="log", yscale="log", xlabel="batch size B (σ = 1/√B)",
           title="logistic regression, minibatch noise (±2 se)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


# ---- driver ------------------------------------------------------------------------------
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m experiments.adamqlr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(DEFAULT_CONFIG))
    parser.add_argument("--out", default=None, help="output folder (default: config out_dir)")
    parser.add_argument("--quick", action="store_true", help="tiny budgets (smoke test)")
    args = parser.parse_args(argv)
    with open(args.config, "rb") as fh:
        cfg = tomllib.load(fh)
    out = Path(args.out or cfg["out_dir"])
    import torch
    torch.set_num_threads(int(cfg["threads"]))
    start = time.perf_counter()
    record = {}

    t0 = time.perf_counter()
    ros = run_rosenbrock(cfg["rosenbrock"])
    plot_rosenbrock(ros, out / "adamqlr_rosenbrock.png")
    record["rosenbrock"] = {k: dict(hyperparameters=v["hyperparameters"],
                                    final_loss=float(v["loss"][-1]), loss=v["loss"],
                                    **({"alpha": v["alpha"], "damping": v["damping"]}
                                       if "alpha" in v else {}))
                            for k, v in ros.items()}
    print(f"rosenbrock ({time.perf_counter() - t0:.0f}s): " + ", ".join(
        f"{k} {v['loss'][-1]:.3g}" for k, v in ros.items()), flush=True)

    for name in ("diabetes", "digits"):
        t0 = time.perf_counter()
        res = run_mlp(name, cfg["mlp"], args.quick)
        plot_mlp(res, out / f"adamqlr_{name}.png")
        record[name] = summarize_mlp(res)
        print(f"{name} ({time.perf_counter() - t0:.0f}s): " + ", ".join(
            f"{k} test {v['test_median']:.3g}" for k, v in record[name]["final"].items()),
            flush=True)

    t0 = time.perf_counter()
    noise = run_noise(cfg["noise"], args.quick)
    plot_noise(noise, out / "adamqlr_noise.png")
    record["noise"] = noise
    print(f"noise ({time.perf_counter() - t0:.0f}s): " + ", ".join(
        f"σ={s['sigma']:g}: E|α| {s['alpha_abs_last_half']:.3g}, f {s['final_loss']:.3g}"
        for s in noise["sweep"]) + "; logistic " + ", ".join(
        f"B={s['batch']}: E|α| {s['alpha_abs_last_half']:.3g}, f {s['final_loss']:.4g}"
        for s in noise["logistic"]), flush=True)

    record["total_seconds"] = time.perf_counter() - start
    record["torch_threads"] = int(cfg["threads"])
    write_json(out / "adamqlr_results.json", record)
    print(f"wrote {out}/adamqlr_*.png and adamqlr_results.json in {record['total_seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
