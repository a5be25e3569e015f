"""Signum (signSGD with momentum) and the Signum SDE derived in sde_engine.models.sign:

    dX = −erf(κ∇f/(√2σs)) dt + √η diag(√V(κr)) dW,   κ = √((1 + β)/(1 − β)),

V the long-run variance of the correlated signs. The coefficients by hand (V
from Owen's T function, independently of the module's quadrature); V against
the signs of the momentum on the problem's own oracle at a frozen θ (and
1 − erf², the one-step variance, rejected); the discrete algorithm against the
SDE at weak order 1 in η (coupled estimator, slope interval) with the variance
of θ agreeing to leading order.
"""
import math

import numpy as np
import pytest
from scipy import special

import sde_engine as se
from conftest import model_coefficients
from sde_engine.models import signsgd_sde, signum_sde
from sde_engine.models.sign import sign_long_run_variance
from sde_engine.optimizers import signsgd, signum
from sde_engine.studies.sign_phases import column

CURVATURES = np.array([2.0, 1.0])
THETA_STAR = np.array([1.0, -1.0])
VARIANCES = np.array([1.0, 2.0])
THETA0 = np.array([0.3, 0.7])
NEAR = np.array([0.8, -0.7])          # gradient-to-noise ratios r = (−0.4, 0.21): V of order 1


@pytest.fixture(scope="module")
def problem():
    return se.quadratic(CURVATURES, THETA_STAR, VARIANCES, noise_scale=1.0)


def _lrv_by_owens_t(a, beta, n_lags=200):
    """Σ_ℓ Cov(sign m_0, sign m_ℓ) for m ~ AR(1) N(a, 1), corr β^|ℓ|:
    Cov = 4(P(both > 0) − Φ(a)²), P(both > 0) = Φ(a) − 2 T(a, √((1 − ρ)/(1 + ρ)))."""
    phi = special.ndtr(a)
    rho = beta ** np.arange(1, n_lags + 1)
    both = phi - 2.0 * special.owens_t(a, np.sqrt((1.0 - rho) / (1.0 + rho)))
    return 1.0 - special.erf(a / math.sqrt(2.0)) ** 2 + 2.0 * np.sum(4.0 * (both - phi * phi))


@pytest.mark.parametrize("beta", [0.5, 0.9])
def test_sde_at_a_point_by_hand(problem, beta):
    lr = 0.05
    model = signum_sde(problem, lr, beta)
    kappa = math.sqrt((1 + beta) / (1 - beta))
    ratio = CURVATURES * (NEAR - THETA_STAR) / np.sqrt(VARIANCES)
    f, g = model_coefficients(model, NEAR)
    np.testing.assert_allclose(f, -special.erf(kappa * ratio / math.sqrt(2.0)), rtol=1e-14)
    lrv = [_lrv_by_owens_t(kappa * abs(r), beta) for r in ratio]
    np.testing.assert_allclose(np.diag(g) ** 2 / lr, lrv, rtol=1e-6)
    assert g[0, 1] == g[1, 0] == 0.0 and model.h == lr and model.sde.noise_dim == 2
    # at the minimum: V(0) = (2/π) Σ_ℓ arcsin β^|ℓ| (Sheppard), 2.307 at β = 0.5, 13.28 at 0.9
    f, g = model_coefficients(model, THETA_STAR)
    rho = beta ** np.arange(1, 400)
    v0 = (2 / math.pi) * (math.pi / 2 + 2 * np.arcsin(rho).sum())
    assert f[0] == f[1] == 0.0
    np.testing.assert_allclose(np.diag(g) ** 2 / lr, [v0, v0], rtol=1e-9)
    assert model.constants["kappa"] == pytest.approx(kappa, rel=1e-15)


def test_no_momentum_is_the_signsgd_sde_and_no_noise_is_sign_descent(problem):
    x = np.array([0.9, -0.4])
    f0, g0 = model_coefficients(signsgd_sde(problem, 0.1), x)
    f1, g1 = model_coefficients(signum_sde(problem, 0.1, 0.0), x)
    np.testing.assert_allclose(f1, f0, rtol=1e-15)
    np.testing.assert_allclose(g1, g0, rtol=1e-7)      # V from the interpolation table
    quiet = signum_sde(se.quadratic(CURVATURES, THETA_STAR, [0.0, 2.0]), 0.1, 0.9)
    f, g = model_coefficients(quiet, THETA0)
    assert f[0] == 1.0 and g[0, 0] == 0.0


def test_no_momentum_runs_signsgd_bit_for_bit():
    rng = np.random.default_rng(0)
    a, b = signsgd(lr=0.1), signum(lr=0.1, momentum=0.0)
    x, y = a.init(THETA0), b.init(THETA0)
    for k in range(1, 20):
        g = rng.normal(size=2)
        x, y = a.step(k, g, x), b.step(k, g, y)
        np.testing.assert_array_equal(y[:2], x)


def test_long_run_variance_of_the_signs_on_the_oracle(problem):
    """Frozen θ: the momentum of the problem's own gradient samples, then the
    variance of Σ_k sign(m_k) over K steps, divided by K, against V (not 1 − erf²)."""
    beta, n_chains, n_steps, burn = 0.8, 4000, 400, 60
    m = np.zeros((n_chains, 2))
    total = np.zeros((n_chains, 2))
    for k in range(burn + n_steps):
        g = problem.sample_gradients(NEAR, n_chains, seed=100 + k)
        m = beta * m + (1 - beta) * g
        if k >= burn:
            total += np.sign(m)
    kappa = math.sqrt((1 + beta) / (1 - beta))
    ratio = CURVATURES * (NEAR - THETA_STAR) / np.sqrt(VARIANCES)
    mean = special.erf(kappa * ratio / math.sqrt(2.0))
    measured = ((total - n_steps * mean) ** 2).mean(axis=0) / n_steps
    predicted = sign_long_run_variance(ratio, beta)
    # the variance of a mean of n_chains squares of ~Gaussian sums: relative stderr √(2/n)
    stderr = predicted * math.sqrt(2 / n_chains)
    # a window of K steps sees Σ_ℓ (1 − |ℓ|/K) Cov_ℓ: bias −Σ_ℓ |ℓ| Cov_ℓ / K, ≈ −0.06 here
    # (measured 2.05, 4.44 against V = 2.07, 4.63; 1 − erf² = 0.41, 0.77)
    assert np.all(np.abs(measured - predicted) < 4 * stderr + 0.02 * predicted), \
        (measured, predicted)
    one_step = 1 - mean**2
    assert np.all(measured > one_step + 10 * stderr), (measured, one_step)
    # the mean sign is the stationary erf(κr/√2) (one normal draw per chain and step)
    np.testing.assert_allclose(total.mean(axis=0) / n_steps, mean,
                               atol=4 * math.sqrt(predicted.max() / (n_chains * n_steps)))


def test_weak_order_one_and_the_variance_by_the_coupled_estimator(problem):
    from sde_engine.analysis import fit_order

    beta = 0.5
    lrs = np.array([0.2, 0.1, 0.05, 0.025])
    rows = [se.coupled_weak_error(problem, signum(lr=lr, momentum=beta), THETA0, round(1 / lr),
                               16_384, substeps=4, seed=1) for lr in lrs]
    errors = np.array([r.error()[0][-1] for r in rows])
    stderrs = np.array([r.error()[1][-1] for r in rows])
    fit = fit_order(lrs, errors[:, 0], stderrs[:, 0])             # E θ₁
    # measured: 1.02 [0.85, 1.19] (errors 0.129, 0.069, 0.033, 0.015)
    assert fit.ci[0] <= 1.0 <= fit.ci[1] and fit.ci[1] < 1.5, fit
    assert not fit.below_noise.any()
    # Var θ₁ of the discrete runs and of the SDE: equal to leading order in η (the SDE's
    # diffusion V is 1.3 to 2.3 times the one-step variance 1 − erf² along these paths);
    # measured relative gaps 0.12, 0.15, 0.12, 0.055
    n = rows[0].counts[-1]
    gaps = []
    for r, lr in zip(rows, lrs):
        var_disc = r.m2[-1, 3, 0] / (n - 1)
        var_sde = r.m2[-1, 5, 0] / (n - 1)
        gaps.append(var_disc / var_sde - 1.0)
        # two sample variances, relative stderr √(2/n) each
        assert abs(gaps[-1]) < 8 * math.sqrt(2 / n) + 1.5 * lr, (lr, var_disc, var_sde)
    assert gaps[-1] < 0.1


def test_refusals(problem):
    with pytest.raises(ValueError, match="Gaussian noise with diagonal"):
        signum_sde(se.quadratic([[2.0, 0.5], [0.5, 1.0]], Sigma=[[1.0, 0.3], [0.3, 1.0]]),
                   0.1, 0.9)
    with pytest.raises(ValueError, match="momentum"):
        signum(lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match="momentum"):
        signum_sde(problem, 0.1, -0.1)
    model = signum_sde(problem, 0.1, 0.9)
    np.testing.assert_array_equal(model.initial_state(THETA0), THETA0)
    with pytest.raises(ValueError, match="`m0` must be 0"):
        model.initial_state(THETA0, m0=[0.1, 0.0])
    with pytest.raises(ValueError, match="no u block"):
        model.u(THETA0)


def test_the_phases_study_reads_the_coupled_columns(problem):
    r = se.coupled_weak_error(problem, signum(lr=0.1, momentum=0.5), THETA0, 10, 64, seed=2,
                           record_steps=[5, 10])
    mean, stderr = column(r, "discrete")
    assert mean.shape == stderr.shape == (2, 4) and np.all(stderr > 0)
    np.testing.assert_allclose(mean - column(r, "sde_extrapolated")[0], r.error()[0],
                               rtol=1e-12, atol=1e-15)
