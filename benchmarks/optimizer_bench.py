"""Discrete Adam runs against Euler–Maruyama paths of the same sizes.

Target (issue 3): 10^5 independent Adam runs of a 10-dimensional quadratic for
1000 steps take at most twice the time of Euler–Maruyama on a 10-dimensional
SDE with the same numbers of paths and steps. Both go through the same chunked
driver (:mod:`solvers.driver`), both draw 10 normals per step, both keep the
final state of every path. The SDE is the 10-D Ornstein–Uhlenbeck process
(diagonal noise); the problem is a quadratic with diagonal H and Σ and
Gaussian noise.

Work unit: one path (or run) advanced by one step. Usage::

    .venv/bin/python -m benchmarks.optimizer_bench            # full size
    .venv/bin/python -m benchmarks.optimizer_bench --scale 0.1

:func:`bench_rows` returns ``[(name, work units per second), ...]`` for the
benchmark table.
"""
import argparse

import numpy as np

import sde_engine as se
from sde_engine.optimizers import adam
from sde_engine.problems import quadratic

from .timing import best_seconds

DIM = 10
N_PATHS = 100_000
N_STEPS = 1000


def time_adam(n_runs, n_steps, repeats=1, seed=0):
    """Seconds for ``n_runs`` Adam runs of ``n_steps`` on a 10-D quadratic (compile excluded)."""
    problem = quadratic(np.linspace(0.5, 2.0, DIM), Sigma=np.linspace(1.0, 2.0, DIM),
                        noise_scale=10.0)
    opt = adam(lr=1e-2, betas=(0.9, 0.999), eps=1e-8)
    theta0 = np.ones(DIM)
    se.run_optimizer(problem, opt, theta0, 2, 8, seed=seed)           # compile
    return best_seconds(lambda: se.run_optimizer(problem, opt, theta0, n_steps, n_runs,
                                               seed=seed), repeats)


def time_euler_maruyama(n_paths, n_steps, repeats=1, seed=0):
    """Seconds for ``n_paths`` EM paths of ``n_steps`` on a 10-D OU process (compile excluded)."""
    sde = se.ornstein_uhlenbeck(dim=DIM)
    x0 = np.ones(DIM)
    dt = 1e-3
    se.simulate(sde, x0, (0.0, 2 * dt), dt, 8, seed=seed)            # compile
    return best_seconds(lambda: se.simulate(sde, x0, (0.0, n_steps * dt), dt, n_paths,
                                          seed=seed), repeats)


def bench_rows(scale=1.0, repeats=1):
    """Rows ``(name, path-steps per second)`` for the benchmark table.

    Parameters
    ----------
    scale : float
        Fraction of the 10^5 paths to run (the step count stays 1000).
    repeats : int
        Best of this many timings.
    """
    n = max(int(N_PATHS * scale), 1)
    work = n * N_STEPS
    t_adam = time_adam(n, N_STEPS, repeats)
    t_em = time_euler_maruyama(n, N_STEPS, repeats)
    return [
        (f"adam runs, 10-D quadratic ({n} runs x {N_STEPS} steps)", work / t_adam),
        (f"euler_maruyama, 10-D OU ({n} paths x {N_STEPS} steps)", work / t_em),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    rows = bench_rows(args.scale, args.repeats)
    for name, rate in rows:
        print(f"{name:60s} {rate:12.4g} path-steps/s")
    print(f"{'adam time / euler_maruyama time (target <= 2)':60s} {rows[1][1] / rows[0][1]:12.3f}")


if __name__ == "__main__":
    main()
