"""Euler–Maruyama throughput: this engine vs torchsde, NumPy and its own normals.

Workload (issue 2): a 10-dimensional SDE with diagonal noise, coordinate-wise
geometric Brownian motion dX_i = μ X_i dt + σ X_i dW_i, integrated for
``n_steps`` steps of dt = 1/n_steps from X = 1, keeping the final state of
every path. Work unit: one path·dimension·step (one normal drawn, one
coordinate updated). Every contender is timed after a warm-up call (Numba
compilation, torch's first-call overhead), as its best of ``repeats`` rounds
in which each contender runs once in turn (the default torchsde call runs
once, after the rounds: it takes minutes at 10^5 paths):

* engine   — ``sde_engine.simulate(..., method="euler_maruyama", n_threads=2)``
             with plain Python drift/diffusion compiled by the engine;
* torchsde — ``torchsde.sdeint(method="euler")``, CPU, float64,
             ``torch.set_num_threads(2)``, its default Brownian interval;
* torchsde+dt — the same with ``bm=BrownianInterval(..., dt=dt)``, the step-size
             hint torchsde documents for fixed-step solvers (4x faster at 1000 steps);
* numpy    — a vectorised loop over steps, in place, with
             ``numpy.random.default_rng`` (single-threaded like NumPy itself);
* normals  — the engine's generator alone (:mod:`solvers.rng`): the same
             per-path streams and chunked parallel loop, drawing the same number
             of normals in the SDE kernel's blocks (``fill_normal_block``, whole
             steps of DIM up to ``BLOCK_NORMALS``) and summing them; the
             ceiling for the engine.

Targets (issue 2, 2 cores): engine ≥ 20× torchsde at 10^4 paths and ≥ 40× at
10^5 (checked against both torchsde variants), ≥ 3× NumPy, ≥ 60% of the normal
rate. Usage::

    python -m benchmarks              # 10^4 and 10^5 paths x 1000 steps (about 10 minutes),
                                      # then general noise (benchmarks/general_noise_bench.py)
    python -m benchmarks --quick      # 10^3 and 10^4 paths x 200 steps (seconds)
"""
import argparse
import math
import os

import numpy as np
from numba import njit, prange

import sde_engine as se
from sde_engine.simulate import numba_threads
from solvers.driver import CHUNK_PATHS
from solvers.rng import fill_normal_block, seed_stream
from solvers.sde_kernel import BLOCK_NORMALS

from . import general_noise_bench, optimizer_bench
from .gbm import MU, SIGMA, diffusion as _diffusion, drift as _drift
from .timing import best_interleaved, best_seconds

DIM = 10
THREADS = 2
TARGETS = {"torchsde_small": 20.0, "torchsde_large": 40.0, "numpy": 3.0, "normals": 0.6}


def engine_call(n_paths, n_steps):
    sde = se.SDE(_drift, _diffusion, dim=DIM, noise="diagonal", params=np.array([MU, SIGMA]))
    x0 = np.ones(DIM)
    dt = 1.0 / n_steps

    def call(n):
        return se.simulate(sde, x0, (0.0, 1.0), dt, n, method="euler_maruyama", seed=1,
                           n_threads=THREADS)

    call(8)                                       # compile
    return lambda: call(n_paths)


@njit(parallel=True)
def _draw_normals(n_paths, n_steps, seed, out):
    """Per-path streams in chunks, like the driver: ``n_steps`` steps of DIM
    normals per path, drawn in blocks as the SDE kernel draws them; ``out[p]``
    = their sum."""
    n_chunks = (n_paths + CHUNK_PATHS - 1) // CHUNK_PATHS
    block_steps = max(1, BLOCK_NORMALS // DIM)
    for c in prange(n_chunks):
        state = np.empty(8, dtype=np.uint64)
        block = np.empty(block_steps * DIM)
        rejected_at = np.empty(block.size, dtype=np.int64)
        rejected_words = np.empty(block.size, dtype=np.uint64)
        for p in range(c * CHUNK_PATHS, min((c + 1) * CHUNK_PATHS, n_paths)):
            seed_stream(seed, p, state)
            acc = 0.0
            for k in range(0, n_steps, block_steps):
                n = min(block_steps, n_steps - k) * DIM
                fill_normal_block(state, block, n, 1.0, rejected_at, rejected_words)
                for j in range(n):
                    acc += block[j]
            out[p] = acc


def normals_call(n_paths, n_steps):
    out = np.empty(n_paths)

    def call(n):
        with numba_threads(THREADS):
            _draw_normals(n, n_steps, 1, out)

    call(8)                                       # compile
    return lambda: call(n_paths)


def numpy_call(n_paths, n_steps):
    dt = 1.0 / n_steps
    sqrt_dt = math.sqrt(dt)

    def run():
        rng = np.random.default_rng(1)
        x = np.ones((n_paths, DIM))
        dw = np.empty_like(x)
        for _ in range(n_steps):
            rng.standard_normal(out=dw)
            dw *= SIGMA * sqrt_dt                  # g(x) dW / x
            dw += 1.0 + MU * dt                    # 1 + f(x) dt / x
            x *= dw                                # x + f dt + g dW
        return x

    return run


def torchsde_call(n_paths, n_steps, dt_hint=False):
    """torchsde ``sdeint(method="euler")``; ``dt_hint`` passes a ``BrownianInterval``
    told the step size (torchsde's documented speed-up for fixed-step solvers)."""
    import torch
    import torchsde

    class GBM(torch.nn.Module):
        noise_type = "diagonal"
        sde_type = "ito"

        def f(self, t, y):
            return MU * y

        def g(self, t, y):
            return SIGMA * y

    sde = GBM()
    dt = 1.0 / n_steps

    def call(n, steps):
        previous = torch.get_num_threads()
        torch.set_num_threads(THREADS)
        try:
            return solve(n, steps)
        finally:
            torch.set_num_threads(previous)

    def solve(n, steps):
        t1 = steps * dt
        y0 = torch.ones(n, DIM, dtype=torch.float64)
        ts = torch.tensor([0.0, t1], dtype=torch.float64)
        bm = None
        if dt_hint:
            bm = torchsde.BrownianInterval(t0=0.0, t1=t1, size=(n, DIM), dtype=torch.float64,
                                           dt=dt)
        with torch.no_grad():
            return torchsde.sdeint(sde, y0, ts, method="euler", dt=dt, bm=bm)

    call(n_paths, 20)                              # first call is much slower
    return lambda: call(n_paths, n_steps)


TORCHSDE_NAMES = ("torchsde", "torchsde+dt")


def measure(path_counts, n_steps, repeats, torchsde=True):
    """Rates in path·dim-steps per second, ``{(name, n_paths): rate}``.

    torchsde is timed on the full number of steps: with its default Brownian
    motion the cost of a step grows with the number of steps (at 10^4 paths,
    1000 steps ran 4x slower per step than 100 steps), so a rate measured on
    fewer steps does not carry over.
    """
    rates = {}
    for n in path_counts:
        calls = {"engine": engine_call(n, n_steps), "normals": normals_call(n, n_steps),
                 "numpy": numpy_call(n, n_steps)}
        default_sdeint = None
        if torchsde:
            try:
                calls["torchsde+dt"] = torchsde_call(n, n_steps, dt_hint=True)
                default_sdeint = torchsde_call(n, n_steps)
            except ImportError:
                torchsde = False
        seconds = best_interleaved(calls, repeats)
        if default_sdeint is not None:
            # one default call takes minutes at 10^5 paths and the engine is tens of
            # times faster: it runs once, outside the rounds
            seconds["torchsde"] = best_seconds(default_sdeint, 1)
        for name, t in seconds.items():
            rates[name, n] = n * DIM * n_steps / t
    return rates


def format_table(rates, path_counts, n_steps):
    lines = [f"Euler-Maruyama, {DIM}-D diagonal-noise GBM, {n_steps} steps, {THREADS} threads "
             f"(path*dim-steps per second; ratio = engine rate / this rate)",
             f"{'method':11s} {'paths':>8s} {'rate':>12s} {'engine/this':>12s}"]
    for n in path_counts:
        engine = rates["engine", n]
        for name in ("engine", "normals", "numpy", *TORCHSDE_NAMES):
            if (name, n) in rates:
                rate = rates[name, n]
                lines.append(f"{name:11s} {n:8d} {rate:12.4g} {engine / rate:12.2f}")
    return "\n".join(lines)


def target_lines(rates, path_counts):
    """The issue's targets, checked on the sizes measured (small / large path counts)."""
    small, large = min(path_counts), max(path_counts)
    checks = []
    for name in TORCHSDE_NAMES:
        for n, target in ((small, "torchsde_small"), (large, "torchsde_large")):
            if (name, n) in rates and (n == small or large != small):
                checks.append((f"engine / {name} at {n} paths",
                               rates["engine", n] / rates[name, n], TARGETS[target]))
    for n in path_counts:
        checks.append((f"engine / numpy at {n} paths", rates["engine", n] / rates["numpy", n],
                       TARGETS["numpy"]))
        checks.append((f"engine / normal rate at {n} paths", rates["engine", n]
                       / rates["normals", n], TARGETS["normals"]))
    return [f"{label:40s} {value:8.2f}  target >= {target:g}  "
            f"{'met' if value >= target else 'MISSED'}" for label, value, target in checks]


def optimizer_lines(quick):
    """Rows of benchmarks/optimizer_bench.py."""
    rows = optimizer_bench.bench_rows(scale=0.1 if quick else 1.0)
    return ["", "Optimizer runs vs SDE paths (path-steps per second; "
            "benchmarks/optimizer_bench.py)"] + [f"{name:60s} {rate:12.4g}"
                                                 for name, rate in rows]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="10^3 and 10^4 paths x 200 steps instead of 10^4 and 10^5 x 1000")
    parser.add_argument("--paths", type=int, nargs="+", help="path counts (overrides --quick)")
    parser.add_argument("--steps", type=int, help="number of steps (overrides --quick)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds of timings; each contender keeps its best "
                             "(the default sdeint: one call)")
    parser.add_argument("--no-torchsde", action="store_true", help="skip torchsde")
    parser.add_argument("--no-optimizer", action="store_true",
                        help="skip benchmarks/optimizer_bench.py")
    parser.add_argument("--no-general-noise", action="store_true",
                        help="skip benchmarks/general_noise_bench.py")
    args = parser.parse_args(argv)
    path_counts = args.paths or ([1_000, 10_000] if args.quick else [10_000, 100_000])
    n_steps = args.steps or (200 if args.quick else 1000)
    # other processes on the machine distort every rate (2-thread ones the most)
    load_before = os.getloadavg()[0]
    rates = measure(path_counts, n_steps, args.repeats, torchsde=not args.no_torchsde)
    print(format_table(rates, path_counts, n_steps))
    print(f"(1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, "
          f"{os.cpu_count()} CPUs: rates are only comparable on an otherwise idle machine)")
    print()
    print("\n".join(target_lines(rates, path_counts)))
    if not args.no_general_noise:
        n_general, steps_general = (1_000, 200) if args.quick else (10_000, 1000)
        general = general_noise_bench.measure(n_general, steps_general, args.repeats,
                                              torchsde=not args.no_torchsde)
        print()
        print("\n".join(general_noise_bench.table_lines(general, n_general, steps_general)))
    if not args.no_optimizer:
        print("\n".join(optimizer_lines(args.quick)))
