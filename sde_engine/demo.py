"""The demo that ``make demo`` runs: a reduced weak-order study in well under a minute.

Usage: ``python -m sde_engine.demo --out plots/demo``. Prints the table and
where the table, the numbers (JSON) and the plot were written.
"""
import argparse
import sys
import time

import numpy as np

from .studies.solver_convergence import save_convergence, solver_convergence


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m sde_engine.demo", description=__doc__)
    parser.add_argument("--out", default="plots/demo", help="output folder (default plots/demo)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print("Euler–Maruyama and Milstein on geometric Brownian motion "
          "dX = 0.5 X dt + 0.8 X dW, X0 = 1, T = 1:\nstrong and weak errors against the exact "
          "solution on the same Brownian paths (40000 paths)...", flush=True)
    result = solver_convergence("gbm", n_paths=40_000, seed=0,
                                dts=2.0 ** -np.arange(3, 9))
    paths = save_convergence(result, args.out, stem="gbm_solvers")
    print(result.table())
    print(f"\ntable: {paths['table']}\nnumbers: {paths['json']}\nplot: {paths['plot']}\n"
          f"({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
