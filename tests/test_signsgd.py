"""SignSGD and its SDE (issue #16, item 2; Compagnoni et al. 2024):

    dX = −erf(∇f / (√2 σ s)) dt + √η diag(√(1 − erf²)) dW,   Σ = diag(s²).

The SDE by hand at a point; its drift and diffusion are the mean and variance
of sign(g) (checked on the problem's own oracle); and the discrete algorithm
agrees with it to weak order 1 in η (coupled estimator, slope interval). The
three phases of the paper: the drift against its asymptotes, the phase-1 rate
of the loss and the phase-3 floor (:mod:`sde_engine.studies.sign_phases`).
"""
import math

import numpy as np
import pytest
from scipy import special

import sde_engine as se
from conftest import model_coefficients
from sde_engine.models import signsgd_sde
from sde_engine.optimizers import signsgd

CURVATURES = np.array([2.0, 1.0])
THETA_STAR = np.array([1.0, -1.0])
VARIANCES = np.array([1.0, 2.0])
THETA0 = np.array([0.3, 0.7])


@pytest.fixture(scope="module")
def problem():
    return se.quadratic(CURVATURES, THETA_STAR, VARIANCES, noise_scale=1.0)


def test_sde_at_a_point_by_hand(problem):
    lr = 0.05
    model = signsgd_sde(problem, lr)
    grad = CURVATURES * (THETA0 - THETA_STAR)                # (−1.4, 1.7)
    e = special.erf(grad / (math.sqrt(2.0) * np.sqrt(VARIANCES)))
    f, g = model_coefficients(model, THETA0)
    np.testing.assert_allclose(f, -e, rtol=1e-14)
    np.testing.assert_allclose(g, np.diag(math.sqrt(lr) * np.sqrt(1.0 - e**2)), rtol=1e-14)
    assert model.h == lr and model.sde.noise_dim == 2
    # no noise in a coordinate: the drift is −sign(∂f), the diffusion 0
    quiet = signsgd_sde(se.quadratic(CURVATURES, THETA_STAR, [0.0, 2.0]), lr)
    f, g = model_coefficients(quiet, THETA0)
    assert f[0] == 1.0 and g[0, 0] == 0.0


def test_drift_and_diffusion_are_the_moments_of_the_sign_of_the_oracle(problem):
    n = 200_000
    signs = np.sign(problem.sample_gradients(THETA0, n, seed=4))
    model = signsgd_sde(problem, 1.0)                           # √η = 1: g is the sd of sign
    f, g = model_coefficients(model, THETA0)
    mean, var = signs.mean(axis=0), signs.var(axis=0)
    # standard errors of a mean of ±1 variables and of their variance (1 − mean²)
    assert np.all(np.abs(mean + f) < 4 * np.sqrt(var / n)), (mean, -f)
    assert np.all(np.abs(var - np.diag(g) ** 2) < 4 * 2 * np.abs(mean) * np.sqrt(var / n))
    # coordinates independent (Σ diagonal): their correlation within 4/√n of 0
    assert abs(np.corrcoef(signs.T)[0, 1]) < 4 / math.sqrt(n)


def test_weak_order_one_by_the_coupled_estimator(problem):
    from sde_engine.analysis import fit_order

    lrs = np.array([0.2, 0.1, 0.05, 0.025])
    rows = [se.coupled_weak_error(problem, signsgd(lr=lr), THETA0, round(1 / lr), 8192,
                                  substeps=8, seed=1).error() for lr in lrs]
    errors = np.array([r[0][-1][0] for r in rows])             # E θ₁
    stderrs = np.array([r[1][-1][0] for r in rows])
    fit = fit_order(lrs, errors, stderrs)
    # measured: 1.01 [0.89, 1.13] with one more η (0.0125) in the exploration
    assert fit.ci[0] <= 1.0 <= fit.ci[1] and fit.ci[1] < 1.5, fit
    assert not fit.below_noise.any()


def test_the_sde_needs_gaussian_diagonal_noise():
    with pytest.raises(ValueError, match="Gaussian noise with diagonal"):
        signsgd_sde(se.quadratic([[2.0, 0.5], [0.5, 1.0]], Sigma=[[1.0, 0.3], [0.3, 1.0]]), 0.1)
    with pytest.raises(ValueError, match="Gaussian noise with diagonal"):
        signsgd_sde(se.quadratic([1.0], Sigma=[1.0], noise="rademacher"), 0.1)


def test_the_study_record_matches_the_coupled_estimator(problem):
    from sde_engine.studies.coupled_orders import signsgd_sde_order

    record = signsgd_sde_order(problem, THETA0, [0.2, 0.1], n_paths=256, seed=2)
    (series,) = record["series"].values()
    direct = se.coupled_weak_error(problem, signsgd(lr=0.1), THETA0, 10, 256, substeps=8,
                                   seed=2).error()[0][-1]
    np.testing.assert_array_equal(series["error"][1], direct)


# ---- the three phases (Compagnoni et al.; sde_engine.studies.sign_phases) ----------------
def test_the_drift_follows_its_phase_asymptotes():
    """On f = θ²/2 with σ = s = 1 the ratio is r = θ and Y = θ/√2: the SDE's drift is
    −sign within 1 − erf(3/2) = 0.034 in phase 1, the secant within 0.019 in phase 2,
    −√(2/π) r within (2/(3√π)) Y³ in phase 3 (erf's alternating series)."""
    from sde_engine.studies.sign_phases import SECANT, phase_of

    model = signsgd_sde(se.quadratic([1.0], [0.0], [1.0]), 0.01)

    def drift(theta):
        out = np.empty(1)
        model.sde.drift_jit(0.0, np.array([theta]), model.sde.params, out)
        return out[0]

    for theta in (2.2, 3.0, 5.0, 10.0):                       # phase 1: Y > 3/2
        assert phase_of(theta) == 1 and 0.0 <= 1.0 + drift(theta) <= 1 - math.erf(1.5)
    assert drift(10.0) == -1.0 and drift(-10.0) == 1.0        # erf(7.07) = 1 in floating point
    for theta in (1.5, 1.8, 2.1):                             # phase 2: 1 < Y < 3/2
        y = theta / math.sqrt(2.0)
        assert phase_of(theta) == 2 and abs(-drift(theta) - (SECANT[0] * y + SECANT[1])) < 0.019
    for theta in (1.0, 0.1, 1e-3):                            # phase 3: Y < 1
        y = theta / math.sqrt(2.0)
        assert phase_of(theta) == 3
        assert abs(drift(theta) + math.sqrt(2 / math.pi) * theta) <= 2 / (3 * math.pi**0.5) * y**3
    assert drift(1e-3) == pytest.approx(-math.sqrt(2 / math.pi) * 1e-3, rel=2e-7)


def test_phase_one_loss_falls_at_the_sign_descent_rate_and_phase_three_reaches_its_floor():
    """SignSGD on f = θ²/2 (σ = 1) from θ0 = 6, η = 0.02. Phase 1 (t < 3.89): the paper's
    sign-descent ODE, θ(t) = θ0 − t, so √(2f) falls at rate 1 (√f at √(λ/2)):
    θ0 − t ≤ √(2 E f) ≤ θ0 − t + (1 − erf(Y_t)) t, Y_t = (θ0 − t)/√2 (speed between
    erf(Y_t) and 1), to 4 standard errors. Phase 3: the stationary floor
    f∞ = √π η σ/(4√2) = 0.00627 of the linearised SDE, at T = 10."""
    from sde_engine.studies.sign_phases import column, phase_predictions

    lr, theta0 = 0.02, 6.0
    steps = np.array([25, 50, 75, 100, 125, 150, 175, 500])
    problem = se.quadratic([1.0], [0.0], [1.0], noise_scale=1.0)
    result = se.coupled_weak_error(problem, signsgd(lr=lr), [theta0], 500, 4096, substeps=2,
                                   seed=5, record_steps=steps)
    mean, stderr = column(result, "discrete")
    loss, loss_se = mean[:, 2], stderr[:, 2]
    predicted = phase_predictions(theta0, 1.0, 1.0, lr)
    t = steps * lr
    phase1 = t < predicted["boundary_t"][0]
    assert phase1.sum() == 7 and predicted["boundary_t"][0] == pytest.approx(3.891, abs=1e-3)
    root, root_se = np.sqrt(2 * loss[phase1]), loss_se[phase1] / np.sqrt(2 * loss[phase1])
    tp = t[phase1]
    deficit = (1 - special.erf((theta0 - tp) / 2**0.5)) * tp
    assert np.all(root >= theta0 - tp - 4 * root_se), root - (theta0 - tp)
    assert np.all(root <= theta0 - tp + deficit + 4 * root_se), (root - (theta0 - tp), deficit)
    slope = np.polyfit(tp, root, 1)[0]                        # measured −0.9991
    assert -1.0 <= slope <= -math.erf(1.5)
    # phase 3: measured 0.00665 ± 0.00015 (its SDE: 0.00642)
    floor = predicted["floor"]
    assert floor == pytest.approx(math.sqrt(math.pi) * lr / (4 * math.sqrt(2)), rel=1e-12)
    assert abs(loss[-1] - floor) < 4 * loss_se[-1] + 0.1 * floor, (loss[-1], floor)
