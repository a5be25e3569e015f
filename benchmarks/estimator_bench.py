"""Paths (and seconds) for a 10% relative standard error of a weak error, per estimator.

``python -m benchmarks.estimator_bench [--paths N] [--lrs 0.4,0.2,...]`` (or
``make bench-estimators``). For RMSprop (σ0 = 1, ε0 = 0.1, c2 = 1, u0 = 0.5) and
bias-corrected Adam (c1 = 2, c2 = 1, m0 = v0 = 0) on f(θ) = θ²/2 with Gaussian
noise (Σ = 1), θ0 = 1, T = 1, it runs at each learning rate η a pilot of N
paths of each estimator of the weak error e = E φ(θ_k) − E φ(X_{kh}):

* independent, exact reference: discrete runs against the exact SDE moments
  (what a quadratic study does; variance Var φ(θ) per path);
* independent, both simulated: discrete runs and as many SDE paths
  (variance Var φ(θ) + Var φ(X));
* independent with the control variate (RMSprop only, the study default there);
* coupled (:mod:`sde_engine.coupled`, m = 4 SDE steps per discrete step,
  extrapolated reference): variance Var(φ(θ) − (2φ(X^m) − φ(X^{m/2}))).

From the measured variances and the coupled estimate of e it prints the paths
n = Var / (0.1 e)² each needs for a 10% relative standard error, and the
seconds that takes (n times the measured seconds per path, compilation
excluded; the both-simulated column's SDE paths are costed as the coupled
ones, an upper bound). A point whose |e| is below 3 standard errors of the
pilot is flagged: its path counts are not meaningful.
"""
import argparse
import time

from sde_engine.coupled import QUANTITIES
from sde_engine.studies.order_config import build_config
from sde_engine.studies.weak_order import coupled_chunk, discrete_chunk

COMMON = dict(problem="quadratic", dim=1, curvature=[1.0], noise="gaussian", noise_cov=[1.0],
              sigma0=1.0, eps0=0.1, theta0=[1.0], horizon=1.0, seed=0,
              tests=["theta1", "theta_sq"], sde_substeps=4, estimator="coupled")
CASES = {
    "RMSprop": dict(algorithm="rmsprop", c2=1.0, u0=[0.5]),
    "Adam (bias-corrected)": dict(algorithm="adam", bias_correction=True, c1=2.0, c2=1.0),
}
LRS = (0.4, 0.2, 0.1, 0.05, 0.025)
TARGET = 0.1
ROW = {name: i for i, name in enumerate(QUANTITIES)}


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def measure(name, case, lrs, paths):
    """Rows of the table of one algorithm: dicts per (test, lr)."""
    cfg = build_config({**COMMON, **case, "lrs": list(lrs), "paths": paths})
    plain = build_config({**cfg.as_dict(), "estimator": "independent", "control_variate": False})
    cv = build_config({**plain.as_dict(), "control_variate": True})
    use_cv = cfg.algorithm == "rmsprop"
    # compile once (tiny runs), so that the timings below exclude it
    coupled_chunk(cfg, lrs[0], 0, 2)
    discrete_chunk(plain, lrs[0], 0, 2)
    if use_cv:
        discrete_chunk(cv, lrs[0], 0, 2)
    rows = []
    for lr in lrs:
        c, t_c = timed(coupled_chunk, cfg, lr, 0, paths)
        d, t_d = timed(discrete_chunk, plain, lr, 0, paths)
        if use_cv:
            v, t_v = timed(discrete_chunk, cv, lr, 0, paths)
        for j, test in enumerate(cfg.tests):
            e = c.mean[ROW["extrapolated_difference"], j]
            se = c.stderr[ROW["extrapolated_difference"], j]
            need = (TARGET * e) ** 2
            var_sde = c.var[ROW["sde_extrapolated"], j]
            row = dict(algorithm=name, test=test, lr=lr, steps=cfg.n_steps(lr), error=e,
                       stderr=se, resolved=abs(e) > 3 * se,
                       n_exact=d.var[j] / need, s_exact=t_d / paths,
                       n_both=(c.var[ROW["discrete"], j] + var_sde) / need,
                       s_both=(t_d + t_c) / paths,
                       n_coupled=c.var[ROW["extrapolated_difference"], j] / need,
                       s_coupled=t_c / paths)
            if use_cv:
                row.update(n_cv=v.var[j] / need, s_cv=t_v / paths)
            rows.append(row)
    return rows


def format_rows(rows):
    head = (f"{'lr':>6} {'steps':>6} {'weak error':>11} {'stderr':>8}  "
            f"{'paths: indep exact':>18} {'indep CV':>9} {'both sim':>9} {'coupled':>8} "
            f"{'fewer':>7}  {'seconds: indep exact':>20} {'indep CV':>9} {'coupled':>8}")
    lines = []
    for key in dict.fromkeys((r["algorithm"], r["test"]) for r in rows):
        lines.append(f"\n{key[0]}, E {key[1]}")
        lines.append(head)
        for r in (r for r in rows if (r["algorithm"], r["test"]) == key):
            cv_n = f"{r['n_cv']:9.3g}" if "n_cv" in r else f"{'n/a':>9}"
            cv_s = f"{r['n_cv'] * r['s_cv']:9.3g}" if "n_cv" in r else f"{'n/a':>9}"
            flag = "" if r["resolved"] else "  (|e| < 3 stderr: not resolved)"
            lines.append(
                f"{r['lr']:6.3g} {r['steps']:6d} {r['error']:11.3e} {r['stderr']:8.1e}  "
                f"{r['n_exact']:18.3g} {cv_n} {r['n_both']:9.3g} {r['n_coupled']:8.3g} "
                f"{r['n_exact'] / r['n_coupled']:6.0f}x  "
                f"{r['n_exact'] * r['s_exact']:20.3g} {cv_s} "
                f"{r['n_coupled'] * r['s_coupled']:8.3g}{flag}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.estimator_bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=4000, help="pilot paths per estimator")
    parser.add_argument("--lrs", default=",".join(map(str, LRS)))
    args = parser.parse_args(argv)
    lrs = [float(x) for x in args.lrs.split(",")]
    start = time.perf_counter()
    rows = []
    for name, case in CASES.items():
        rows += measure(name, case, lrs, args.paths)
    print(f"Paths and seconds for a {TARGET:.0%} relative standard error of the weak error "
          f"(pilot: {args.paths} paths per estimator and point; fewer = indep exact / coupled)")
    print(format_rows(rows))
    print(f"\n({time.perf_counter() - start:.0f} s in all, compilation included)")
    return rows


if __name__ == "__main__":
    main()
