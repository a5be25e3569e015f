"""AdamQLR at small scale (issue 7, SPEC §7): Rosenbrock, two MLPs, controlled noise.

    python -m experiments.adamqlr [--config experiments/adamqlr.toml] [--out plots] [--quick]

Writes ``adamqlr_*.png`` and ``adamqlr_results.json`` (final and median numbers,
curves thinned to at most ~200 points each) into the output folder. The
studies themselves live in :mod:`experiments.adamqlr_comparison`; this
script loads the config, runs them and writes figures and JSON.
"""
import argparse
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

from sde_engine.plotting import plt, save_figure
from sde_engine.studies.results import write_json

from .adamqlr_comparison import (on_grid, run_mlp, run_noise, run_rosenbrock, subsample,
                                 summarize_mlp)

DEFAULT_CONFIG = Path(__file__).with_name("adamqlr.toml")
COLORS = {"SGD": "C0", "SGD+momentum": "C1", "Adam": "C2", "AdamQLR untuned": "C3",
          "AdamQLR untuned, no clipping": "C5", "AdamQLR tuned": "C4", "GD": "C0",
          "GD+momentum": "C1"}
QLR_LABELS = ("AdamQLR untuned", "AdamQLR untuned, no clipping", "AdamQLR tuned")
LINESTYLES = {"AdamQLR tuned": "--", "AdamQLR untuned, no clipping": ":"}


def plot_rosenbrock(res, path):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    for label, r in res.items():
        ax.semilogy(np.maximum(r["loss"], 1e-16), label=f"{label}: {r['loss'][-1]:.2e}",
                    color=COLORS[label], ls=LINESTYLES.get(label, "-"))
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
    for label in QLR_LABELS:
        r = res[label]
        ax.semilogy(np.abs(r["alpha"]), color=COLORS[label], label=f"|α| {label}")
        ax.semilogy(r["damping"], color=COLORS[label], ls=":", label=f"λ {label}")
    ax.set(xlabel="step", title="AdamQLR step size |α| and damping λ")
    ax.legend(fontsize=7)
    save_figure(fig, path)


def plot_mlp(res, path):
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.2))
    grid = np.linspace(0.0, res["budget_s"], 200)
    for label, runs in res["runs"].items():
        for ax, col, what in ((axes[0], 2, "train"), (axes[1], 4, "test")):
            vals = on_grid([r["curve"] for r in runs], grid, col)
            with np.errstate(all="ignore"):
                med = np.nanmedian(vals, axis=0)
                lo, hi = np.nanmin(vals, axis=0), np.nanmax(vals, axis=0)
            ax.plot(grid, med, color=COLORS[label], label=label, ls=LINESTYLES.get(label, "-"))
            ax.fill_between(grid, lo, hi, color=COLORS[label], alpha=0.15)
            ax.set(yscale="log", xlabel="training time (s, CPU of 1 thread)",
                   ylabel=f"{what} loss", title=f"{res['task']['name']}: {what} loss")
    for label in QLR_LABELS:
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
    record["rosenbrock_seconds"] = time.perf_counter() - t0
    print(f"rosenbrock ({time.perf_counter() - t0:.0f}s): " + ", ".join(
        f"{k} {v['loss'][-1]:.3g}" for k, v in ros.items()), flush=True)

    for name in ("diabetes", "digits"):
        t0 = time.perf_counter()
        res = run_mlp(name, cfg["mlp"], args.quick)
        plot_mlp(res, out / f"adamqlr_{name}.png")
        record[name] = summarize_mlp(res)
        record[name]["seconds"] = time.perf_counter() - t0
        print(f"{name} ({time.perf_counter() - t0:.0f}s): " + ", ".join(
            f"{k} test {v['test_median']:.3g}" for k, v in record[name]["final"].items()),
            flush=True)

    t0 = time.perf_counter()
    noise = run_noise(cfg["noise"], args.quick)
    plot_noise(noise, out / "adamqlr_noise.png")
    record["noise"] = noise
    record["noise_seconds"] = time.perf_counter() - t0
    print(f"noise ({time.perf_counter() - t0:.0f}s): " + ", ".join(
        f"σ={s['sigma']:g}: E|α| {s['alpha_abs_last_half']:.3g}, f {s['final_loss']:.3g}"
        for s in noise["sweep"]) + "; logistic " + ", ".join(
        f"B={s['batch']}: E|α| {s['alpha_abs_last_half']:.3g}, f {s['final_loss']:.4g}"
        for s in noise["logistic"]), flush=True)

    record["total_seconds"] = time.perf_counter() - start
    record["torch_threads"] = int(cfg["threads"])
    write_json(out / "adamqlr_results.json", subsample(record))
    print(f"wrote {out}/adamqlr_*.png and adamqlr_results.json in {record['total_seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
