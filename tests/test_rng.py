"""The per-path random streams of solvers/rng.py.

Statistical checks use fixed seeds; each tolerance is a multiple of the Monte
Carlo standard error of the statistic under the null hypothesis "independent
standard normals", so a correct generator fails with probability < 1e-4 per
check (and, the seeds being fixed, deterministically passes or fails).
"""
import math

import numpy as np
import pytest
from numba import njit
from scipy import special, stats

from solvers import rng

N_SAMPLES = 2_000_000


def block_normals(seed, path, n):
    """The block sequence (fill_normal_block) drawn 1000 at a time."""
    return rng.stream_block_normals(seed, path, n, 1000)


#: (normal sequence of a stream, base r of its ziggurat) for both forms
GENERATORS = {"one_at_a_time": (rng.stream_normals, rng._ZIG_R),
              "block": (block_normals, rng._BLOCK_R)}


@pytest.fixture(scope="module", params=list(GENERATORS))
def generator(request):
    return GENERATORS[request.param]


@pytest.fixture(scope="module")
def normals(generator):
    """2·10^6 normals from two streams (two seeds, different paths)."""
    stream, _ = generator
    return np.concatenate([stream(11, 0, N_SAMPLES // 2), stream(12, 3, N_SAMPLES // 2)])


def test_moments_within_monte_carlo_error(normals):
    n = normals.size
    z = normals
    mean = z.mean()
    var = z.var()
    skew = stats.skew(z)
    excess_kurtosis = stats.kurtosis(z)
    # standard errors of the sample moments of N(0, 1): 1/√n, √(2/n), √(6/n), √(24/n)
    assert abs(mean) < 4 * math.sqrt(1 / n)
    assert abs(var - 1) < 4 * math.sqrt(2 / n)
    assert abs(skew) < 4 * math.sqrt(6 / n)
    assert abs(excess_kurtosis) < 4 * math.sqrt(24 / n)


def test_kolmogorov_smirnov_and_binned_chi_square(normals):
    assert stats.kstest(normals, "norm").pvalue > 1e-3
    # 200 equiprobable bins: sensitive to local density errors (ziggurat wedges)
    edges = stats.norm.ppf(np.linspace(0, 1, 201))
    counts, _ = np.histogram(normals, bins=edges)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_tail_beyond_ziggurat_base_has_normal_frequency(generator, normals):
    # |z| > R comes only from the tail algorithm; count ~ Binomial(n, erfc(R/√2))
    r = generator[1]
    p_tail = special.erfc(r / math.sqrt(2))
    expected = normals.size * p_tail
    sd = math.sqrt(normals.size * p_tail * (1 - p_tail))
    observed = np.count_nonzero(np.abs(normals) > r)
    assert abs(observed - expected) < 4 * sd
    # both signs of the tail are produced equally
    positive = np.count_nonzero(normals > r)
    assert abs(positive - observed / 2) < 4 * math.sqrt(observed / 4)


def test_serial_correlation_within_a_stream(generator):
    z = generator[0](5, 17, 500_000)
    for lag in (1, 2, 3, 8):
        r = np.corrcoef(z[:-lag], z[lag:])[0, 1]
        assert abs(r) * math.sqrt(z.size - lag) < 4.5, lag


def test_distinct_seed_path_streams_are_uncorrelated_and_disjoint(generator):
    stream, n = generator[0], 4000
    keys = [(seed, path) for seed in range(4) for path in range(48)]
    keys += [(0, 2**40), (0, 2**62 - 1), (2**63 - 1, 0), (2**63 - 1, 2**62 - 1)]
    z = np.array([stream(seed, path, n) for seed, path in keys])
    r = np.corrcoef(z)[np.triu_indices(len(keys), k=1)]
    scaled = r * math.sqrt(n)          # ≈ N(0, 1) per pair under independence
    k = scaled.size
    assert abs(np.mean(scaled**2) - 1) < 4 * math.sqrt(2 / k)
    assert np.max(np.abs(scaled)) < 5.5    # P(max of ~18k |N(0,1)| > 5.5) < 1e-3
    # overlapping or repeated streams would repeat values
    assert np.unique(z).size == z.size


def test_stream_is_a_pure_function_of_seed_and_path(generator):
    stream = generator[0]
    a = stream(3, 9, 50)
    np.testing.assert_array_equal(a, stream(3, 9, 50))
    np.testing.assert_array_equal(a[:20], stream(3, 9, 20))
    assert not np.any(a == stream(3, 10, 50))
    assert not np.any(a == stream(4, 9, 50))


@pytest.mark.parametrize("layers, x, ratio, v, r", [
    (128, rng.ZIG_X, rng.ZIG_RATIO, rng._ZIG_V, rng._ZIG_R),
    (256, rng.BLOCK_X, rng.BLOCK_RATIO, rng._BLOCK_V, rng._BLOCK_R)])
def test_ziggurat_layers_all_have_area_v(layers, x, ratio, v, r):
    """Each layer (base = box + tail) has the common area V."""

    def f(u):
        return np.exp(-0.5 * u * u)

    assert x.shape == (layers + 1,) and x[1] == r and x[layers] == 0.0
    assert np.all(np.diff(x[1:]) < 0)
    # layer i (1..layers-1) is the box of width x_i between heights f(x_i) and f(x_{i+1})
    areas = x[1:layers] * (f(x[2:layers + 1]) - f(x[1:layers]))
    # the layers below the top are built by the recursion; their areas equal V to rounding
    np.testing.assert_allclose(areas[:-1], v, rtol=1e-12)
    # the top layer closes only if (R, V) solve the ziggurat equations; they are
    # given to 12 to 17 digits, so it closes to ~1e-9
    np.testing.assert_allclose(areas[-1], v, rtol=1e-8)
    # base layer: box R f(R) plus the tail integral, and its virtual width x_0
    tail = math.sqrt(math.pi / 2) * special.erfc(r / math.sqrt(2))
    np.testing.assert_allclose(r * f(r) + tail, v, rtol=1e-11)
    np.testing.assert_allclose(x[0] * f(r), v, rtol=1e-15)
    np.testing.assert_allclose(ratio, x[1:] / x[:-1], rtol=0)


def test_block_sequence_does_not_depend_on_the_block_sizes():
    # 10^5 normals: ~1500 tail/wedge draws, finished after their block
    one_block = rng.stream_block_normals(5, 2, 100_000, 100_000)
    for block in (1, 7, 10, 1024):
        np.testing.assert_array_equal(rng.stream_block_normals(5, 2, 100_000, block), one_block)
    assert np.any(np.abs(one_block) > rng._BLOCK_R)    # the ziggurat's tail was drawn


@njit
def _main_words(seed, path, n):
    state = np.empty(4, dtype=np.uint64)
    rng.seed_stream(seed, path, state)
    return np.array([rng.next_uint64(state) for _ in range(n)])


@njit
def _scaled_block(seed, path, n, scale):
    state = np.empty(8, dtype=np.uint64)
    rng.seed_stream(seed, path, state)
    out = np.empty(n)
    rng.fill_normal_block(state, out, n, scale, np.empty(n, dtype=np.int64),
                          np.empty(n, dtype=np.uint64))
    return out


def test_block_normal_i_is_main_word_i_unless_rejected():
    """Hand computation of the ziggurat's fast path from the main stream's words:
    layer = low 8 bits, u = 2·(top 53 bits)·2^-53 − 1, z = u·x[layer] when
    |u| < x[layer+1]/x[layer]; the other draws differ (finished on the
    auxiliary stream), at the expected rate."""
    n, scale = 200_000, 0.37
    words = _main_words(7, 4, n)
    layer = (words & np.uint64(255)).astype(np.int64)
    u = 2.0 * ((words >> np.uint64(11)).astype(np.float64) * 2.0**-53) - 1.0
    accepted = np.abs(u) < rng.BLOCK_RATIO[layer]
    z = _scaled_block(7, 4, n, scale)
    np.testing.assert_array_equal(z[accepted], (u * rng.BLOCK_X[layer])[accepted] * scale)
    np.testing.assert_array_equal(z, rng.stream_block_normals(7, 4, n, 1000) * scale)
    # layers are equally likely and |u| uniform: P(rejected) = 1 − mean(ratio) (~1.5%)
    p_reject = 1.0 - np.mean(rng.BLOCK_RATIO)
    n_rejected = np.count_nonzero(~accepted)
    assert abs(n_rejected - n * p_reject) < 4 * math.sqrt(n * p_reject * (1 - p_reject))


def test_eight_word_state_keeps_the_main_stream_and_adds_an_unrelated_one():
    four = np.empty(4, dtype=np.uint64)
    eight = np.empty(8, dtype=np.uint64)
    rng.seed_stream(3, 5, four)
    rng.seed_stream(3, 5, eight)
    np.testing.assert_array_equal(eight[:4], four)
    assert not np.any(np.isin(eight[4:], four))
