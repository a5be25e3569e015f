"""The second-order SGD SDE of Li, Tai & E (issue #16, item 5):

    dX = −(∇f + (η/2) ∇²f ∇f)(X) dt + σ √η Σ^{1/2} dW.

Its drift against hand computation (a quadratic, and a non-quadratic with a
known Hessian), its paths against the same linear SDE written out, and its weak
order: on a quadratic with Gaussian noise the discrete SGD moments and the SDE
moments are both exact (a recursion and the moment ODEs), so the orders are
measured without Monte Carlo error — 1 for the first-order SDE, 2 for this one.
"""
import math

import numpy as np
import pytest

import sde_engine as se
from sde_engine.analysis import exact_moments
from sde_engine.models import sgd_sde
from sde_engine.problems import custom_problem, quadratic

H = np.array([[2.0, 0.5], [0.5, 1.0]])
SIGMA = np.array([[1.0, 0.6], [0.6, 2.0]])
THETA_STAR = np.array([1.0, -1.0])
THETA0 = np.array([0.3, 0.7])
NOISE_SCALE = 0.8


@pytest.fixture(scope="module")
def problem():
    return quadratic(H, THETA_STAR, SIGMA, noise_scale=NOISE_SCALE)


def _drift(model, x):
    out = np.empty(model.sde.dim)
    model.sde.drift_jit(0.0, np.ascontiguousarray(x, dtype=float), model.sde.params, out)
    return out


def test_drift_on_a_quadratic_is_minus_h_plus_half_lr_h_squared(problem):
    lr = 0.1
    model = sgd_sde(problem, lr, order=2)
    expected = -(H + 0.5 * lr * H @ H) @ (THETA0 - THETA_STAR)
    # a central difference of a linear gradient: exact up to rounding
    np.testing.assert_allclose(_drift(model, THETA0), expected, rtol=1e-9)
    np.testing.assert_array_equal(_drift(model, THETA_STAR), 0.0)   # ∇f = 0: no step
    assert model.constants == {"order": 2} and sgd_sde(problem, lr).constants == {"order": 1}


def _well_grad(x, p, out):            # f = Σ p0 (x_i² − 1)² / 4
    for i in range(x.shape[0]):
        out[i] = p[0] * x[i] * (x[i] * x[i] - 1.0)


def _well_loss(x, p):
    return 0.25 * p[0] * np.sum((x * x - 1.0) ** 2)


def _unit_noise(x, p, out):
    out[:, :] = 0.0
    for i in range(x.shape[0]):
        out[i, i] = 1.0


def test_drift_on_a_double_well_matches_its_hessian():
    p0, lr = 1.5, 0.2
    well = custom_problem("well", 3, [p0], loss=_well_loss, grad=_well_grad,
                          noise_sqrt=_unit_noise)
    x = np.array([0.4, -1.3, 2.0])
    grad = p0 * x * (x * x - 1.0)
    hessian_grad = p0 * (3.0 * x * x - 1.0) * grad        # ∇²f = diag p0 (3x² − 1)
    # the central difference's O(δ²) truncation and rounding: relative ~1e-10
    np.testing.assert_allclose(_drift(sgd_sde(well, lr, order=2), x),
                               -grad - 0.5 * lr * hessian_grad, rtol=1e-8)


def _linear_drift(t, x, p, out):
    # −A (x − θ*), A = H + (η/2) H² in p[0:4], θ* in p[4:6]
    for i in range(2):
        out[i] = -(p[2 * i] * (x[0] - p[4]) + p[2 * i + 1] * (x[1] - p[5]))


def _constant_diffusion(t, x, p, out):
    for i in range(2):
        for j in range(2):
            out[i, j] = p[6 + 2 * i + j]


def test_paths_equal_those_of_the_linear_sde_written_out(problem):
    lr = 0.2
    model = sgd_sde(problem, lr, order=2)
    first_order = sgd_sde(problem, lr)
    g = np.empty((2, 2))
    first_order.sde.diffusion_jit(0.0, THETA0, first_order.sde.params, g)
    written = se.SDE(_linear_drift, _constant_diffusion, dim=2, noise="general",
                     params=np.concatenate([(H + 0.5 * lr * H @ H).ravel(), THETA_STAR,
                                            g.ravel()]))
    kw = dict(x0=THETA0, t_span=(0.0, 1.0), dt=0.05, n_paths=64, seed=3, n_threads=1)
    np.testing.assert_allclose(se.simulate(model, **kw).x, se.simulate(written, **kw).x,
                               rtol=1e-8, atol=1e-10)


def _discrete_sgd_moments(lr, n_steps):
    """Exact E θ_k and Cov θ_k of SGD with g = H(θ − θ*) + σ S ξ (recursion)."""
    step = np.eye(2) - lr * H
    mean, cov = THETA0 - THETA_STAR, np.zeros((2, 2))
    for _ in range(n_steps):
        mean = step @ mean
        cov = step @ cov @ step.T + (lr * NOISE_SCALE) ** 2 * SIGMA
    return mean + THETA_STAR, cov


def _weak_errors(problem, order, lrs, horizon=1.0):
    """max |E φ(θ_k) − E φ(X_T)| over φ = θ_i and θ_i θ_j, at T = k η."""
    errors = []
    for lr in lrs:
        n_steps = round(horizon / lr)
        mean, cov = _discrete_sgd_moments(lr, n_steps)
        ref = exact_moments(sgd_sde(problem, lr, order=order), THETA0, [horizon])
        sde_mean, sde_cov = ref.theta_mean[0], ref.theta_cov[0]
        second = cov + np.outer(mean, mean) - (sde_cov + np.outer(sde_mean, sde_mean))
        errors.append(max(np.max(np.abs(mean - sde_mean)), np.max(np.abs(second))))
    return np.array(errors)


@pytest.mark.parametrize("order", [1, 2])
def test_weak_order_in_lr_is_the_order_of_the_sde(problem, order):
    lrs = np.array([0.1, 0.05, 0.025, 0.0125])
    errors = _weak_errors(problem, order, lrs)
    slopes = np.diff(np.log(errors)) / np.diff(np.log(lrs))
    # no Monte Carlo here: the moment ODEs are solved to rtol 1e-10 and the errors
    # are ≥ 1e-5, so the local slopes are the method's; they approach the order
    # from the pre-asymptotic side, the last within 0.1 of it
    assert abs(slopes[-1] - order) < 0.1, slopes
    assert np.all(np.abs(slopes - order) < 0.3), slopes


def test_order_is_one_or_two(problem):
    for bad in (0, 3, 1.5, True, "2"):
        with pytest.raises(ValueError, match="`order` must be 1 or 2"):
            sgd_sde(problem, 0.1, order=bad)


#: η, with T = 1; 2048 coupled paths each; m = 8 SDE sub-steps per step
COUPLED_LRS = np.array([0.2, 0.1, 0.05, 0.025])


@pytest.fixture(scope="module")
def coupled_errors(problem):
    """{order: (errors, stderrs)} of the coupled estimator, each (len(lrs), n_phi),
    against the extrapolated SDE (its own bias O(dt²) = O(η²/64))."""
    from sde_engine.optimizers import sgd

    out = {}
    for order in (1, 2):
        rows = [se.coupled_weak_error(problem, sgd(lr=lr), THETA0, round(1 / lr), 2048,
                                      substeps=8, seed=5, sde_order=order).error()
                for lr in COUPLED_LRS]
        out[order] = (np.array([r[0][-1] for r in rows]), np.array([r[1][-1] for r in rows]))
    return out


def _exact_phi(mean, cov):
    """E φ for the default observables (θ₁, ‖θ‖², f(θ), θ₁³) of a Gaussian θ."""
    dev = mean - THETA_STAR
    return np.array([mean[0], np.trace(cov) + mean @ mean,
                     0.5 * np.trace(H @ cov) + 0.5 * dev @ H @ dev,
                     mean[0] ** 3 + 3.0 * mean[0] * cov[0, 0]])


def _exact_weak_errors(problem, order, lrs):
    """E φ(θ_k) − E φ(X_T) exactly (SGD with Gaussian noise keeps θ Gaussian)."""
    rows = []
    for lr in lrs:
        mean, cov = _discrete_sgd_moments(lr, round(1 / lr))
        ref = exact_moments(sgd_sde(problem, lr, order=order), THETA0, [1.0])
        rows.append(_exact_phi(mean, cov) - _exact_phi(ref.theta_mean[0], ref.theta_cov[0]))
    return np.array(rows)


def test_coupled_estimator_measures_order_two_for_the_second_order_sde(problem, coupled_errors):
    from sde_engine.analysis import fit_order

    for order, (errors, stderrs) in coupled_errors.items():
        exact = _exact_weak_errors(problem, order, COUPLED_LRS)
        # each estimate within 4 standard errors of the exact weak error (the
        # extrapolated SDE's own O(dt²) bias was below the noise: at most 1.9 stderr)
        assert np.all(np.abs(errors - exact) < 4 * stderrs), (order, (errors - exact) / stderrs)
        for q in (1, 2, 3):                 # ‖θ‖², f(θ), θ₁³
            fit = fit_order(COUPLED_LRS, errors[:, q], stderrs[:, q])
            exact_slope = fit_order(COUPLED_LRS, exact[:, q]).order
            # the interval holds the exact errors' own slope on this grid, which
            # approaches the order from above (2.06 → 2.01 for the second-order SDE)
            assert fit.ci[0] <= exact_slope <= fit.ci[1], (order, q, fit, exact_slope)
            if order == 2:
                assert abs(exact_slope - 2.0) < 0.1, (q, exact_slope)
    # E θ₁: order 1 against the first-order SDE, its interval well below 2
    fit = fit_order(COUPLED_LRS, coupled_errors[1][0][:, 0], coupled_errors[1][1][:, 0])
    assert fit.ci[0] <= 1.0 <= fit.ci[1] and fit.ci[1] < 1.5, fit
    # and at every rate the second-order SDE is the closer one on E‖θ‖²
    e1, e2 = (np.abs(coupled_errors[o][0][:, 1]) for o in (1, 2))
    assert np.all(e2 < e1), (e1, e2)


def test_sde_order_two_is_for_sgd_only(problem):
    from sde_engine.optimizers import rmsprop, sgd

    with pytest.raises(ValueError, match="`sde_order` must be 1, or 2 for SGD; got 2 for rmsprop"):
        se.coupled_weak_error(problem, rmsprop(lr=0.1), THETA0, 4, 16, sde_order=2)
    with pytest.raises(ValueError, match="`sde_order` must be 1, or 2 for SGD; got 3"):
        se.coupled_weak_error(problem, sgd(lr=0.1), THETA0, 4, 16, sde_order=3)


def test_the_study_record_and_its_figure(problem):
    from sde_engine import plotting
    from sde_engine.optimizers import sgd
    from sde_engine.studies.coupled_orders import sgd_sde_orders

    record = sgd_sde_orders(problem, THETA0, [0.2, 0.1], n_paths=256, seed=1)
    assert record["labels"] == ["theta1", "theta_sq", "loss", "theta1_cubed"]
    first, second = record["series"]
    assert (first, second) == ("first-order SDE", "second-order SDE (Li, Tai & E)")
    assert np.array(record["series"][second]["error"]).shape == (2, 4)
    # the same paths as coupled_weak_error itself
    direct = se.coupled_weak_error(problem, sgd(lr=0.1), THETA0, 10, 256, substeps=8, seed=1,
                                   sde_order=2).error()[0][-1]
    np.testing.assert_array_equal(record["series"][second]["error"][1], direct)
    fig = plotting.plot_coupled_weak_errors(record)
    assert len(fig.axes) == 4
    with pytest.raises(ValueError, match="whole number of steps"):
        sgd_sde_orders(problem, THETA0, [0.3], n_paths=16)
