"""What float32 paths could buy on this CPU (issue 17, item 2), before building them.

A stand-alone loop shaped like the engine's Euler–Maruyama path kernel on the
10-D GBM of ``python -m benchmarks`` — per path: seed the stream, then per block
of steps draw the block normals (:func:`solvers.rng.fill_normal_block`, float64)
and step x ← x + μx dt + σx ΔW — with the state and the step's arithmetic in
float64 or in float32 (the normals are converted on use), each with and without
drawing normals. Timed side by side (best of interleaved rounds), 2 threads.
The engine itself has no float32 path; this only bounds what one would gain.
Usage::

    python -m benchmarks.float32_probe            # 10^4 paths x 1000 steps
    python -m benchmarks.float32_probe --quick    # 10^3 paths x 200 steps
"""
import argparse

import numpy as np
from numba import njit, prange

from sde_engine.simulate import numba_threads
from solvers.rng import fill_normal_block, seed_stream

from .gbm import MU, SIGMA
from .solver_bench import DIM, THREADS
from .timing import best_interleaved

BLOCK_STEPS = 100


def _make_loop(dtype, draw):
    """The per-path loop with state type ``dtype``; ``draw``: whether to draw normals."""

    @njit(parallel=True)
    def run(n_paths, n_steps, dt, seed, out):
        mu_dt = dtype(MU * dt)
        sigma = dtype(SIGMA)
        for p in prange(n_paths):
            state = np.empty(8, dtype=np.uint64)
            seed_stream(seed, p, state)
            normals = np.zeros(BLOCK_STEPS * DIM)
            at = np.empty(BLOCK_STEPS * DIM, dtype=np.int64)
            words = np.empty(BLOCK_STEPS * DIM, dtype=np.uint64)
            x = np.ones(DIM, dtype=dtype)
            k = 0
            while k < n_steps:
                n = min(BLOCK_STEPS, n_steps - k)
                if draw:
                    fill_normal_block(state, normals, n * DIM, dt ** 0.5, at, words)
                for b in range(n):
                    for i in range(DIM):
                        xi = x[i]
                        x[i] = xi + mu_dt * xi + sigma * xi * dtype(normals[b * DIM + i])
                k += n
            out[p] = x[0]

    return run


def measure(n_paths, n_steps, repeats):
    """Rates in path·dim-steps per second, ``{name: rate}``."""
    out = np.empty(n_paths)
    dt = 1.0 / n_steps
    calls = {}
    for name, dtype, draw in (("float64", np.float64, True), ("float32", np.float32, True),
                              ("float64, no normals", np.float64, False),
                              ("float32, no normals", np.float32, False)):
        run = _make_loop(dtype, draw)

        def call(n, run=run):
            with numba_threads(THREADS):
                run(n, n_steps, dt, 1, out)

        call(8)                                   # compile
        calls[name] = lambda call=call: call(n_paths)
    seconds = best_interleaved(calls, repeats)
    return {name: n_paths * DIM * n_steps / t for name, t in seconds.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.float32_probe",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^3 paths x 200 steps")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    n_paths, n_steps = (1_000, 200) if args.quick else (10_000, 1000)
    rates = measure(n_paths, n_steps, args.repeats)
    print(f"float32 probe: {DIM}-D GBM, Euler-Maruyama loop, {n_paths} paths x {n_steps} "
          f"steps, {THREADS} threads")
    print(f"{'state':22s} {'rate':>12s} {'ns/step/core':>13s} {'vs float64':>11s}")
    for name, rate in rates.items():
        base = rates["float64" if "no normals" not in name else "float64, no normals"]
        print(f"{name:22s} {rate:12.4g} {THREADS * 1e9 / rate:13.2f} {rate / base:10.2f}x")


if __name__ == "__main__":
    main()
