"""What float32 paths could buy on this CPU (issue 17, item 2), before building them.

A stand-alone loop shaped like the engine's Euler–Maruyama path kernel on the
10-D GBM of ``python -m benchmarks`` — per path: seed the stream, then per block
of steps draw the block normals (:func:`solvers.rng.fill_normal_block`, float64)
and step x ← x + μx dt + σx ΔW — with the state and the step's arithmetic in
float64 or in float32 (the normals are converted on use), each with and without
drawing normals, and a float32 loop fed by a float32 ziggurat that makes two
normals from each 64-bit word (:func:`fill_float32_block`, 24-bit abscissa,
float32 tables; written here only to time it). Timed side by side (best of
interleaved rounds), 2 threads. The engine itself has no float32 path; this
only bounds what one would gain.
Usage::

    python -m benchmarks.float32_probe            # 10^4 paths x 1000 steps
    python -m benchmarks.float32_probe --quick    # 10^3 paths x 200 steps
"""
import argparse

import numpy as np
from numba import njit, prange

from sde_engine.simulate import numba_threads
from solvers.rng import (BLOCK_RATIO, BLOCK_X, _finish_rejected, _xoshiro_step,
                         fill_normal_block, seed_stream)

from .gbm import MU, SIGMA
from .solver_bench import DIM, THREADS
from .timing import best_interleaved

BLOCK_STEPS = 100
#: float32 tables of the 256-layer ziggurat; the acceptance ratios rounded down,
#: so that a draw accepted in float32 lies inside its rectangle.
_X32 = BLOCK_X.astype(np.float32)
_RATIO32 = np.nextafter(BLOCK_RATIO.astype(np.float32), np.float32(0.0))
_LOW32 = np.uint64(0xFFFFFFFF)


@njit(inline="always")
def _half_normal(half, j, out, scale, rejected_at, rejected_words, n_rejected):
    """Normal j from a 32-bit half word: layer in the low 8 bits, u from the top 24."""
    layer = np.int64(half & np.uint64(255))
    u = np.float32(np.int64(half >> np.uint64(8))) * np.float32(2.0 ** -23) - np.float32(1.0)
    rejected_at[n_rejected] = j
    rejected_words[n_rejected] = half
    out[j] = (u * _X32[layer]) * scale
    return n_rejected + (abs(u) >= _RATIO32[layer])


@njit(inline="always")
def fill_float32_block(state, out, n, scale, rejected_at, rejected_words):
    """``out[j] = scale * z_j`` (float32), j < n even: two normals per 64-bit word,
    the rare tail/wedge draws finished after the loop in float64 on the auxiliary
    stream by :func:`solvers.rng._finish_rejected`."""
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    n_rejected = 0
    for j in range(0, n, 2):
        bits, s0, s1, s2, s3 = _xoshiro_step(s0, s1, s2, s3)
        n_rejected = _half_normal(bits & _LOW32, j, out, scale, rejected_at,
                                  rejected_words, n_rejected)
        n_rejected = _half_normal(bits >> np.uint64(32), j + 1, out, scale, rejected_at,
                                  rejected_words, n_rejected)
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3
    for i in range(n_rejected):
        # as a block word with the same layer (low 8 bits) and u (top 53 bits)
        half = rejected_words[i]
        rejected_words[i] = ((half >> np.uint64(8)) << np.uint64(40)) | (half & np.uint64(255))
    if n_rejected:
        _finish_rejected(state, out, scale, rejected_at, rejected_words, n_rejected)


def _make_loop(dtype, draw, normals_dtype=np.float64):
    """The per-path loop with state type ``dtype``; ``draw``: whether to draw normals
    (of ``normals_dtype``: float32 ones from :func:`fill_float32_block`)."""
    fill = fill_float32_block if normals_dtype == np.float32 else fill_normal_block

    @njit(parallel=True)
    def run(n_paths, n_steps, dt, seed, out):
        mu_dt = dtype(MU * dt)
        sigma = dtype(SIGMA)
        for p in prange(n_paths):
            state = np.empty(8, dtype=np.uint64)
            seed_stream(seed, p, state)
            normals = np.zeros(BLOCK_STEPS * DIM, dtype=normals_dtype)
            at = np.empty(BLOCK_STEPS * DIM, dtype=np.int64)
            words = np.empty(BLOCK_STEPS * DIM, dtype=np.uint64)
            x = np.ones(DIM, dtype=dtype)
            k = 0
            while k < n_steps:
                n = min(BLOCK_STEPS, n_steps - k)
                if draw:
                    fill(state, normals, n * DIM, normals_dtype(dt ** 0.5), at, words)
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
    for name, dtype, draw, normals in (
            ("float64", np.float64, True, np.float64),
            ("float32", np.float32, True, np.float64),
            ("float32, f32 normals", np.float32, True, np.float32),
            ("float64, no normals", np.float64, False, np.float64),
            ("float32, no normals", np.float32, False, np.float64)):
        run = _make_loop(dtype, draw, normals)

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
