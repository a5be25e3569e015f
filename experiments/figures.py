"""Experiments other than TOML order studies (see :mod:`experiments.registry`)."""
import numpy as np

from sde_engine import plotting
from sde_engine.studies.order_config import build_config, load_toml, with_overrides
from sde_engine.problems import quadratic
from sde_engine.studies.results import write_json
from sde_engine.studies.coupled_orders import (momentum_sde_order, sgd_sde_orders,
                                               signsgd_sde_order)
from sde_engine.studies.decay_scaling import decay_scaling_sweep
from sde_engine.studies.sign_phases import sign_phases
from sde_engine.studies.heavy_tails import (sgd_stable_errors, sgd_stable_monte_carlo,
                                            signsgd_stable_orders)
from sde_engine.studies.exact_scaling import ema_scaling_sweep, momentum_scaling_sweep
from sde_engine.studies.solver_convergence import save_convergence, solver_convergence
from sde_engine.studies.trajectories import trajectory_figures, trajectory_record
from sde_engine.studies.weak_order import run_order_study

from .registry import CONFIGS, experiment


@experiment("solvers_gbm", "Euler–Maruyama (strong 0.5, weak 1) and Milstein (strong 1, weak 1) "
                           "on geometric Brownian motion against the exact solution on the same "
                           "Brownian paths")
def solvers_gbm(out_dir):
    result = solver_convergence("gbm", dts=2.0 ** -np.arange(3, 9), n_paths=100_000, seed=0)
    save_convergence(result, str(out_dir), stem="gbm_solvers")
    return {f"{m}/{k}": dict(order=f.order, ci=list(f.ci))
            for m, kf in result.fits.items() for k, f in kf.items()}


@experiment("trajectories_rmsprop", "RMSprop runs at η = 0.5, 0.25, 0.125 against its SDE: mean ± sd "
                                    "of θ and ‖θ‖² over paths against SDE time kη² (SDE on top)")
def trajectories_rmsprop(out_dir):
    values = load_toml(str(CONFIGS / "rmsprop_gaussian.toml"))
    cfg = build_config({**values, "lrs": [0.5, 0.25, 0.125], "tests": ["theta1", "theta_sq"]})
    record = trajectory_record(cfg, n_paths=20_000)
    write_json(out_dir / "trajectories.json", record)
    for test, fig in trajectory_figures(record).items():
        plotting.save_figure(fig, out_dir / f"trajectories_{test}.png")
    return dict(sde_paths=record["sde"]["n_paths"], sde_dt=record["sde"]["dt"])


@experiment("adamqlr", "AdamQLR (issue 7): Rosenbrock, two MLPs, controlled noise — "
                       "experiments/adamqlr.py, figures plots/adamqlr_*.png")
def adamqlr(out_dir):
    from . import adamqlr as module

    module.main(["--out", str(out_dir.parent)])
    return {"figures": "plots/adamqlr_*.png"}


@experiment("svag", "SVAG-RMSprop converges to the RMSprop SDE as ℓ grows (issue 4) — "
                    "experiments/svag.py, figures plots/svag_convergence.png")
def svag(out_dir):
    from . import svag as module

    module.main(["--out", str(out_dir.parent)])
    return {"figures": "plots/svag_convergence.png"}


@experiment("scaling_rule", "the square-root scaling rule on real minibatch noise, with and "
                            "without the rule — experiments/scaling_rule.py, plots/scaling_*.png")
def scaling_rule(out_dir):
    from . import scaling_rule as module

    module.main(["--out", str(out_dir.parent)])
    return {"figures": "plots/scaling_*.png"}


# The independent estimator's paths and its simulated, extrapolated SDE reference (dt = h_min/2).
INDEPENDENT = dict(estimator="independent", paths=16_384, sde_paths=8192, sde_dt=0.005,
                   reference="extrapolated")


@experiment("adam_bc_logistic", "bias-corrected Adam vs its SDE on logistic regression "
                                "(breast_cancer), weak error of E θ₁ and E f(θ) against η with "
                                "the coupled and the independent estimator (issue 14 §5)")
def adam_bc_logistic(out_dir):
    coupled = build_config(load_toml(str(CONFIGS.parent / "adam_bc_logistic.toml")))
    records = {}
    independent = with_overrides(coupled, **INDEPENDENT)
    for name, cfg in (("coupled", coupled), ("independent", independent)):
        records[name] = run_order_study(cfg, str(out_dir / name)).record
    fig = plotting.plot_estimator_comparison(records, title=coupled.title)
    plotting.save_figure(fig, out_dir / "estimators.png")
    return {f"{name}/{test}": dict(errors=rec["points"][test]["error"],
                                   stderrs=rec["points"][test]["stderr"], paths=rec["paths"],
                                   wall_s=rec["wall_s"])
            for name, rec in records.items() for test in rec["tests"]}


#: The 2-D quadratic of the SGD model studies: H, θ*, Σ, σ, and θ0.
QUADRATIC_2D = dict(H=[[2.0, 0.5], [0.5, 1.0]], theta_star=[1.0, -1.0],
                    Sigma=[[1.0, 0.6], [0.6, 2.0]], noise_scale=0.8)
THETA0_2D = [0.3, 0.7]


def _coupled_figure(out_dir, stem, record):
    write_json(out_dir / f"{stem}.json", record)
    plotting.save_figure(plotting.plot_coupled_weak_errors(record), out_dir / f"{stem}.png")
    return {f"{name}/{label}": dict(order=fit["order"], ci=fit["ci"])
            for name, rec in record["series"].items() for label, fit in rec["fits"].items()}


@experiment("sgd_sde_orders", "SGD against its first-order SDE (weak order 1) and the "
                              "second-order SDE of Li, Tai & E (order 2) on a 2-D quadratic, "
                              "coupled estimator (issue 16, item 5)")
def sgd_sde_orders_figure(out_dir):
    record = sgd_sde_orders(quadratic(**QUADRATIC_2D), THETA0_2D,
                            [0.2, 0.1, 0.05, 0.025, 0.0125], n_paths=16_384, substeps=8, seed=0)
    return _coupled_figure(out_dir, "sgd_sde_orders", record)


@experiment("momentum_sde_order", "SGD with momentum μ = 1 − γ√η against its SDE in the "
                                  "momentum timescale (weak order 1 in h = √η) on a 2-D "
                                  "quadratic, coupled estimator (issue 16, item 1)")
def momentum_sde_order_figure(out_dir):
    record = momentum_sde_order(quadratic(**QUADRATIC_2D), THETA0_2D,
                                [0.2, 0.1, 0.05, 0.025, 0.0125], gamma=2.0, n_paths=16_384,
                                substeps=8, seed=0)
    return _coupled_figure(out_dir, "momentum_sde_order", record)


@experiment("signsgd_sde_order", "SignSGD against its SDE (drift −erf(∇f/(√2σs))) and Signum "
                                 "(β = 0.5, 0.9) against the SDE derived for it, weak order 1, "
                                 "on a 2-D quadratic with diagonal noise, coupled estimator "
                                 "(issue 16, item 2)")
def signsgd_sde_order_figure(out_dir):
    problem = quadratic([2.0, 1.0], [1.0, -1.0], [1.0, 2.0], noise_scale=1.0)
    record = signsgd_sde_order(problem, THETA0_2D, [0.2, 0.1, 0.05, 0.025, 0.0125, 0.00625],
                               momenta=[0.5, 0.9], n_paths=32_768, substeps=8, seed=0)
    return _coupled_figure(out_dir, "signsgd_sde_order", record)


@experiment("sign_phases", "the three phases of SignSGD (Compagnoni et al. 2024) and Signum "
                          "(β = 0.9) on f = θ²/2 from θ0 = 6: E f of the discrete runs and "
                          "their SDEs over t = kη, E sign against the gradient-to-noise ratio "
                          "(issue 16, item 2)")
def sign_phases_figure(out_dir):
    record = sign_phases()
    write_json(out_dir / "sign_phases.json", record)
    plotting.save_figure(plotting.plot_sign_phases(record), out_dir / "sign_phases.png", dpi=90)
    return {name: dict(final_loss=record[name]["discrete"]["loss"][-1],
                       final_loss_sde=record[name]["sde"]["loss"][-1],
                       floor_predicted=record[name]["predictions"]["floor"],
                       phase_boundary_t=record[name]["predictions"]["boundary_t"])
            for name in ("signsgd", "signum")}


def _scaling_figure(out_dir, stem, record, quantities, series, title):
    """Write a scaling sweep's JSON and figure; the summary is coordinate 0 of each
    quantity, per rule."""
    write_json(out_dir / f"{stem}.json", record)
    plotting.save_figure(plotting.plot_scaling_sweep(record, quantities, series, title),
                         out_dir / f"{stem}.png")
    return {name: {key: [v[0] for v in record[name][key]] for key, _ in quantities}
            for name, _ in series}


@experiment("ema_scaling", "SGD + model EMA across batch scalings κ = 1 … 16 with the EMA "
                           "scaling rule ρ → ρ^κ and without it, exact moments (issue 16, item 4)")
def ema_scaling_figure(out_dir):
    problem = quadratic(**{**QUADRATIC_2D, "noise_scale": 3.0})
    record = ema_scaling_sweep(problem, THETA0_2D, 0.01, 0.99, [1, 2, 4, 8, 16], horizon=1.6)
    return _scaling_figure(
        out_dir, "ema_scaling", record, [("ema_mean", "E z_T"), ("ema_var", "Var z_T")],
        [("rule", "ρ → ρ^κ, lr → κ lr (EMA rule)"), ("no_rule", "ρ kept, lr → κ lr")],
        "SGD + model EMA: lr 0.01, ρ 0.99, σ 3 at κ = 1, T = 1.6 (exact moments)")


@experiment("momentum_scaling", "SGD with momentum across batch scalings κ = 1 … 16: the rule "
                                "η → κ²η, 1 − μ → κ(1 − μ) of its SDE against the linear rule "
                                "with μ kept, exact moments (issue 16, item 1)")
def momentum_scaling_figure(out_dir):
    record = momentum_scaling_sweep(quadratic(**QUADRATIC_2D), THETA0_2D, 1e-4, 0.98,
                                    [1, 2, 4, 8, 16], horizon=1.6)
    return _scaling_figure(
        out_dir, "momentum_scaling", record,
        [("theta_mean", "E θ_T"), ("theta_var", "Var θ_T")],
        [("rule", "η → κ²η, 1 − μ → κ(1 − μ)"), ("linear", "η → κη, μ kept")],
        "SGD with momentum: η 1e-4, μ 0.98 (γ = 2), σ 0.8 at κ = 1, T = 1.6 (exact moments)")


@experiment("decay_scaling", "RMSpropW across batch scalings κ = 1 … 8 under the square-root "
                             "rule, with the weight-decay rule λ → √κλ and with λ kept, "
                             "against the SDE (issue 16, item 3)")
def decay_scaling_figure(out_dir):
    record = decay_scaling_sweep(0.1, [1, 2, 4, 8], horizon=0.64, n_runs=40_000, seed=0)
    return _scaling_figure(
        out_dir, "decay_scaling", record, [("theta_mean", "E θ_T")],
        [("rule", "λ → √κ λ (with the square-root rule)"), ("kept", "λ kept")],
        "RMSpropW (f = θ²/2, η 0.1, λ0 = λ/η 0.5 at κ = 1), T = 0.64, 40000 runs each "
        "(s.e. ≈ 0.003)")


@experiment("heavy_tails", "α-stable gradient noise on f = θ²/2: where the Brownian SDE stops "
                           "describing SGD (exact weak errors, α = 2 … 1.25) against the "
                           "Lévy-driven SDE, and SignSGD's weak order against its Brownian SDE "
                           "(Monte Carlo) (issue 16, item 6)")
def heavy_tails_figure(out_dir):
    exact = sgd_stable_errors([2.0, 1.9, 1.75, 1.5, 1.25], 2.0 ** -np.arange(2, 13))
    signs = signsgd_stable_orders([2.0, 1.5, 1.2], [0.2, 0.1, 0.05, 0.025], n_paths=200_000)
    checks = [sgd_stable_monte_carlo(alpha, 0.1, n_paths=100_000) for alpha in (2.0, 1.5, 1.2)]
    write_json(out_dir / "heavy_tails.json", dict(exact=exact, signsgd=signs,
                                                  monte_carlo_checks=checks))
    plotting.save_figure(plotting.plot_heavy_tails(exact, signs), out_dir / "heavy_tails.png")
    return dict(
        sgd_orders={f"{a:g}": {name: exact[f"{a:g}"][name]["order"]
                               for name in ("levy_sde", "brownian_sde", "gradient_flow")}
                    for a in exact["alphas"]},
        brownian_misses_at_smallest_lr={f"{a:g}": exact[f"{a:g}"]["unexplained"][-1]
                                        for a in exact["alphas"]},
        signsgd_orders={f"{a:g}": dict(order=signs[f"{a:g}"]["order"], ci=signs[f"{a:g}"]["ci"])
                        for a in signs["alphas"]})
