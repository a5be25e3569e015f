"""SignSGD and its SDE (issue #16, item 2; Compagnoni et al. 2024):

    dX = −erf(∇f / (√2 σ s)) dt + √η diag(√(1 − erf²)) dW,   Σ = diag(s²).

The SDE by hand at a point; its drift and diffusion are the mean and variance
of sign(g) (checked on the problem's own oracle); and the discrete algorithm
agrees with it to weak order 1 in η (coupled estimator, slope interval).
"""
import math

import numpy as np
import pytest
from scipy import special

import sde_engine as se
from sde_engine.models import signsgd_sde
from sde_engine.optimizers import signsgd

CURVATURES = np.array([2.0, 1.0])
THETA_STAR = np.array([1.0, -1.0])
VARIANCES = np.array([1.0, 2.0])
THETA0 = np.array([0.3, 0.7])


@pytest.fixture(scope="module")
def problem():
    return se.quadratic(CURVATURES, THETA_STAR, VARIANCES, noise_scale=1.0)


def _coefficients(model, x):
    f, g = np.empty(2), np.empty((2, 2))
    model.sde.drift_jit(0.0, np.asarray(x, dtype=float), model.sde.params, f)
    model.sde.diffusion_jit(0.0, np.asarray(x, dtype=float), model.sde.params, g)
    return f, g


def test_sde_at_a_point_by_hand(problem):
    lr = 0.05
    model = signsgd_sde(problem, lr)
    grad = CURVATURES * (THETA0 - THETA_STAR)                # (−1.4, 1.7)
    e = special.erf(grad / (math.sqrt(2.0) * np.sqrt(VARIANCES)))
    f, g = _coefficients(model, THETA0)
    np.testing.assert_allclose(f, -e, rtol=1e-14)
    np.testing.assert_allclose(g, np.diag(math.sqrt(lr) * np.sqrt(1.0 - e**2)), rtol=1e-14)
    assert model.h == lr and model.sde.noise_dim == 2
    # no noise in a coordinate: the drift is −sign(∂f), the diffusion 0
    quiet = signsgd_sde(se.quadratic(CURVATURES, THETA_STAR, [0.0, 2.0]), lr)
    f, g = _coefficients(quiet, THETA0)
    assert f[0] == 1.0 and g[0, 0] == 0.0


def test_drift_and_diffusion_are_the_moments_of_the_sign_of_the_oracle(problem):
    n = 200_000
    signs = np.sign(problem.sample_gradients(THETA0, n, seed=4))
    model = signsgd_sde(problem, 1.0)                           # √η = 1: g is the sd of sign
    f, g = _coefficients(model, THETA0)
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
