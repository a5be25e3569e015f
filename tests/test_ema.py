"""Model EMA of the iterates and its scaling rule (issue #16, item 4).

``with_ema(optimizer, ρ)`` adds z_k = ρ z_{k−1} + (1 − ρ) θ_k to any optimizer;
``ema_sde`` appends dZ = γ(θ − Z) dt, γ = (1 − ρ)/h, to its SDE; the rule
ρ → ρ^κ (Busbridge et al. 2023) goes with the optimizer's own. Checked by hand,
against exact moments (SGD on a quadratic is a linear recursion; the SDE is
linear-Gaussian), through the runner, and by a κ sweep.
"""
import numpy as np
import pytest

import sde_engine as se
from sde_engine.analysis import exact_moments, sgd_iterate_moments
from sde_engine.models import adam_sde, ema_rule, ema_sde, sgd_sde
from sde_engine.optimizers import adam, sgd, with_ema

H = np.array([[2.0, 0.5], [0.5, 1.0]])
SIGMA = np.array([[1.0, 0.6], [0.6, 2.0]])
THETA_STAR = np.array([1.0, -1.0])
THETA0 = np.array([0.3, 0.7])


@pytest.fixture(scope="module")
def problem():
    return se.quadratic(H, THETA_STAR, SIGMA, noise_scale=3.0)


def test_two_steps_by_hand_on_adam_with_bias_correction():
    base = adam(lr=0.1, betas=(0.8, 0.95), eps=1e-2)
    opt = with_ema(base, 0.9)
    g1, g2 = np.array([0.5, -1.0]), np.array([-0.25, 2.0])
    s0 = opt.init(THETA0)
    np.testing.assert_array_equal(s0[-2:], THETA0)           # z_0 = θ_0
    s1, s2 = opt.step(1, g1, s0), None
    s2 = opt.step(2, g2, s1)
    b1 = base.step(1, g1, base.init(THETA0))
    b2 = base.step(2, g2, b1)
    np.testing.assert_array_equal(s1[:-2], b1)               # the base's own state, untouched
    np.testing.assert_array_equal(s2[:-2], b2)
    z1 = 0.9 * THETA0 + 0.1 * b1[:2]
    np.testing.assert_allclose(s1[-2:], z1, rtol=1e-15)
    np.testing.assert_allclose(s2[-2:], 0.9 * z1 + 0.1 * b2[:2], rtol=1e-15)
    assert opt.name == "adam_ema" and opt.blocks == ("theta", "m", "v", "ema")
    assert opt.with_hyperparameters(ema_decay=0.5).hyper[0] == 0.5


def test_runner_adam_with_ema_keeps_the_adam_path_and_averages_it():
    """The runner appends bias tables to hyper; the EMA's ρ must not shift them: the
    θ, m, v path is bit for bit the plain Adam run's, and z averages its θ."""
    problem = se.quadratic([1.0, 2.0], Sigma=[1.0, 1.0], noise_scale=0.5)
    base = adam(lr=0.05, betas=(0.9, 0.99))
    steps = np.arange(1, 6)
    kw = dict(seed=1, record_steps=steps, save_runs=True, n_threads=1)
    plain = se.run_optimizer(problem, base, THETA0, 5, 3, **kw).x
    with_z = se.run_optimizer(problem, with_ema(base, 0.8), THETA0, 5, 3, **kw).x
    np.testing.assert_array_equal(with_z[..., :6], plain)
    z = THETA0
    for k in range(5):
        z = 0.8 * z + 0.2 * plain[k, :, :2]
        np.testing.assert_allclose(with_z[k, :, 6:], z, rtol=1e-14)


def test_sde_at_a_point_by_hand(problem):
    lr, rho = 0.04, 0.96                                     # γ = 0.04 / 0.04 = 1
    model = ema_sde(sgd_sde(problem, lr), rho)
    x = np.array([0.3, 0.7, 0.1, 0.2])
    f, g = np.empty(4), np.empty((4, 2))
    model.sde.drift_jit(0.0, x, model.sde.params, f)
    model.sde.diffusion_jit(0.0, x, model.sde.params, g)
    np.testing.assert_allclose(f[:2], -H @ (x[:2] - THETA_STAR), rtol=1e-14)
    np.testing.assert_allclose(f[2:], 1.0 * (x[:2] - x[2:]), rtol=1e-12)
    np.testing.assert_array_equal(g[2:], 0.0)
    base_g = np.empty((2, 2))
    sgd_sde(problem, lr).sde.diffusion_jit(0.0, x[:2], sgd_sde(problem, lr).sde.params, base_g)
    np.testing.assert_array_equal(g[:2], base_g)
    np.testing.assert_array_equal(model.initial_state(THETA0), [0.3, 0.7, 0.3, 0.7])
    assert model.optimizer == "sgd_ema" and model.constants["gamma_ema"] == pytest.approx(1.0)
    assert ema_sde(adam_sde(problem, 0.1, betas=(0.9, 0.99)), 0.5).sde.dim == 8


def test_weak_order_one_of_the_ema(problem):
    """Exact moments on both sides; E z's error falls with slope 1 in η."""
    gamma = 1.0
    lrs = np.array([0.04, 0.02, 0.01, 0.005])
    errors = []
    for lr in lrs:
        rho = 1.0 - gamma * lr
        disc = sgd_iterate_moments(problem, lr, THETA0, round(1.0 / lr), rho)
        model = ema_sde(sgd_sde(problem, lr), rho)
        ref = exact_moments(model, model.initial_state(THETA0), [1.0])
        errors.append(abs(disc["ema_mean"][0] - ref.ema_mean[0, 0]))
    slopes = np.diff(np.log(errors)) / np.diff(np.log(lrs))
    assert np.all(np.abs(slopes - 1.0) < 0.05), slopes


def test_runner_ema_matches_the_exact_discrete_moments(problem):
    lr, rho = 0.02, 0.98
    runs = se.run_optimizer(problem, with_ema(sgd(lr=lr), rho), THETA0, 50, 20_000, seed=3,
                            observables=["ema"], n_threads=1)
    exact = sgd_iterate_moments(problem, lr, THETA0, 50, rho)["ema_mean"]
    assert np.all(np.abs(runs.mean[-1] - exact) < 4 * runs.stderr[-1]), (runs.mean[-1], exact)


def test_the_scaling_rule_keeps_the_ema_where_keeping_rho_does_not(problem):
    from sde_engine.studies.exact_scaling import ema_scaling_sweep

    record = ema_scaling_sweep(problem, THETA0, 0.01, 0.99, [1, 2, 4, 8, 16], horizon=1.6)
    sde_mean, sde_var = record["sde"]["ema_mean"][0], record["sde"]["ema_var"][0]
    rule_mean = np.array(record["rule"]["ema_mean"])[:, 0]
    kept_mean = np.array(record["no_rule"]["ema_mean"])[:, 0]
    kept_var = np.array(record["no_rule"]["ema_var"])[:, 0]
    # with the rule the EMA moves by O(κη) from the SDE's value (exact numbers: no noise);
    # keeping ρ makes the EMA average over κ times fewer steps
    assert np.all(np.abs(rule_mean - sde_mean) < 0.05 * abs(sde_mean))
    assert abs(kept_mean[-1] - sde_mean) > 0.4 * abs(sde_mean)
    assert kept_var[-1] < 0.05 * sde_var
    assert ema_rule(4.0, ema_decay=0.99) == {"ema_decay": pytest.approx(0.99**4)}


def test_bad_arguments():
    with pytest.raises(ValueError, match="`ema_decay`"):
        with_ema(sgd(lr=0.1), 1.0)
    with pytest.raises(ValueError, match="without an EMA"):
        with_ema(with_ema(sgd(lr=0.1), 0.5), 0.5)
    with pytest.raises(ValueError, match="general noise"):
        ema_sde(sgd_sde(se.quadratic([1.0], Sigma=[1.0]), 0.1, noise="diagonal"), 0.5)
