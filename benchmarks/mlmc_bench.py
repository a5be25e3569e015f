"""Cost of multilevel vs plain Monte Carlo (Euler–Maruyama) to a root-mean-square error ε.

``python -m benchmarks.mlmc_bench [--eps 1e-2,3e-3,1e-3] [--check-mc 1e-2]``.
Two problems:

* GBM dX = 0.5 X dt + 0.8 X dW (the engine's ``se.gbm()``), x0 = 1, T = 1,
  φ = X_T; exact E X_T = e^{0.5}, so the actual error of each estimate is shown;
* the RMSprop SDE (η = 0.1, β = 0.99, ε = 1e-8, bias-corrected) on logistic
  regression: breast_cancer (scikit-learn), two standardised features
  (mean radius, mean texture) and an intercept, batch size 1, θ0 = 0,
  T = 1 (100 steps of η²), φ = f(θ_T) (the full-data loss).

For each ε, ``se.expectation(method="mlmc", atol=ε)`` runs; its cost is the
steps it took. Plain Monte Carlo needs N = V[P_L] / ((1 − θ) ε²) samples of
M0 2^L steps at the finest level L that MLMC found necessary for the bias
(Giles' comparison, as in ``mlmc_test``), with V[P_L] measured on
``--mc-pilot`` samples at that level; with ``--check-mc`` the plain
estimator is also run in full (``method="mc", level=L``) at those ε and its
actual cost printed beside. The growth exponent is the slope of log cost
against log(1/ε) between consecutive ε (MC with EM: 3; MLMC with β = 1:
2 times a (log ε)² factor, i.e. slightly above 2).
"""
import argparse
import math
import time

import numpy as np

import sde_engine as se
from sde_engine.expectation import THETA, level_job
from sde_engine.studies.mlmc import LevelSamples

EPS = (1e-2, 3e-3, 1e-3)


def gbm_case():
    sde = se.gbm(mu=0.5, sigma=0.8)
    return dict(name="GBM", sde=sde, phi=first_coordinate, x0=[1.0], T=1.0, steps0=2,
                exact=math.exp(0.5))


def first_coordinate(x):
    return x[0]


def rmsprop_case():
    from sklearn.datasets import load_breast_cancer

    from sde_engine.problems import logistic_regression

    X, y = load_breast_cancer(return_X_y=True)
    X = X[:, :2]
    X = np.hstack([(X - X.mean(axis=0)) / X.std(axis=0), np.ones((len(y), 1))])
    problem = logistic_regression(X, y.astype(float), batch_size=1)
    model = se.rmsprop_sde(problem, lr=0.1, beta=0.99, eps=1e-8, bias_correction=True)
    return dict(name="RMSprop SDE, logistic (breast_cancer, p=3)", sde=model,
                phi=problem.loss, x0=np.zeros(3), T=1.0, steps0=4, exact=None)


def run_case(case, eps_list, mc_pilot, check_mc, seed):
    finest_variance(case, 1, 10, seed)          # compile the level kernel outside the timings
    rows = []
    for eps in eps_list:
        start = time.perf_counter()
        r = se.expectation(case["sde"], case["phi"], case["x0"], case["T"], rtol=0.0, atol=eps,
                           steps0=case["steps0"], seed=seed, n_initial=1000)
        L = int(r.levels[-1])
        v_L, pilot_s = finest_variance(case, L, mc_pilot, seed)
        cost_L = case["steps0"] * 2**L
        mc_cost = math.ceil(v_L / ((1 - THETA) * eps**2)) * cost_L
        row = dict(eps=eps, L=L, mlmc_cost=r.cost, mlmc_s=r.seconds, estimate=r.estimate,
                   rmse=r.rmse, mc_cost=mc_cost, var_PL=v_L, alpha=r.diagnostics["alpha"],
                   beta=r.diagnostics["beta"], n=[int(n) for n in r.n_per_level],
                   wall=time.perf_counter() - start)
        if case["exact"] is not None:
            row["error"] = r.estimate - case["exact"]
        if eps in check_mc:
            mc = se.expectation(case["sde"], case["phi"], case["x0"], case["T"], rtol=0.0,
                                atol=eps, method="mc", level=L, steps0=case["steps0"],
                                seed=seed + 1, n_initial=1000)
            row.update(mc_run_cost=mc.cost, mc_run_s=mc.seconds, mc_estimate=mc.estimate)
        rows.append(row)
        print(f"  {case['name']}: eps {eps:g} done in {row['wall']:.1f} s", flush=True)
    return rows


def finest_variance(case, level, n, seed):
    """V[P_L] from n plain samples at ``level`` (streams of seed + 2)."""
    start = time.perf_counter()
    job = level_job(case["sde"], case["phi"], case["x0"], case["T"], steps0=case["steps0"],
                    seed=seed + 2)
    samples = LevelSamples(job, chunk_paths=65536)
    samples.extend({(level, False): n})
    return float(samples.moments(level, False).var[1]), time.perf_counter() - start


def growth(eps, cost):
    """Slopes of log cost against log 1/ε between consecutive ε."""
    return [math.log(cost[i + 1] / cost[i]) / math.log(eps[i] / eps[i + 1])
            for i in range(len(eps) - 1)]


def print_table(name, rows):
    print(f"\n{name}")
    print(f"{'eps':>7} {'L':>3} {'MLMC steps':>11} {'MLMC s':>8} {'MC steps':>11} {'MC/MLMC':>8} "
          f"{'MC run steps':>13} {'MC run s':>9} {'estimate':>10} {'rmse est':>9} {'error':>10}")
    for r in rows:
        run_steps = f"{r['mc_run_cost']:13.3e}" if "mc_run_cost" in r else f"{'-':>13}"
        run_s = f"{r['mc_run_s']:9.2f}" if "mc_run_s" in r else f"{'-':>9}"
        err = f"{r['error']:10.2e}" if "error" in r else f"{'-':>10}"
        print(f"{r['eps']:7.0e} {r['L']:3d} {r['mlmc_cost']:11.3e} {r['mlmc_s']:8.2f} "
              f"{r['mc_cost']:11.3e} {r['mc_cost'] / r['mlmc_cost']:8.1f} {run_steps} {run_s} "
              f"{r['estimate']:10.6f} {r['rmse']:9.2e} {err}")
    eps = [r["eps"] for r in rows]
    for label, key in (("MLMC", "mlmc_cost"), ("MC", "mc_cost")):
        slopes = growth(eps, [r[key] for r in rows])
        print(f"  growth of {label} cost, d log cost / d log(1/eps): "
              + ", ".join(f"{s:.2f}" for s in slopes))
    eps2log2 = [e**-2 * math.log(e) ** 2 for e in eps]
    print("  MLMC cost / (eps^-2 (log eps)^2): "
          + ", ".join(f"{r['mlmc_cost'] / c:.3g}" for r, c in zip(rows, eps2log2)))
    print("  samples per level: " + "; ".join(f"eps {r['eps']:g}: {r['n']}" for r in rows))
    print("  alpha, beta: " + "; ".join(f"{r['alpha']:.2f}, {r['beta']:.2f}" for r in rows))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eps", default=",".join(f"{e:g}" for e in EPS))
    parser.add_argument("--mc-pilot", type=int, default=20000,
                        help="plain samples that measure V[P_L] (default 20000)")
    parser.add_argument("--check-mc", default="1e-2",
                        help="ε at which plain MC is also run in full ('' for none)")
    parser.add_argument("--cases", default="gbm,rmsprop")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    eps = [float(e) for e in args.eps.split(",") if e.strip()]
    check_mc = {float(e) for e in args.check_mc.split(",") if e.strip()}
    builders = {"gbm": gbm_case, "rmsprop": rmsprop_case}
    start = time.perf_counter()
    tables = []
    for key in args.cases.split(","):
        case = builders[key.strip()]()
        tables.append((case["name"], run_case(case, eps, args.mc_pilot, check_mc, args.seed)))
    for name, rows in tables:
        print_table(name, rows)
    print(f"\ntotal {time.perf_counter() - start:.0f} s (compilation included)")


if __name__ == "__main__":
    main()
