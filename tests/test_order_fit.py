"""``fit_order`` on synthetic power laws with known noise.

Coverage checks repeat a fit over N_SEEDS independent noise draws (fixed
seeds) and compare the fraction of intervals containing the true slope with
the coverage the method promises, within 4 binomial standard errors.
"""
import math

import numpy as np
import pytest
from scipy import integrate, stats

from sde_engine.analysis import fit_order, noise_floor_mask

N_SEEDS = 1000
H = 2.0 ** -np.arange(1, 7)          # 6 step sizes
C, P = 0.7, 1.0
LEVEL = 0.95


def binomial_band(p):
    return 4 * math.sqrt(p * (1 - p) / N_SEEDS)


def birge_coverage(n_points, level):
    """Coverage of the known-noise interval when the model is exact.

    The slope is N(p, se0²) and the reduced χ² is χ²_{dof}/dof, independent of
    it; the interval is ±z se0 when χ²_red ≤ 1 and ±t_{dof} se0 √χ²_red above.
    """
    dof = n_points - 2
    z = stats.norm.ppf(0.5 + level / 2)
    t = stats.t.ppf(0.5 + level / 2, dof)
    below = stats.chi2.cdf(dof, dof) * level
    above, _ = integrate.quad(
        lambda c: stats.chi2.pdf(c * dof, dof) * dof * (2 * stats.norm.cdf(t * math.sqrt(c)) - 1),
        1.0, np.inf)
    return below + above


@pytest.fixture(scope="module")
def known_noise_fits():
    rel = 0.05                       # stderr = 5% of the error: sd(log|e|) ≈ 0.05
    true = C * H**P
    fits = []
    for seed in range(N_SEEDS):
        noise = np.random.default_rng(seed).standard_normal(H.size)
        fits.append(fit_order(H, true + rel * true * noise, rel * true, level=LEVEL))
    return rel, fits


def test_known_noise_slope_is_unbiased_with_the_delta_method_spread(known_noise_fits):
    rel, fits = known_noise_fits
    slopes = np.array([f.order for f in fits])
    log_h = np.log(H)
    se0 = rel / math.sqrt(np.sum((log_h - log_h.mean()) ** 2))   # hand-computed WLS se
    assert abs(slopes.mean() - P) < 4 * se0 / math.sqrt(N_SEEDS)
    # sd of a sample sd over N_SEEDS draws is ≈ sd / √(2 N_SEEDS)
    assert abs(slopes.std(ddof=1) / se0 - 1) < 4 / math.sqrt(2 * N_SEEDS)
    assert all(f.used.all() and not f.below_noise.any() for f in fits)
    np.testing.assert_allclose(np.mean([f.constant for f in fits]), C, rtol=0.01)


def test_known_noise_interval_has_its_stated_coverage(known_noise_fits):
    _, fits = known_noise_fits
    coverage = np.mean([f.contains(P) for f in fits])
    promised = birge_coverage(H.size, LEVEL)
    assert LEVEL <= promised < 0.99          # the Birge widening is mildly conservative
    assert abs(coverage - promised) < binomial_band(promised)


def test_unknown_noise_interval_has_exact_t_coverage():
    """Log-normal errors, no stderrs: OLS in log space with a t interval is exact."""
    hits = []
    for seed in range(N_SEEDS):
        noise = np.random.default_rng(10_000 + seed).standard_normal(H.size)
        fit = fit_order(H, C * H**P * np.exp(0.1 * noise), level=LEVEL)
        hits.append(fit.contains(P))
    assert abs(np.mean(hits) - LEVEL) < binomial_band(LEVEL)


def test_points_below_the_noise_floor_are_flagged_and_excluded():
    h = 2.0 ** -np.array([1, 2, 3, 4, 5, 9, 10])
    s = np.full(h.size, 2e-5)                  # constant Monte Carlo error
    true = C * h**2                            # ≥ 6.8e-4, then 2.7e-6 and 6.7e-7 < 3 s
    errors = true + s * np.random.default_rng(3).standard_normal(h.size)
    fit = fit_order(h, errors, s)
    floor = np.abs(errors) < 3 * s
    np.testing.assert_array_equal(fit.below_noise, floor)
    np.testing.assert_array_equal(noise_floor_mask(errors, s), floor)
    assert floor[-2:].all() and not floor[:-2].any()
    np.testing.assert_array_equal(fit.used, ~floor)
    assert any("below the noise floor" in note for note in fit.notes)
    # the fit is the fit of the informative points alone, and it recovers slope 2
    alone = fit_order(h[~floor], errors[~floor], s[~floor])
    assert fit.order == alone.order and fit.ci == alone.ci
    assert abs(fit.order - 2.0) < 4 * fit.stderr
    # kept, their logs are not Gaussian with sd s/|e| (the delta method fails
    # near zero): the residuals then exceed the stated noise
    assert fit_order(h, errors, s, floor_sigmas=0.0).reduced_chi2 > 3


def test_lack_of_fit_widens_the_interval():
    rel = 1e-3
    errors = C * H * (1 + 2.0 * H)             # not yet a power law
    fit = fit_order(H, errors, rel * errors)
    assert fit.reduced_chi2 > 100
    unwidened_half = stats.norm.ppf(0.975) * rel / math.sqrt(
        np.sum((np.log(H) - np.log(H).mean()) ** 2))
    assert (fit.ci[1] - fit.ci[0]) / 2 > 10 * unwidened_half
    assert any("widened" in note for note in fit.notes)


def test_too_few_points_give_no_slope():
    fit = fit_order([0.5, 0.25], [0.1, 1e-9], [1e-3, 1e-3])
    assert math.isnan(fit.order) and fit.used.sum() == 1
    assert any("fewer than 2" in note for note in fit.notes)


@pytest.mark.parametrize("kwargs, message", [
    (dict(h=[0.5, -0.25], errors=[0.1, 0.05]), r"`h`"),
    (dict(h=[0.5, 0.25], errors=[0.1]), r"`h` and `errors`"),
    (dict(h=[0.5, 0.25], errors=[0.1, 0.05], level=1.5), r"`level`.*1\.5"),
    (dict(h=[0.5, 0.25], errors=[0.1, 0.05], stderrs=[0.01, -0.01]), r"`stderrs`"),
])
def test_bad_input_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit_order(**kwargs)
