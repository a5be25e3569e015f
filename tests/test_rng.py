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


@pytest.fixture(scope="module")
def normals():
    """2·10^6 normals from two streams (two seeds, different paths)."""
    return np.concatenate([rng.stream_normals(11, 0, N_SAMPLES // 2),
                           rng.stream_normals(12, 3, N_SAMPLES // 2)])


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


def test_tail_beyond_ziggurat_base_has_normal_frequency(normals):
    # |z| > R comes only from the tail algorithm; count ~ Binomial(n, erfc(R/√2))
    p_tail = special.erfc(rng._ZIG_R / math.sqrt(2))
    expected = normals.size * p_tail
    sd = math.sqrt(normals.size * p_tail * (1 - p_tail))
    observed = np.count_nonzero(np.abs(normals) > rng._ZIG_R)
    assert abs(observed - expected) < 4 * sd
    # both signs of the tail are produced equally
    positive = np.count_nonzero(normals > rng._ZIG_R)
    assert abs(positive - observed / 2) < 4 * math.sqrt(observed / 4)


def test_serial_correlation_within_a_stream():
    z = rng.stream_normals(5, 17, 500_000)
    for lag in (1, 2, 3, 8):
        r = np.corrcoef(z[:-lag], z[lag:])[0, 1]
        assert abs(r) * math.sqrt(z.size - lag) < 4.5, lag


def test_distinct_seed_path_streams_are_uncorrelated_and_disjoint():
    n = 4000
    keys = [(seed, path) for seed in range(4) for path in range(48)]
    keys += [(0, 2**40), (0, 2**62 - 1), (2**63 - 1, 0), (2**63 - 1, 2**62 - 1)]
    z = np.array([rng.stream_normals(seed, path, n) for seed, path in keys])
    r = np.corrcoef(z)[np.triu_indices(len(keys), k=1)]
    scaled = r * math.sqrt(n)          # ≈ N(0, 1) per pair under independence
    k = scaled.size
    assert abs(np.mean(scaled**2) - 1) < 4 * math.sqrt(2 / k)
    assert np.max(np.abs(scaled)) < 5.5    # P(max of ~18k |N(0,1)| > 5.5) < 1e-3
    # overlapping or repeated streams would repeat values
    assert np.unique(z).size == z.size


def test_stream_is_a_pure_function_of_seed_and_path():
    a = rng.stream_normals(3, 9, 50)
    np.testing.assert_array_equal(a, rng.stream_normals(3, 9, 50))
    np.testing.assert_array_equal(a[:20], rng.stream_normals(3, 9, 20))
    assert not np.any(a == rng.stream_normals(3, 10, 50))
    assert not np.any(a == rng.stream_normals(4, 9, 50))


def test_ziggurat_layers_all_have_area_v():
    """Each of the 128 layers (base = box + tail) has the common area V."""
    x, v, r = rng.ZIG_X, rng._ZIG_V, rng._ZIG_R

    def f(u):
        return np.exp(-0.5 * u * u)

    assert x.shape == (129,) and x[1] == r and x[128] == 0.0
    assert np.all(np.diff(x[1:]) < 0)
    # layer i (1..127) is the box of width x_i between heights f(x_i) and f(x_{i+1})
    areas = x[1:128] * (f(x[2:129]) - f(x[1:128]))
    # layers 1..126 are built by the recursion; their areas equal V to rounding
    np.testing.assert_allclose(areas[:-1], v, rtol=1e-12)
    # the top layer closes only if (R, V) solve the ziggurat equations; they are
    # given to 13 and 15 digits, so it closes to ~1e-9
    np.testing.assert_allclose(areas[-1], v, rtol=1e-8)
    # base layer: box R f(R) plus the tail integral, and its virtual width x_0
    tail = math.sqrt(math.pi / 2) * special.erfc(r / math.sqrt(2))
    np.testing.assert_allclose(r * f(r) + tail, v, rtol=1e-12)
    np.testing.assert_allclose(x[0] * f(r), v, rtol=1e-15)
    np.testing.assert_allclose(rng.ZIG_RATIO, x[1:] / x[:-1], rtol=0)


@njit
def _batched_normals(seed, path, batch, n_batches, scale):
    state = np.empty(4, dtype=np.uint64)
    rng.seed_stream(seed, path, state)
    out = np.empty((n_batches, batch))
    for b in range(n_batches):
        rng.fill_normals(state, out[b], scale)
    return out.ravel()


def test_fill_normals_is_the_next_normal_sequence_scaled():
    # 10^5 normals cross the tail/wedge branch ~1000 times, mid-batch included
    batch, n_batches, scale = 7, 15_000, 0.37
    one_by_one = rng.stream_normals(5, 2, batch * n_batches)
    batched = _batched_normals(5, 2, batch, n_batches, scale)
    np.testing.assert_array_equal(batched, one_by_one * scale)
    assert np.any(np.abs(one_by_one) > 3.4426)   # the ziggurat's tail was drawn
