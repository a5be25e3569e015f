"""Counter-keyed random streams: one xoshiro256++ generator per (seed, path).

Every path owns an independent stream whose state is derived from ``(seed, path)``
alone, so path ``i`` draws the same numbers whatever the number of paths, the
number of threads or the chunking of the work. Normals come from the ziggurat
method (Marsaglia & Tsang 2000, in the 128-layer form of Doornik 2005), which
needs one 64-bit draw per normal in ~98% of cases.

State layout (all kernels): ``state`` is a ``uint64`` array of shape ``(4,)``.
"""
import math

import numpy as np
from numba import njit, uint64

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_PATH_KEY = np.uint64(0xD1B54A32D192ED03)
_TO_UNIT = 2.0 ** -53

# Ziggurat tables for 128 layers (Doornik 2005, "An improved ziggurat method").
_ZIG_LAYERS = 128
_ZIG_R = 3.442619855899
_ZIG_V = 9.91256303526217e-3


def _ziggurat_tables():
    x = np.empty(_ZIG_LAYERS + 1)
    f = math.exp(-0.5 * _ZIG_R * _ZIG_R)
    x[0] = _ZIG_V / f          # width of the virtual base layer (box + tail)
    x[1] = _ZIG_R
    x[_ZIG_LAYERS] = 0.0
    for i in range(2, _ZIG_LAYERS):
        x[i] = math.sqrt(-2.0 * math.log(_ZIG_V / x[i - 1] + f))
        f = math.exp(-0.5 * x[i] * x[i])
    ratio = x[1:] / x[:-1]     # fraction of layer i that lies under the curve
    return x, ratio


ZIG_X, ZIG_RATIO = _ziggurat_tables()


@njit(inline="always")
def _rotl(x, k):
    return (x << uint64(k)) | (x >> uint64(64 - k))


@njit(inline="always")
def _splitmix64(z):
    z = (z ^ (z >> uint64(30))) * _MIX1
    z = (z ^ (z >> uint64(27))) * _MIX2
    return z ^ (z >> uint64(31))


@njit(cache=True)
def seed_stream(seed, path, state):
    """Initialise ``state`` (uint64, shape (4,)) for stream ``(seed, path)``.

    The key mixes ``seed`` and ``path`` through splitmix64, and the four state
    words are consecutive splitmix64 outputs from that key, as recommended by
    the xoshiro authors. Distinct ``(seed, path)`` pairs give unrelated streams.
    """
    key = _splitmix64(uint64(seed) * _GOLDEN + uint64(1)) ^ (uint64(path) * _PATH_KEY)
    for j in range(4):
        key += _GOLDEN
        state[j] = _splitmix64(key)
    # skip the first outputs, which are weakly mixed for low-entropy keys
    for _ in range(4):
        next_uint64(state)


@njit(inline="always")
def _xoshiro_step(s0, s1, s2, s3):
    """xoshiro256++ on state words held in registers: (output, s0, s1, s2, s3)."""
    result = _rotl(s0 + s3, 23) + s0
    t = s1 << uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    return result, s0, s1, s2, s3


@njit(inline="always")
def next_uint64(state):
    """xoshiro256++ step: returns a uniform uint64 and advances ``state``."""
    result, state[0], state[1], state[2], state[3] = _xoshiro_step(
        state[0], state[1], state[2], state[3])
    return result


@njit(inline="always")
def next_open_unit(state):
    """Uniform double in the open interval (0, 1)."""
    return (float(next_uint64(state) >> uint64(11)) + 0.5) * _TO_UNIT


@njit
def _normal_slow_path(state, layer, u):
    """Tail or wedge of the ziggurat; returns NaN when the sample is rejected."""
    if layer == 0:
        # Marsaglia's tail algorithm beyond R
        while True:
            a = -math.log(next_open_unit(state)) / _ZIG_R
            b = -math.log(next_open_unit(state))
            if b + b > a * a:
                break
        return -(_ZIG_R + a) if u < 0.0 else _ZIG_R + a
    x = u * ZIG_X[layer]
    f0 = math.exp(-0.5 * (ZIG_X[layer] * ZIG_X[layer] - x * x))
    f1 = math.exp(-0.5 * (ZIG_X[layer + 1] * ZIG_X[layer + 1] - x * x))
    if f1 + next_open_unit(state) * (f0 - f1) < 1.0:
        return x
    return math.nan


@njit(inline="always")
def _ziggurat_normal(state, s0, s1, s2, s3):
    """One standard normal from state words held in registers.

    Returns ``(z, s0, s1, s2, s3)``. The rare tail/wedge case goes through the
    array ``state``, which it leaves synchronised with the returned words.
    """
    while True:
        bits, s0, s1, s2, s3 = _xoshiro_step(s0, s1, s2, s3)
        layer = np.int64(bits & uint64(_ZIG_LAYERS - 1))
        u = 2.0 * (float(bits >> uint64(11)) * _TO_UNIT) - 1.0
        if abs(u) < ZIG_RATIO[layer]:
            return u * ZIG_X[layer], s0, s1, s2, s3
        state[0], state[1], state[2], state[3] = s0, s1, s2, s3
        z = _normal_slow_path(state, layer, u)
        s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
        if z == z:
            return z, s0, s1, s2, s3


@njit(inline="always")
def next_normal(state):
    """Standard normal variate from the stream ``state``."""
    z, state[0], state[1], state[2], state[3] = _ziggurat_normal(
        state, state[0], state[1], state[2], state[3])
    return z


@njit(inline="always")
def fill_normals(state, out, scale):
    """``out[j] = scale * z_j`` for the next ``len(out)`` normals z_j of ``state``.

    The same numbers, in the same order, as ``len(out)`` calls of
    :func:`next_normal`, but faster: the four state words stay in registers for
    the whole batch instead of being reloaded after every store to an array
    the compiler cannot prove distinct from ``state`` (1.33x the normals per
    second of one call per normal, in batches of 10).

    The rare tail/wedge call in this loop costs about 30% of the rate (the
    same loop redrawing instead ran 8.0e8 normals/s against 5.6e8 on 2
    threads), but none of the stream-preserving ways tried of moving it out of
    the loop recovered that (a two-level loop, a separate fast function, an
    inlined slow path, a likely-branch hint: at most +4.5%).
    """
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    for j in range(out.shape[0]):
        z, s0, s1, s2, s3 = _ziggurat_normal(state, s0, s1, s2, s3)
        out[j] = z * scale
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3


@njit(cache=True)
def stream_normals(seed, path, n):
    """The first ``n`` normals of stream ``(seed, path)``; shape (n,)."""
    state = np.empty(4, dtype=np.uint64)
    seed_stream(seed, path, state)
    out = np.empty(n)
    for i in range(n):
        out[i] = next_normal(state)
    return out
