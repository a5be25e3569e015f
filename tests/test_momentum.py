"""SGD with heavy-ball momentum and its SDE (issue #16, item 1).

The SDE in the momentum timescale (μ = 1 − γ√η, v = √η b, t = k√η):
dθ = −v dt, dv = (∇f − γ v) dt + η^{1/4} σ Σ^{1/2} dW. Checked by hand at a
point, and for its weak order: SGD with momentum on a quadratic with Gaussian
noise is a linear-Gaussian recursion, so its moments are exact, as are the
SDE's (moment ODEs): the weak order in h = √η is measured without Monte Carlo
error. The runner and the coupled estimator are then checked against those
exact values within their standard errors.
"""
import math

import numpy as np
import pytest

import sde_engine as se
from sde_engine.analysis import exact_moments
from sde_engine.models import sgd_momentum_sde
from sde_engine.optimizers import make_optimizer, sgd_momentum
from sde_engine.problems import quadratic

H = np.array([[2.0, 0.5], [0.5, 1.0]])
SIGMA = np.array([[1.0, 0.6], [0.6, 2.0]])
THETA_STAR = np.array([1.0, -1.0])
THETA0 = np.array([0.3, 0.7])
NOISE_SCALE, GAMMA = 0.8, 2.0


@pytest.fixture(scope="module")
def problem():
    return quadratic(H, THETA_STAR, SIGMA, noise_scale=NOISE_SCALE)


def _sqrt_sigma():
    lam, vec = np.linalg.eigh(SIGMA)
    return vec @ np.diag(np.sqrt(lam)) @ vec.T


def _rates(h):
    """(η, μ) of SDE step h = √η at friction GAMMA."""
    return h * h, 1.0 - GAMMA * h


def test_sde_at_a_point_by_hand(problem):
    lr, mu = 0.04, 0.6                                    # γ = 0.4 / 0.2 = 2
    model = sgd_momentum_sde(problem, lr, mu)
    x = np.array([0.3, 0.7, -0.2, 0.5])                   # (θ, v)
    f, g = np.empty(4), np.empty((4, 2))
    model.sde.drift_jit(0.0, x, model.sde.params, f)
    model.sde.diffusion_jit(0.0, x, model.sde.params, g)
    np.testing.assert_allclose(f[:2], -x[2:], rtol=1e-15)
    np.testing.assert_allclose(f[2:], H @ (x[:2] - THETA_STAR) - 2.0 * x[2:], rtol=1e-14)
    np.testing.assert_array_equal(g[:2], 0.0)
    np.testing.assert_allclose(g[2:], lr**0.25 * NOISE_SCALE * _sqrt_sigma(), rtol=1e-12)
    assert (model.sde.dim, model.sde.noise_dim) == (4, 2)
    assert model.h == pytest.approx(0.2) and model.constants["gamma"] == pytest.approx(2.0)
    np.testing.assert_array_equal(model.initial_state(THETA0), [0.3, 0.7, 0.0, 0.0])


def test_an_euler_step_of_the_sde_is_the_algorithm_up_to_the_theta_update(problem):
    """v after one step equals √η b; θ differs by √η (v_k − v_{k−1}) = O(h²)."""
    lr, mu = 0.01, 0.8
    opt, model = sgd_momentum(lr=lr, momentum=mu), sgd_momentum_sde(problem, lr, mu)
    state = np.array([0.3, 0.7, 0.4, -0.1])               # (θ, b)
    x = np.concatenate([state[:2], math.sqrt(lr) * state[2:]])
    xi = np.array([0.5, -1.2])
    g = H @ (state[:2] - THETA_STAR) + NOISE_SCALE * _sqrt_sigma() @ xi
    new = opt.step(1, g, state)
    f, gg = np.empty(4), np.empty((4, 2))
    model.sde.drift_jit(0.0, x, model.sde.params, f)
    model.sde.diffusion_jit(0.0, x, model.sde.params, gg)
    h = model.h
    em = x + f * h + gg @ (math.sqrt(h) * xi)
    np.testing.assert_allclose(em[2:], math.sqrt(lr) * new[2:], rtol=1e-12)
    np.testing.assert_allclose(em[:2] - h * (em[2:] - x[2:]), new[:2], rtol=1e-12)


def _discrete_moments(lr, mu, n_steps):
    """Exact mean and covariance of (θ_k, b_k) (a linear-Gaussian recursion)."""
    A = np.block([[np.eye(2) - lr * H, -lr * mu * np.eye(2)], [H, mu * np.eye(2)]])
    c = np.concatenate([lr * H @ THETA_STAR, -H @ THETA_STAR])
    B = np.vstack([-lr * NOISE_SCALE * _sqrt_sigma(), NOISE_SCALE * _sqrt_sigma()])
    mean, cov = np.concatenate([THETA0, np.zeros(2)]), np.zeros((4, 4))
    for _ in range(n_steps):
        mean, cov = A @ mean + c, A @ cov @ A.T + B @ B.T
    return mean[:2], cov[:2, :2]


def _phi(mean, cov):
    """E θ₁ and E ‖θ‖² of a Gaussian θ."""
    return np.array([mean[0], np.trace(cov) + mean @ mean])


def _exact_errors(problem, hs, horizon=1.0):
    rows = []
    for h in hs:
        lr, mu = _rates(h)
        mean, cov = _discrete_moments(lr, mu, round(horizon / h))
        model = sgd_momentum_sde(problem, lr, mu)
        ref = exact_moments(model, model.initial_state(THETA0), [horizon])
        rows.append(_phi(mean, cov) - _phi(ref.theta_mean[0], ref.theta_cov[0]))
    return np.array(rows)


def test_weak_order_one_in_the_sde_step(problem):
    hs = np.array([0.2, 0.1, 0.05, 0.025, 0.0125])
    errors = _exact_errors(problem, hs)
    slopes = np.diff(np.log(np.abs(errors)), axis=0) / np.diff(np.log(hs))[:, None]
    # exact, no Monte Carlo: E θ₁'s local slopes 1.04, 1.02, 1.01, 1.005; E‖θ‖²'s
    # approach 1 from below (0.68, 0.87, 0.94 after a sign change at large h)
    assert np.all(np.abs(slopes[:, 0] - 1.0) < 0.05), slopes
    assert abs(slopes[-1, 1] - 1.0) < 0.1, slopes


def test_runner_means_match_the_exact_discrete_moments(problem):
    lr, mu = _rates(0.1)
    runs = se.run_optimizer(problem, sgd_momentum(lr=lr, momentum=mu), THETA0, 10, 20_000,
                            seed=2, observables=["theta"], n_threads=1)
    mean, _ = _discrete_moments(lr, mu, 10)
    assert np.all(np.abs(runs.mean[-1] - mean) < 4 * runs.stderr[-1]), (runs.mean[-1], mean)
    assert runs.t[-1] == pytest.approx(1.0)                # 10 steps of h = √η = 0.1


def test_coupled_estimates_match_the_exact_weak_errors(problem):
    hs = np.array([0.2, 0.1, 0.05])
    exact = _exact_errors(problem, hs)
    for h, row in zip(hs, exact):
        lr, mu = _rates(h)
        r = se.coupled_weak_error(problem, sgd_momentum(lr=lr, momentum=mu), THETA0,
                                  round(1 / h), 4096, substeps=8, seed=3)
        err, se_ = (a[-1][:2] for a in r.error())          # θ₁, ‖θ‖²
        assert np.all(np.abs(err - row) < 4 * se_), (h, err, row, se_)


def test_hyperparameters_are_checked():
    assert make_optimizer("sgd_momentum", lr=0.1, momentum=0.5).hyper.tolist() == [0.1, 0.5]
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="`momentum`"):
            sgd_momentum(lr=0.1, momentum=bad)


def test_the_study_record_matches_the_coupled_estimator(problem):
    from sde_engine.studies.coupled_orders import momentum_sde_order

    record = momentum_sde_order(problem, THETA0, [0.2, 0.1], gamma=GAMMA, n_paths=256, seed=1)
    (name, series), = record["series"].items()
    lr, mu = _rates(0.1)
    direct = se.coupled_weak_error(problem, sgd_momentum(lr=lr, momentum=mu), THETA0, 10, 256,
                                   substeps=8, seed=1).error()[0][-1]
    np.testing.assert_array_equal(series["error"][1], direct)
    assert record["x_label"] == "SDE step h = √η"
    with pytest.raises(ValueError, match="gamma·h < 1"):
        momentum_sde_order(problem, THETA0, [0.2], gamma=5.0, n_paths=16)


def test_the_momentum_rule_keeps_the_sde_where_the_linear_rule_does_not(problem):
    from sde_engine.models import momentum_rule
    from sde_engine.studies.exact_scaling import momentum_scaling_sweep

    assert momentum_rule(4.0, lr=1e-4, momentum=0.98) == {
        "lr": pytest.approx(16e-4), "momentum": pytest.approx(0.92)}
    with pytest.raises(ValueError, match="κ\\(1 − μ\\) < 1"):
        momentum_rule(100.0, lr=1e-4, momentum=0.98)
    record = momentum_scaling_sweep(problem, THETA0, 1e-4, 0.98, [1, 2, 4, 8, 16], horizon=1.6)
    sde_mean = record["sde"]["theta_mean"][0]
    rule = np.array(record["rule"]["theta_mean"])[:, 0]
    linear = np.array(record["linear"]["theta_mean"])[:, 0]
    # exact numbers: with the rule the error is the SDE approximation's own at step κh,
    # first order, so it doubles with κ (0.0018 … 0.028, under 5% at κh = 0.16); the
    # linear rule with μ kept changes the friction γ and moves E θ₁ by 40%
    errors = rule - sde_mean
    assert np.all(np.abs(errors) < 0.05 * abs(sde_mean)), (rule, sde_mean)
    assert np.all(np.abs(errors[1:] / errors[:-1] - 2.0) < 0.2), errors
    assert abs(linear[-1] - sde_mean) > 0.3 * abs(sde_mean), (linear, sde_mean)
    # the discrete side agrees with the test's own recursion at κ = 1
    mean, _ = _discrete_moments(1e-4, 0.98, 160)
    np.testing.assert_allclose(record["rule"]["theta_mean"][0], mean, rtol=1e-12)
