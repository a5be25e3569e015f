"""What a SIMD-lane generator could buy on this CPU (issue 17, item 1), before building it.

The engine draws block normals with one xoshiro256++ stream per path and a
fused scalar loop (:func:`solvers.rng.fill_normal_block`): draw a word, take its
ziggurat layer and abscissa, note it if it falls outside its rectangle. The
words of one stream form a dependency chain, so they cannot be vectorised; the
alternative timed here gives each path ``LANES`` streams stepped together (word
j from lane j mod LANES), which LLVM turns into SIMD code, and then transforms
the block in a second, branch-free loop (two table gathers per normal). It is
timed in the stages it adds up from, single-threaded, on blocks of
``BLOCK`` normals (best of interleaved rounds), in ns per normal:

* ``engine block``      — :func:`solvers.rng.fill_normal_block`, the reference;
* ``lanes: words``      — the LANES-lane words only;
* ``+ transform``       — and the ziggurat transform with a rejection flag per normal;
* ``+ scan``            — and the collection of the flagged draws;
* ``+ tail/wedge``      — and their tail/wedge tests: a complete generator.

The lane form is written here only to time it; nothing in the engine uses it.
Usage::

    python -m benchmarks.lanes_probe
"""
import argparse

import numpy as np
from llvmlite import binding
from numba import njit, uint64

from solvers.rng import (BLOCK_RATIO, BLOCK_X, _finish_rejected, _xoshiro_step,
                         fill_normal_block, seed_stream)

from .timing import best_interleaved

LANES = 16
BLOCK = 1024
NORMALS = 2 * 10 ** 7


@njit(inline="always")
def _lane_words(lanes, words, n_rounds):
    """``words[r LANES + l]`` = round r of lane l (xoshiro256++), for r < n_rounds.

    ``lanes`` is the (4, LANES) state, word-major so that each state word of
    all lanes is one SIMD vector.
    """
    s0, s1, s2, s3 = lanes[0], lanes[1], lanes[2], lanes[3]
    for r in range(n_rounds):
        for lane in range(LANES):
            words[r * LANES + lane], s0[lane], s1[lane], s2[lane], s3[lane] = _xoshiro_step(
                s0[lane], s1[lane], s2[lane], s3[lane])


@njit(inline="always")
def _transform(words, out, rejected, n):
    """Branch-free ziggurat on ``words``: ``out[j]`` and its flag ``rejected[j]``."""
    for j in range(n):
        bits = words[j]
        layer = np.int64(bits & uint64(255))
        # signed conversion: AVX-512 converts int64 to double in one instruction
        u = float(np.int64(bits >> uint64(11))) * 2.0 ** -52 - 1.0
        rejected[j] = abs(u) >= BLOCK_RATIO[layer]
        out[j] = u * BLOCK_X[layer]


@njit(inline="always")
def _collect(words, rejected, n, rejected_at):
    """Move the flagged words to the front of ``words`` (their indices to
    ``rejected_at``), scanning the flags eight at a time; returns their count."""
    eights = rejected.view(np.uint64)
    k = 0
    for w in range(n // 8):
        if eights[w]:
            for j in range(8 * w, 8 * w + 8):
                if rejected[j]:
                    rejected_at[k] = j
                    words[k] = words[j]
                    k += 1
    return k


def _make_lanes_run(stages):
    """A loop drawing ``NORMALS`` normals in blocks, through the first ``stages``
    stages of the lane generator (1: words … 4: complete)."""

    @njit
    def run(seed, out):
        lanes = np.empty((4, LANES), dtype=np.uint64)
        state = np.empty(8, dtype=np.uint64)
        for lane in range(LANES):
            seed_stream(seed, lane, state)
            lanes[:, lane] = state[:4]
        words = np.empty(BLOCK, dtype=np.uint64)
        rejected = np.zeros(BLOCK, dtype=np.bool_)
        rejected_at = np.empty(BLOCK, dtype=np.int64)
        checksum = 0.0
        for _ in range(NORMALS // BLOCK):
            _lane_words(lanes, words, BLOCK // LANES)
            if stages >= 2:
                _transform(words, out, rejected, BLOCK)
            if stages >= 3:
                n_rejected = _collect(words, rejected, BLOCK, rejected_at)
                if stages >= 4 and n_rejected:
                    _finish_rejected(state, out, 1.0, rejected_at, words, n_rejected)
            checksum += out[BLOCK - 1] + float(words[BLOCK - 1] >> uint64(60))
        return checksum

    return run


@njit
def _engine_run(seed, out):
    state = np.empty(8, dtype=np.uint64)
    seed_stream(seed, 0, state)
    rejected_at = np.empty(BLOCK, dtype=np.int64)
    rejected_words = np.empty(BLOCK, dtype=np.uint64)
    checksum = 0.0
    for _ in range(NORMALS // BLOCK):
        fill_normal_block(state, out, BLOCK, 1.0, rejected_at, rejected_words)
        checksum += out[BLOCK - 1]
    return checksum


def measure(repeats):
    """ns per normal of each stage, ``{name: ns}``."""
    out = np.empty(BLOCK)
    runs = {"engine block": _engine_run}
    for stages, name in enumerate(("lanes: words", "+ transform", "+ scan", "+ tail/wedge"), 1):
        runs[name] = _make_lanes_run(stages)
    calls = {}
    for name, run in runs.items():
        run(1, out)                                    # compile
        calls[name] = lambda run=run: run(1, out)
    seconds = best_interleaved(calls, repeats)
    n = NORMALS // BLOCK * BLOCK
    return {name: t / n * 1e9 for name, t in seconds.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lanes_probe",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    ns = measure(args.repeats)
    binding.initialize_native_target()
    cpu = binding.get_host_cpu_name()
    avx512 = "+avx512f" in binding.get_host_cpu_features().flatten()
    print(f"lane generator probe: {LANES} lanes, blocks of {BLOCK} normals, one thread, "
          f"CPU {cpu} ({'with' if avx512 else 'no'} AVX-512)")
    print(f"{'stage':16s} {'ns/normal':>10s} {'vs engine':>10s}")
    for name, value in ns.items():
        print(f"{name:16s} {value:10.3f} {value / ns['engine block']:9.2f}x")


if __name__ == "__main__":
    main()
