"""``fit_order`` on synthetic power laws with known noise.

Coverage checks repeat a fit over N_SEEDS independent noise draws (fixed
seeds) and compare the fraction of intervals containing the true slope with
the coverage the method promises, within 4 binomial standard errors.
"""
import math

import numpy as np
import pytest
from scipy import integrate, stats

from sde_engine.analysis import compare_fits, fit_log_model, fit_order, noise_floor_mask

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


# ---- the log model |e| = η² (a + b ln 1/η) and the comparison with C η^p --------------
ETA = 0.2 * 2.0 ** (-0.5 * np.arange(9))     # 0.2 … 0.0125 in steps of √2, as the studies
A, B = 0.05, 0.2                              # about bias-corrected RMSprop's E θ (SPEC §4)
REL = 0.02                                    # stderr = 2% of the error


def log_truth(eta):
    return eta**2 * (A + B * np.log(1 / eta))


def power_truth(eta):
    return 0.3 * eta**1.5


def _draw(truth, seed, rel=REL):
    true = truth(ETA)
    s = rel * true
    return true + s * np.random.default_rng(seed).standard_normal(ETA.size), s


@pytest.fixture(scope="module")
def log_model_fits():
    return [fit_log_model(ETA, *_draw(log_truth, 20_000 + seed), level=LEVEL)
            for seed in range(N_SEEDS)]


def _unwidened_cov():
    s = REL * log_truth(ETA)
    X = np.column_stack([ETA**2, ETA**2 * np.log(1 / ETA)]) / s[:, None]
    return np.linalg.inv(X.T @ X)


def test_log_model_recovers_a_and_b_with_the_stated_coverage(log_model_fits):
    fits = log_model_fits
    se0 = np.sqrt(np.diag(_unwidened_cov()))
    promised = birge_coverage(ETA.size, LEVEL)   # linear model, exact Gaussian noise
    for i, (name, true) in enumerate((("a", A), ("b", B))):
        est = np.array([getattr(f, name) for f in fits])
        assert abs(est.mean() - true) < 4 * se0[i] / math.sqrt(N_SEEDS)
        assert abs(est.std(ddof=1) / se0[i] - 1) < 4 / math.sqrt(2 * N_SEEDS)
        ci = np.array([getattr(f, f"{name}_ci") for f in fits])
        coverage = np.mean((ci[:, 0] <= true) & (true <= ci[:, 1]))
        assert abs(coverage - promised) < binomial_band(promised)


def test_log_model_stderr_is_the_hand_computed_wls_one():
    e, s = _draw(log_truth, 1)
    fit = fit_log_model(ETA, e, s)
    cov = _unwidened_cov() * max(1.0, fit.reduced_chi2)
    np.testing.assert_allclose([fit.a_stderr, fit.b_stderr], np.sqrt(np.diag(cov)), rtol=1e-12)
    np.testing.assert_allclose(fit.curve(ETA), ETA**2 * (fit.a + fit.b * np.log(1 / ETA)))
    np.testing.assert_allclose(fit.chi2, np.sum(((e - fit.curve(ETA)) / s) ** 2), rtol=1e-12)


def test_pure_eta_squared_gives_b_consistent_with_zero():
    """C η² is the log model with b = 0: b's interval covers 0 as often as promised."""
    hits = []
    for seed in range(N_SEEDS):
        e, s = _draw(lambda eta: 0.3 * eta**2, 30_000 + seed)
        low, high = fit_log_model(ETA, e, s).b_ci
        hits.append(low <= 0 <= high)
    promised = birge_coverage(ETA.size, LEVEL)
    assert abs(np.mean(hits) - promised) < binomial_band(promised)


REL_CMP = 0.01    # the models differ by a few % over this range: resolve it well


def _mismatch(truth):
    """χ² of each model fitted to noise-free data with the stated stderrs: the
    non-centrality λ of the wrong model's χ² (the right one's is 0)."""
    true = truth(ETA)
    s = REL_CMP * true
    power, log = fit_order(ETA, true, s), fit_log_model(ETA, true, s)
    return compare_fits(ETA, true, s, power, log)


@pytest.mark.parametrize("truth, right", [(log_truth, "log"), (power_truth, "power")])
def test_the_comparison_prefers_the_model_that_made_the_data(truth, right):
    exact = _mismatch(truth)
    lam = exact.chi2_power if right == "log" else exact.chi2_log
    # ΔAIC ≈ λ ± 2√λ: a miss (ΔAIC on the wrong side of ±2) has probability
    # Φ((2 − λ)/(2√λ)) < 1e-6 per draw at λ > 100, so all 200 draws must pick right.
    assert lam > 100 and min(exact.chi2_power, exact.chi2_log) < 1e-12
    picks = []
    for seed in range(200):
        e, s = _draw(truth, 40_000 + seed, REL_CMP)
        power, log = fit_order(ETA, e, s), fit_log_model(ETA, e, s)
        cmp = compare_fits(ETA, e, s, power, log)
        picks.append(cmp.preferred)
        if right == "log":
            assert log.b_ci[0] > 0                     # b > 0 resolved: not order 1 in h
    assert picks == [right] * 200
    name = {"log": "the log model", "power": "the power law"}[right]
    assert cmp.summary().startswith(f"data prefer {name}: ΔAIC = ")
    assert (cmp.log_weight > 0.5) == (right == "log") and 0 <= cmp.log_weight <= 1


def test_log_model_uses_the_power_fits_points_and_refuses_bad_input():
    h = ETA.copy()
    e, s = _draw(log_truth, 5)
    e[-1] = 0.5 * s[-1]                               # under the noise floor
    power, log = fit_order(h, e, s), fit_log_model(h, e, s)
    np.testing.assert_array_equal(log.used, power.used)
    assert not log.used[-1] and any("noise floor" in n for n in log.notes)
    assert compare_fits(h, e, s, power, log).n_points == h.size - 1
    with pytest.raises(ValueError, match=r"`power`"):
        fit_log_model(h, e, s, power=float("nan"))
    with pytest.raises(ValueError, match=r"`h`"):
        fit_log_model(-h, e, s)
    with pytest.raises(ValueError, match=r"`stderrs` is required"):
        compare_fits(h, e, None, power, log)
    exact = fit_log_model(h, e, np.where(h == h[0], 0.0, s))
    assert math.isnan(exact.a) and any("zero standard error" in n for n in exact.notes)
    few = fit_log_model(h[:1], e[:1], s[:1])
    assert math.isnan(few.a) and any("fewer than 2" in n for n in few.notes)
    assert compare_fits(h[:2], e[:2], s[:2], fit_order(h[:2], e[:2], s[:2]),
                        fit_log_model(h[:2], e[:2], s[:2])).preferred == "neither"
