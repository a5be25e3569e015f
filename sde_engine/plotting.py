"""Figures of study results. Takes arrays or result records (the dicts the
studies write as JSON); never simulates. Uses the non-interactive Agg backend.
"""
import os
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend first)
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

_SCHEME_LABEL = {"euler_maruyama": "Euler–Maruyama", "milstein": "Milstein"}


def save_figure(fig, path, dpi=120):
    """Save ``fig`` to ``path`` atomically (temp file + os.replace) and close it."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(path)[1] or ".png"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        plt.close(fig)
    return path


def _reference_slope(ax, h, anchor_h, anchor_err, slope, style):
    """Dashed line of the given slope through (anchor_h, anchor_err)."""
    h = np.asarray(h, dtype=float)
    ax.plot(h, anchor_err * (h / anchor_h) ** slope, style, color="0.5", lw=1,
            label=f"slope {slope:g}")


def _error_panel(ax, h, err, se, fit, label, color, marker="o"):
    """Plot |error| with ±2·stderr bars; hollow markers for noise-floor points."""
    h, err, se = (np.asarray(a, dtype=float) for a in (h, err, se))
    below = np.asarray(fit.get("below_noise", np.zeros(h.shape, bool)), dtype=bool) \
        if fit else np.zeros(h.shape, bool)
    y = np.abs(err)
    lower = np.minimum(2 * se, y * 0.999)   # log axis: keep bars above zero
    ax.errorbar(h[~below], y[~below], yerr=np.vstack([lower[~below], 2 * se[~below]]), fmt=marker,
                color=color, capsize=3, label=label)
    if below.any():
        ax.errorbar(h[below], y[below], yerr=np.vstack([lower[below], 2 * se[below]]), fmt=marker,
                    mfc="none", color=color, capsize=3, label=f"{label}: below noise floor")
    if fit and fit.get("order") is not None and fit.get("constant") is not None:
        hh = np.array([h.min(), h.max()])
        ci = fit.get("ci") or [None, None]
        ci_text = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if None not in ci else ""
        ax.plot(hh, fit["constant"] * hh ** fit["order"], "-", color=color, lw=1, alpha=0.7,
                label=f"fit {fit['order']:.2f}{ci_text}")


def _log_log_axes(ax, xlabel, title):
    """Log scales on both axes, labels, a light grid and a small legend."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def plot_convergence(record):
    """Strong and weak errors of each scheme vs dt (a ``solver_convergence`` record).

    Parameters
    ----------
    record : dict
        ``ConvergenceResult.as_dict()`` or the JSON it was saved as.

    Returns
    -------
    matplotlib.figure.Figure
    """
    dts = np.asarray(record["dts"], dtype=float)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, kind, title, slopes in ((axes[0], "strong", "strong error E|X^h_T − X_T|", (0.5, 1.0)),
                                    (axes[1], "weak_x", "weak error |E X^h_T − E X_T|", (1.0,))):
        top = 0.0
        for i, m in enumerate(record["methods"]):
            err = np.asarray(record["error"][m][kind], dtype=float)
            _error_panel(ax, dts, err, record["stderr"][m][kind], record["fits"][m][kind],
                         _SCHEME_LABEL.get(m, m), colors[i % len(colors)])
            top = max(top, np.abs(err[0]))
        for s, style in zip(slopes, ("--", ":")):
            _reference_slope(ax, dts, dts[0], top * 1.5, s, style)
        _log_log_axes(ax, "step size h", title)
    cfg = record.get("config", {})
    fig.suptitle(f"{cfg.get('model', '').upper()}: Euler–Maruyama and Milstein, "
                 f"{cfg.get('n_paths', '?')} paths, error bars ±2 s.e.", fontsize=10)
    return fig


_PHI_TITLES = {"theta1": "E θ₁", "theta_sq": "E ‖θ‖²", "loss": "E f(θ)",
               "theta1_cubed": "E θ₁³"}


def plot_coupled_weak_errors(record):
    """Weak errors of one or more series against the step size, one panel per φ.

    Parameters
    ----------
    record : dict
        From :mod:`sde_engine.studies.coupled_orders` (or its JSON): ``x``,
        ``x_label``, ``labels``, ``series`` {name: error, stderr, fits}, ``title``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    x = np.asarray(record["x"], dtype=float)
    labels = record["labels"]
    fig, axes = plt.subplots(1, len(labels), figsize=(4.2 * len(labels), 4.0))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for q, (ax, label) in enumerate(zip(np.atleast_1d(axes), labels)):
        top = 0.0
        for i, (name, rec) in enumerate(record["series"].items()):
            err = np.asarray(rec["error"], dtype=float)[:, q]
            se = np.asarray(rec["stderr"], dtype=float)[:, q]
            fit = dict(rec["fits"][label])
            if fit.get("order") is None or not np.isfinite(fit["order"]):
                fit["order"] = None          # no slope (points below the noise floor)
            _error_panel(ax, x, err, se, fit, name, colors[i % len(colors)],
                         marker="os"[i % 2])
            top = max(top, np.abs(err[0]))
        for slope, style in ((1.0, "--"), (2.0, ":")):
            _reference_slope(ax, x, x[0], top * 1.5, slope, style)
        _log_log_axes(ax, record.get("x_label", "step size"),
                      f"|weak error| of {_PHI_TITLES.get(label, label)}")
    cfg = record.get("config", {})
    fig.suptitle(f"{record.get('title', '')}, T = {cfg.get('horizon', '?')}, coupled "
                 f"estimator, {cfg.get('n_paths', '?')} paths, error bars ±2 s.e.", fontsize=10)
    return fig


def plot_scaling_sweep(record, quantities, series, title, coordinate=0):
    """Moments against the batch scaling κ for several rules, with the SDE's value.

    Parameters
    ----------
    record : dict
        From :mod:`sde_engine.studies.exact_scaling` (or its JSON): ``kappas``,
        one entry per rule and ``sde``, each {quantity: list over κ of (d,) lists}.
    quantities : sequence of (key, title)
        One panel each, e.g. ``[("ema_mean", "E z_T"), ("ema_var", "Var z_T")]``.
    series : sequence of (key, label)
        The rules drawn, e.g. ``[("rule", "ρ → ρ^κ"), ("no_rule", "ρ kept")]``.
    title : str
    coordinate : int
        Which coordinate of the (d,) values to draw.

    Returns
    -------
    matplotlib.figure.Figure
    """
    kappas = np.asarray(record["kappas"], dtype=float)
    fig, axes = plt.subplots(1, len(quantities), figsize=(5 * len(quantities), 4.0))
    for ax, (key, panel) in zip(np.atleast_1d(axes), quantities):
        for (name, label), marker in zip(series, "os^v"):
            ax.plot(kappas, np.asarray(record[name][key])[:, coordinate], marker=marker,
                    label=label)
        ax.axhline(record["sde"][key][coordinate], color="0.4", ls="--",
                   label="SDE (what the rule keeps)")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch scaling κ (σ → σ/√κ)")
        ax.set_title(f"{panel}[{coordinate}]")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


def plot_weak_order(record):
    """Weak error vs η, one panel per test function (a weak-order study record).

    When the record has the log-model fit (``fits[test]["log_model"]``, from
    :func:`sde_engine.analysis.fit_log_model`) its curve η^q (a + b ln 1/η) is
    drawn too, and a second row shows |error| / η^q against η: flat for an
    error ∝ η^q (order 1 in h), a straight rising line for the log model.

    Parameters
    ----------
    record : dict
        With ``lrs`` (n,), ``tests`` (list of names), and per test name
        ``points[test]`` = {"error": (n,), "stderr": (n,)},
        ``fits[test]["vs_lr"]`` an ``OrderFit.as_dict()`` and optionally
        ``fits[test]["log_model"]`` / ``["comparison"]`` (``LogModelFit`` /
        ``ModelComparison.as_dict()``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    lrs = np.asarray(record["lrs"], dtype=float)
    tests = list(record["tests"])
    logs = [_log_model(record["fits"][t]) for t in tests]
    rows = 2 if any(g is not None for g in logs) else 1
    fig, axes = plt.subplots(rows, len(tests), figsize=(4.2 * len(tests), 4 * rows),
                             squeeze=False)
    for j, test in enumerate(tests):
        ax = axes[0, j]
        pts = record["points"][test]
        err = np.asarray(pts["error"], dtype=float)
        se = np.asarray(pts["stderr"], dtype=float)
        fit = record["fits"][test]["vs_lr"]
        _error_panel(ax, lrs, err, se, fit, "weak error", "C0")
        finite = np.isfinite(err)
        anchor = np.abs(err[finite]).max() if finite.any() else 1.0
        _reference_slope(ax, lrs, lrs.max(), anchor, 1.0, ":")
        _reference_slope(ax, lrs, lrs.max(), anchor, 2.0, "--")
        label = record.get("labels", {}).get(test, test)
        ax.set_title(f"|E {label}(discrete) − E {label}(SDE)|")
        g = logs[j]
        if g is not None:
            eta = np.geomspace(lrs.min(), lrs.max(), 100)
            ax.plot(eta, _log_curve(g, eta), "-.", color="C3", lw=1.2,
                    label=f"η^{g['power']:g}(a + b ln 1/η), b = {g['b']:.3g} "
                          f"[{g['b_ci'][0]:.3g}, {g['b_ci'][1]:.3g}]")
            _scaled_panel(axes[1, j], lrs, err, se, fit, g,
                          record["fits"][test].get("comparison"), label)
        for a in axes[:, j]:
            if not a.has_data():
                a.set_visible(False)
                continue
            a.set_xscale("log")
            a.set_xticks(lrs, [f"{x:.3g}" for x in lrs], fontsize=7, rotation=45)
            a.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            a.set_xlabel("learning rate η")
            a.grid(True, which="both", alpha=0.3)
            a.legend(fontsize=7)
        ax.set_yscale("log")
    fig.suptitle(record.get("title", ""), fontsize=10)
    return fig


def _log_model(fits):
    """The log-model fit of one test, or None when absent or not fitted."""
    g = fits.get("log_model")
    if g is None or g.get("a") is None or not np.isfinite(g["a"]):
        return None
    return g


def _log_curve(g, eta):
    return eta ** g["power"] * (g["a"] + g["b"] * np.log(1.0 / eta))


def _scaled_panel(ax, lrs, err, se, fit, g, comparison, label):
    """|error| / η^q with ±2 s.e., the log model (a line in ln η) and the power law."""
    q = g["power"]
    used = np.asarray(g["used"], dtype=bool)
    scale = lrs ** -q
    y, bar = np.abs(err) * scale, 2 * se * scale
    ax.errorbar(lrs[used], y[used], yerr=bar[used], fmt="o", color="C0", capsize=3,
                label="|error| / η^%g" % q)
    if (~used).any():
        ax.errorbar(lrs[~used], y[~used], yerr=bar[~used], fmt="o", mfc="none", color="C0",
                    capsize=3, label="not fitted (noise floor)")
    eta = np.geomspace(lrs.min(), lrs.max(), 100)
    ax.plot(eta, _log_curve(g, eta) * eta ** -q, "-.", color="C3", lw=1.2,
            label=f"a + b ln 1/η: a = {g['a']:.3g}, b = {g['b']:.3g}")
    if fit.get("order") is not None and fit.get("constant") is not None:
        ax.plot(eta, fit["constant"] * eta ** (fit["order"] - q), "-", color="C0", lw=1,
                alpha=0.7, label=f"C η^p, p = {fit['order']:.2f}")
    delta = (comparison or {}).get("delta_aic")
    if delta is not None and np.isfinite(delta):
        ax.set_title(f"|E {label} error| / η^{q:g}; data prefer: {comparison['preferred']} "
                     f"(ΔAIC = {delta:.1f})", fontsize=9)
    else:
        ax.set_title(f"|E {label} error| / η^{q:g}", fontsize=9)


def plot_estimator_comparison(records, title=""):
    """Weak error vs η of one study measured by several estimators, a column per
    test: |error| with ±2 stderr bars on top, the standard errors below.

    Parameters
    ----------
    records : dict of str -> dict
        Estimator name -> weak-order study record (as for :func:`plot_weak_order`;
        all with the same ``tests``).
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    names = list(records)
    tests = list(records[names[0]]["tests"])
    fig, axes = plt.subplots(2, len(tests), figsize=(4.6 * len(tests), 8), squeeze=False)
    for j, test in enumerate(tests):
        for k, name in enumerate(names):
            rec = records[name]
            pts = rec["points"][test]
            label = f"{name} ({rec['paths']:,} paths)"
            _error_panel(axes[0, j], rec["lrs"], pts["error"], pts["stderr"],
                         {**rec["fits"][test]["vs_lr"], "below_noise": pts["below_noise"]},
                         label, f"C{k}", marker="os^"[k % 3])
            axes[1, j].plot(rec["lrs"], pts["stderr"], "-" + "os^"[k % 3], color=f"C{k}",
                            label=label)
        lrs = np.asarray(records[names[0]]["lrs"], dtype=float)
        label = records[names[0]].get("labels", {}).get(test, test)
        axes[0, j].set_title(f"|E {label}(discrete) − E {label}(SDE)|, ±2 stderr")
        axes[1, j].set_title(f"standard error of the weak error of E {label}")
        for ax in axes[:, j]:
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(lrs, [f"{x:.3g}" for x in lrs], fontsize=7)
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            ax.set_xlabel("learning rate η")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_trajectories(curves, sde_curve, ylabel="E φ", title=""):
    """Mean ± band of a test function against SDE time: discrete runs and the SDE.

    Parameters
    ----------
    curves : list of dict
        One per learning rate: ``label``, ``t`` (n_t,), ``mean`` (n_t,), ``band`` (n_t,)
        (half-width, e.g. one standard deviation over paths).
    sde_curve : dict
        The same keys for the SDE; drawn last, on top.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, c in enumerate(curves):
        t, mean, band = (np.asarray(c[k], dtype=float) for k in ("t", "mean", "band"))
        ax.plot(t, mean, color=f"C{i}", lw=1.2, label=c["label"])
        ax.fill_between(t, mean - band, mean + band, color=f"C{i}", alpha=0.12)
    t, mean, band = (np.asarray(sde_curve[k], dtype=float) for k in ("t", "mean", "band"))
    ax.plot(t, mean, "k-", lw=2, label=sde_curve.get("label", "SDE"), zorder=10)
    ax.plot(t, mean - band, "k--", lw=1, zorder=10)
    ax.plot(t, mean + band, "k--", lw=1, zorder=10)
    ax.set_xlabel("SDE time t")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_curves(t, mean, sd, names, title=""):
    """Mean ± sd of several quantities against time, one panel each.

    Parameters
    ----------
    t : array_like, shape (n_t,)
    mean, sd : array_like, shape (n_t, n_names)
    names : list of str
    """
    t, mean, sd = (np.asarray(a, dtype=float) for a in (t, mean, sd))
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
    for j, (ax, name) in enumerate(zip(axes[0], names)):
        ax.plot(t, mean[:, j], "k-", lw=1.5, label="mean")
        ax.fill_between(t, mean[:, j] - sd[:, j], mean[:, j] + sd[:, j], alpha=0.2,
                        label="± sd over paths")
        ax.set_xlabel("SDE time t")
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


def plot_heavy_tails(exact, signsgd):
    """Three panels on α-stable gradient noise (:mod:`sde_engine.studies.heavy_tails`).

    (a) |weak error| in E cos(uθ_T) of the Lévy SDE (solid) and the Brownian
    SDE (dashed) against SGD, per α, from ``exact``
    (:func:`~sde_engine.studies.heavy_tails.sgd_stable_errors`); (b) the share
    of SGD's noise effect the Brownian SDE misses; (c) |weak error| in E θ_T of
    SignSGD against its SDE with ±2 s.e., from ``signsgd``
    (:func:`~sde_engine.studies.heavy_tails.signsgd_stable_orders`).
    """
    fig, (ax_a, ax_b, ax_c) = plt.subplots(1, 3, figsize=(15, 4.4))
    lrs = np.asarray(exact["lrs"])
    colors = plt.cm.viridis(np.linspace(0.0, 0.85, len(exact["alphas"])))
    for alpha, color in zip(exact["alphas"], colors):
        entry = exact[f"{alpha:g}"]
        ax_a.plot(lrs, np.abs(entry["levy_sde"]["errors"]), "-o", ms=3, color=color,
                  label=f"α = {alpha:g}: Lévy SDE, order {entry['levy_sde']['order']:.2f}")
        if alpha < 2.0:
            ax_a.plot(lrs, np.abs(entry["brownian_sde"]["errors"]), "--", color=color,
                      label=f"α = {alpha:g}: Brownian SDE, "
                            f"order {entry['brownian_sde']['order']:.2f}")
            ax_b.plot(lrs, entry["unexplained"], "-o", ms=3, color=color, label=f"α = {alpha:g}")
    _log_log_axes(ax_a, "learning rate η", "SGD vs its SDEs: |weak error| in E cos(θ_T) (exact)")
    ax_a.legend(fontsize=6)
    ax_b.set_xscale("log")
    ax_b.set_ylim(0.0, 1.02)
    ax_b.set_xlabel("learning rate η")
    ax_b.set_title("share of SGD's noise effect the Brownian SDE misses")
    ax_b.grid(True, which="both", alpha=0.3)
    ax_b.legend(fontsize=7)
    sign_lrs = np.asarray(signsgd["lrs"])
    for alpha, color in zip(signsgd["alphas"],
                            plt.cm.plasma(np.linspace(0.0, 0.7, len(signsgd["alphas"])))):
        entry = signsgd[f"{alpha:g}"]
        _error_panel(ax_c, sign_lrs, entry["errors"], entry["stderrs"], None,
                     f"α = {alpha:g}: order {entry['order']:.2f} "
                     f"[{entry['ci'][0]:.2f}, {entry['ci'][1]:.2f}]", color)
    first = signsgd[f"{signsgd['alphas'][0]:g}"]
    _reference_slope(ax_c, sign_lrs, sign_lrs[0], abs(first["errors"][0]), 1.0, ":")
    _log_log_axes(ax_c, "learning rate η", "SignSGD vs its Brownian SDE: |weak error| in E θ_T")
    fig.tight_layout()
    return fig


def plot_sign_phases(record):
    """The record of :func:`sde_engine.studies.sign_phases.sign_phases` in three panels.

    E f against t (discrete ± 2 stderr, SDE dashed, phases shaded, asymptotes
    dotted); E sign against r = ∂f/(σs) with its asymptotes; the variance per
    step of the sign sequence (SDE diffusion²/η) against r.
    """

    cfg = record["config"]
    t = np.asarray(record["t"])
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    ax = axes[0]
    colors = dict(signsgd="C0", signum="C3")
    labels = dict(signsgd="SignSGD", signum=f"Signum β = {cfg['momentum']:g}")
    for name in ("signsgd", "signum"):
        rec, c = record[name], colors[name]
        disc, sde = rec["discrete"], rec["sde"]
        mean, se = np.asarray(disc["loss"]), np.asarray(disc["loss_stderr"])
        ax.fill_between(t, np.maximum(mean - 2 * se, 1e-12), mean + 2 * se, color=c, alpha=0.25,
                        lw=0)
        ax.plot(t, mean, color=c, lw=1.5, label=f"{labels[name]} (mean ± 2 s.e.)")
        ax.plot(t, sde["loss"], color="k" if name == "signsgd" else "0.4", lw=1.0, ls="--",
                label="its SDE" if name == "signsgd" else "Signum SDE (derived here)")
        p = rec["predictions"]
        ax.axhline(p["floor"], color=c, ls=":", lw=1.0,
                   label=f"phase-3 floor f∞ = λη V(0)/(4k₃) = {p['floor']:.2g}")
        for b in p["boundary_t"]:
            ax.axvline(b, color=c, ls="-.", lw=0.8, alpha=0.8)
    p = record["signsgd"]["predictions"]
    t1, t2 = p["boundary_t"]
    ax.axvspan(0, t1, color="C0", alpha=0.06)
    ax.axvspan(t2, t[-1], color="C2", alpha=0.06)
    line = 0.5 * cfg["curvature"] * np.maximum(cfg["theta0"] - t, 0.0) ** 2
    keep = t < t1
    ax.plot(t[keep], line[keep], color="C1", ls=":", lw=2,
            label="phase 1: f = λ(θ₀ − t)²/2 (√f linear in t)")
    ax.set_yscale("log")
    ax.set_xlabel("t = kη")
    ax.set_ylabel("E f(θ)")
    ax.set_title(f"f = θ²/2, σ = {cfg['noise_sd']:g}, η = {cfg['lr']:g}: SignSGD phases "
                 f"1 | 2 | 3 (shaded, -.), floors (:)", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")

    curves = {k: np.asarray(v) for k, v in record["curves"].items()}
    r, kappa = curves["ratio"], float(curves["kappa"])
    ax = axes[1]
    ax.loglog(r, curves["signsgd_expected_sign"], color="C0", lw=2, label="SignSGD: erf(r/√2)")
    ax.loglog(r, curves["signum_expected_sign"], color="C3", lw=2,
              label=f"Signum: erf(κr/√2), κ = {kappa:.2f}")
    ax.loglog(r, np.sqrt(2 / np.pi) * r, color="k", ls=":", label="phase 3: √(2/π) r")
    ax.loglog(r, np.ones_like(r), color="k", ls="--", lw=0.8, label="phase 1: 1 (sign ∇f)")
    for b in cfg["phase_bounds"]:
        ax.axvline(b * np.sqrt(2.0), color="C0", ls="-.", lw=0.8)
        ax.axvline(b * np.sqrt(2.0) / kappa, color="C3", ls="-.", lw=0.8)
    ax.set_ylim(1e-3, 2)
    ax.set_xlabel("gradient-to-noise ratio r = ∂f/(σ s)")
    ax.set_ylabel("E sign (drift = −E sign)")
    ax.set_title("E sign against r; phase bounds κ|r|/√2 = 1, 3/2 (-.)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")

    ax = axes[2]
    ax.semilogx(r, curves["signsgd_variance"], color="C0", lw=2, label="SignSGD: 1 − erf²")
    ax.semilogx(r, curves["signum_variance"], color="C3", lw=2,
                label="Signum: long-run variance V(κr)")
    ax.semilogx(r, curves["signum_one_step_variance"], color="C3", ls=":",
                label="Signum: 1 − erf(κr/√2)² (one step)")
    ax.set_yscale("log")
    ax.set_ylim(1e-3, 30)
    ax.set_xlabel("r = ∂f/(σ s)")
    ax.set_ylabel("diffusion² / η")
    ax.set_title("variance per unit time of the sign steps", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig
