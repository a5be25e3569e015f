"""SVAG (SPEC §6): hyperparameter transforms, the scheme, and its convergence to the SDE."""
import math

import numpy as np
import pytest

from sde_engine.models.scaling import sde_constants
from sde_engine.models.svag import svag_adaptive, svag_sgd, svag_transform, svag_weights


def test_weights_by_hand():
    r1, r2 = svag_weights(4.0)            # adaptive form, ℓ = 2: √(2·4 − 1) = √7
    assert r1 == pytest.approx((1 + math.sqrt(7)) / 2) and r2 == pytest.approx((1 - math.sqrt(7)) / 2)
    assert svag_weights(1.0) == (1.0, 0.0)


def test_adaptive_transform_by_hand():
    s = svag_adaptive(2, lr=0.1, betas=(0.9, 0.99), eps=1e-3)
    assert s.hyper["lr"] == pytest.approx(0.05)
    assert s.hyper["betas"] == pytest.approx((0.975, 0.9975))
    assert s.hyper["eps"] == pytest.approx(2e-3)
    assert s.step_factor == 4 and s.variance_factor == pytest.approx(4.0)
    s = svag_sgd(3, lr=0.3)
    assert s.hyper == {"lr": pytest.approx(0.1)} and s.step_factor == 3
    assert s.variance_factor == pytest.approx(3.0)
    assert s.r1 + s.r2 == pytest.approx(1.0)


def test_ell_one_is_identity():
    hp = dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8)
    s = svag_transform("adam", 1, **hp)
    assert s.hyper == hp and (s.r1, s.r2, s.step_factor) == (1.0, 0.0, 1)
    s = svag_transform("sgd", 1, lr=0.01)
    assert s.hyper == {"lr": 0.01} and (s.r1, s.r2, s.step_factor) == (1.0, 0.0, 1)


def test_adaptive_svag_keeps_sde_constants():
    """Property over 500 random settings: σ0, ε0, c1, c2 unchanged, σ' = σ·√(r1² + r2²)."""
    rng = np.random.default_rng(2)
    for _ in range(500):
        lr = 10 ** rng.uniform(-4, -0.5)
        betas = (1 - 10 ** rng.uniform(-3, -0.3), 1 - 10 ** rng.uniform(-5, -1))
        eps = 10 ** rng.uniform(-9, -1)
        sigma = 10 ** rng.uniform(-1, 2)
        ell = float(rng.integers(1, 17))
        s = svag_adaptive(ell, lr=lr, betas=betas, eps=eps)
        before = sde_constants(lr=lr, sigma=sigma, betas=betas, eps=eps)
        after = sde_constants(sigma=sigma * math.sqrt(s.variance_factor), **s.hyper)
        for key in ("sigma0", "eps0", "c1", "c2"):
            assert after[key] == pytest.approx(before[key], rel=1e-9), (key, lr, betas, ell)
        # SDE time covered: ℓ² steps of lr'² equal one step of lr²
        assert s.step_factor * s.hyper["lr"] ** 2 == pytest.approx(lr**2, rel=1e-12)
        rms = svag_adaptive(ell, lr=lr, beta=betas[1], eps=eps)
        after = sde_constants(sigma=sigma * math.sqrt(rms.variance_factor), **rms.hyper)
        assert after["c2"] == pytest.approx(before["c2"], rel=1e-9)


def test_sgd_svag_keeps_lr_sigma_squared():
    rng = np.random.default_rng(3)
    for _ in range(200):
        lr, sigma, ell = 10 ** rng.uniform(-4, 0), 10 ** rng.uniform(-1, 2), int(rng.integers(1, 33))
        s = svag_sgd(ell, lr=lr)
        new_sigma2 = sigma**2 * s.variance_factor
        assert s.hyper["lr"] * new_sigma2 == pytest.approx(lr * sigma**2, rel=1e-12)
        assert s.step_factor * s.hyper["lr"] == pytest.approx(lr, rel=1e-12)


def test_rejects_bad_ell():
    with pytest.raises(ValueError, match="ell"):
        svag_sgd(0.5, lr=0.1)
    with pytest.raises(ValueError, match="ell"):
        svag_sgd(1.5, lr=0.1)                 # ℓ× steps must be whole
    with pytest.raises(ValueError, match="ell"):
        svag_adaptive(1.3, lr=0.1, beta=0.9)  # ℓ² = 1.69 steps
    svag_adaptive(math.sqrt(2), lr=0.1, beta=0.9)   # ℓ² = 2 is fine
    with pytest.raises(ValueError, match="optimizer"):
        svag_transform("lamb", 2, lr=0.1)
    with pytest.raises(TypeError):
        svag_transform("rmsprop", 2, lr=0.1, betas=(0.9, 0.9))


# ---- the SVAG oracle ------------------------------------------------------------------
from sde_engine.optimizers.svag import svag_problem  # noqa: E402
from sde_engine.problems import quadratic  # noqa: E402


@pytest.fixture(scope="module")
def skewed_quadratic():
    return quadratic([1.0, 2.0], theta_star=[0.5, -1.0], Sigma=[[1.0, 0.3], [0.3, 0.5]],
                     noise="skewed", noise_scale=0.7)


def test_oracle_ell_one_is_the_plain_oracle(skewed_quadratic):
    p = skewed_quadratic
    s = svag_adaptive(1, lr=0.1, beta=0.9)
    w = svag_problem(p, s.r1, s.r2)
    x = np.array([0.3, -0.2])
    np.testing.assert_array_equal(w.sample_gradients(x, 500, seed=3),
                                  p.sample_gradients(x, 500, seed=3))
    assert w.noise_scale == p.noise_scale
    assert w.loss_at(x) == p.loss_at(x)
    np.testing.assert_array_equal(w.noise_sqrt_at(x), p.noise_sqrt_at(x))


def test_oracle_moments(skewed_quadratic):
    """Mean ∇f, covariance A σ² Σ and third cumulant (r1³ + r2³) σ³ κ3 per coordinate.

    With ξ_j ~ Exp(1) − 1 i.i.d. (κ3 = 2) the third cumulant of coordinate i of
    σ S ξ is σ³ Σ_j S_ij³ κ3; mixing multiplies it by r1³ + r2³ = 1 + 3(A − 1)/2
    (skewness × (1 + 3(A−1)/2)/A^{3/2} ≈ 1.5/ℓ: SVAG damps skewness).
    Tolerances: 4 standard errors of each sample statistic.
    """
    p = skewed_quadratic
    s = svag_adaptive(2, lr=0.1, beta=0.9)
    w = svag_problem(p, s.r1, s.r2)
    a = s.variance_factor
    assert w.noise_scale == pytest.approx(0.7 * 2.0)
    x = np.array([0.3, -0.2])
    n = 200_000
    g = w.sample_gradients(x, n, seed=11)
    mean = g.mean(axis=0)
    dev = g - mean
    se_mean = g.std(axis=0, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(mean - p.grad_at(x)) < 4 * se_mean)
    cov_expected = a * 0.7**2 * p.Sigma
    prods = dev[:, :, None] * dev[:, None, :]
    cov = prods.mean(axis=0)
    se_cov = prods.std(axis=0, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(cov - cov_expected) < 4 * se_cov)
    third = (dev**3).mean(axis=0)
    se_third = (dev**3).std(axis=0, ddof=1) / math.sqrt(n)
    S = p.sqrt_Sigma
    expected = (s.r1**3 + s.r2**3) * 0.7**3 * 2.0 * (S**3).sum(axis=1)
    assert s.r1**3 + s.r2**3 == pytest.approx(1 + 1.5 * (a - 1))
    assert np.all(np.abs(third - expected) < 4 * se_third)


def test_oracle_noise_scale_round_trip(skewed_quadratic):
    s = svag_sgd(4, lr=0.1)
    w = svag_problem(skewed_quadratic, s.r1, s.r2)
    assert w.noise_scale == pytest.approx(0.7 * 2.0)
    w2 = w.with_noise_scale(1.0)
    assert w2.inner.noise_scale == pytest.approx(0.5)
    assert w.inner.noise_scale == pytest.approx(0.7)
    with pytest.raises(ValueError, match="r1"):
        svag_problem(skewed_quadratic, 0.6, 0.6)


# ---- SVAG runs -------------------------------------------------------------------------
from sde_engine.optimizers import adam, rmsprop, sgd  # noqa: E402
from sde_engine.optimizers.svag import run_svag  # noqa: E402
from sde_engine.runner import run_optimizer  # noqa: E402


def test_ell_one_keeps_every_beta_bitwise():
    for b in (0.3, 0.1, 0.7, 0.123456789):
        assert svag_adaptive(1, lr=0.1, beta=b).hyper["beta"] == b


# one compiled driver per (problem, optimizer) pair costs tens of seconds: Adam in the fast
# tier, the other optimizers in the slow one
@pytest.mark.parametrize("make", [
    lambda: adam(lr=0.2, betas=(0.3, 0.7), eps=0.05),
    pytest.param(lambda: rmsprop(lr=0.3, beta=0.6, eps=0.1), marks=pytest.mark.slow),
    pytest.param(lambda: sgd(lr=0.1), marks=pytest.mark.slow)])
def test_run_svag_ell_one_is_the_plain_run(skewed_quadratic, make):
    opt = make()
    kw = dict(theta0=[1.0, -0.5], n_steps=7, n_runs=40, seed=5, record_steps=[0, 3, 7])
    if opt.name != "sgd":
        kw["v0"] = 0.25
    plain = run_optimizer(skewed_quadratic, opt, **kw)
    svag = run_svag(skewed_quadratic, opt, 1, **kw)
    np.testing.assert_array_equal(svag.x, plain.x)
    np.testing.assert_array_equal(svag.t, plain.t)
    assert svag.info["svag"]["step_factor"] == 1


def test_run_svag_steps_and_times(skewed_quadratic):
    opt = adam(lr=0.4, betas=(0.84, 0.96), eps=0.25)
    sol = run_svag(skewed_quadratic, opt, 2, [1.0, -0.5], 5, 3, record_steps=[0, 2, 5], v0=1.0,
                   seed=1)
    np.testing.assert_array_equal(sol.info["steps"], [0, 8, 20])
    np.testing.assert_allclose(sol.t, np.array([0, 2, 5]) * 0.4**2, rtol=1e-14)
    hp = sol.info["hyperparameters"]
    assert hp["lr"] == pytest.approx(0.2) and hp["eps"] == pytest.approx(0.5)
    assert hp["betas"] == pytest.approx((0.96, 0.99))
    # u0 = v0/σ² is kept: v0 scaled by A = ℓ² = 4
    np.testing.assert_allclose(sol.x[0, :, 4:], 4.0)


def test_oracle_on_real_minibatches():
    """SVAG needs only gradient samples: on logistic regression with minibatches of B,
    the mixed oracle has mean ∇f and covariance A·Σ(θ)/B (Σ the exact per-example
    covariance), within 4 standard errors; ℓ = 1 is the plain oracle."""
    from sde_engine.problems import logistic_regression, synthetic_regression

    X, y, _ = synthetic_regression(60, 2, kind="logistic", seed=4)
    p = logistic_regression(X, y, batch_size=4)
    x = np.array([0.2, -0.4])
    s1 = svag_sgd(1, lr=0.1)
    np.testing.assert_array_equal(svag_problem(p, s1.r1, s1.r2).sample_gradients(x, 300, seed=2),
                                  p.sample_gradients(x, 300, seed=2))
    s = svag_sgd(3, lr=0.1)
    w = svag_problem(p, s.r1, s.r2)
    assert w.with_noise_scale(w.noise_scale / 2).inner.batch_size == 16
    n = 100_000
    g = w.sample_gradients(x, n, seed=9)
    mean = g.mean(axis=0)
    assert np.all(np.abs(mean - p.grad_at(x)) < 4 * g.std(axis=0, ddof=1) / math.sqrt(n))
    dev = g - mean
    prods = dev[:, :, None] * dev[:, None, :]
    expected = 3.0 * p.noise_cov(x) / 4
    assert np.all(np.abs(prods.mean(axis=0) - expected)
                  < 4 * prods.std(axis=0, ddof=1) / math.sqrt(n))


# ---- convergence to the SDE ----------------------------------------------------------
from sde_engine.studies.svag_convergence import (spec_rmsprop_example, steps_for,  # noqa: E402
                                                 svag_convergence)

ETA = 1 / math.sqrt(2)       # SPEC §4 example at η² = 0.5: T = 2 is 4 steps, β = 0.5


def _drops(result, key, a, b):
    """Error at ℓ index a exceeds error at index b by more than 4 combined standard errors."""
    e, s = np.abs(result[key]["error"]), result[key]["stderr"]
    return e[a] - e[b] > 4 * math.hypot(s[a], s[b])


def test_svag_error_decreases_with_ell():
    problem, opt, v0 = spec_rmsprop_example(ETA, noise="gaussian")
    res = svag_convergence(problem, opt, [1.0], steps_for(2.0, ETA), ells=(1, 4),
                           n_runs=50_000, v0=v0, seed=3)
    assert res["T"] == pytest.approx(2.0)
    assert _drops(res, "theta", 0, 1)
    assert _drops(res, "u", 0, 1)


@pytest.mark.slow
@pytest.mark.parametrize("noise", ["gaussian", "skewed"])
def test_svag_rate(noise):
    """ℓ ∈ {1, 2, 4, 8}: E u converges like ℓ^-2 (the CI of the order fitted on ℓ ≥ 2
    contains 2; ℓ = 1, i.e. β = 0.5, is pre-asymptotic) for both noises, and each doubling
    of ℓ lowers its error beyond Monte Carlo noise; E θ falls from ℓ = 1 to ℓ = 4."""
    problem, opt, v0 = spec_rmsprop_example(ETA, noise=noise)
    res = svag_convergence(problem, opt, [1.0], steps_for(2.0, ETA), ells=(1, 2, 4, 8),
                           n_runs=[200_000, 200_000, 400_000, 400_000], v0=v0, seed=4)
    fit = res["u"]["fit_tail"]
    assert fit["ci"][0] <= 2.0 <= fit["ci"][1], fit
    assert all(_drops(res, "u", i, i + 1) for i in range(3))
    assert _drops(res, "theta", 0, 2)
