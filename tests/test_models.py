"""Optimizer SDEs (SPEC §3): drift and diffusion at a point against hand computation,
the bias-corrected preconditioner, the t = 0 limit, time/state maps, one engine step,
bad hyperparameters."""
import math

import numpy as np
import pytest

from sde_engine import simulate
from sde_engine.models import adam_sde, rmsprop_sde, sgd_sde
from sde_engine.problems import linear_regression, quadratic, synthetic_regression

H = np.array([[2.0, 0.5], [0.5, 1.0]])
SIGMA = np.array([[1.0, 0.6], [0.6, 2.0]])
THETA_STAR = np.array([1.0, -1.0])
THETA = np.array([0.3, 0.7])
M = np.array([0.2, -0.1])
U = np.array([0.5, 1.5])
LR, NOISE_SCALE, EPS = 0.1, 10.0, 1.0          # σ0 = 1, ε0 = 0.1
BETA1, BETA2 = 0.98, 0.99                       # c1 = 2, c2 = 1
SIGMA0, EPS0, C1, C2 = 1.0, 0.1, 2.0, 1.0


@pytest.fixture(scope="module")
def problem():
    return quadratic(H, THETA_STAR, SIGMA, noise_scale=NOISE_SCALE)


def _eval(model, t, x):
    sde = model.sde
    f = np.empty(sde.dim)
    g = np.empty(sde.diffusion_shape)
    sde.drift_jit(t, np.ascontiguousarray(x, dtype=float), sde.params, f)
    sde.diffusion_jit(t, np.ascontiguousarray(x, dtype=float), sde.params, g)
    return f, g


def _sqrt_sigma():
    lam, vec = np.linalg.eigh(SIGMA)
    return vec @ np.diag(np.sqrt(lam)) @ vec.T


def test_sgd_sde_at_a_point(problem):
    model = sgd_sde(problem, LR)
    f, g = _eval(model, 0.7, THETA)
    np.testing.assert_allclose(f, -H @ (THETA - THETA_STAR), rtol=1e-14)
    np.testing.assert_allclose(g, NOISE_SCALE * math.sqrt(LR) * _sqrt_sigma(), rtol=1e-12)
    assert (model.sde.dim, model.sde.noise_dim, model.h) == (2, 2, LR)


def test_diagonal_noise_sgd_sde_for_milstein():
    p = quadratic([2.0, 1.0], THETA_STAR, [1.0, 4.0], noise_scale=NOISE_SCALE)
    model = sgd_sde(p, LR, noise="diagonal")
    assert (model.sde.noise, model.sde.diffusion_shape) == ("diagonal", (2,))
    f, g = _eval(model, 0.0, THETA)
    np.testing.assert_allclose(f, -np.array([2.0, 1.0]) * (THETA - THETA_STAR), rtol=1e-14)
    np.testing.assert_allclose(g, NOISE_SCALE * math.sqrt(LR) * np.array([1.0, 2.0]),
                               rtol=1e-14)
    with pytest.raises(ValueError, match="needs a problem with diagonal"):
        sgd_sde(quadratic(H, THETA_STAR, SIGMA), LR, noise="diagonal")
    with pytest.raises(ValueError, match="`noise` must be one of"):
        sgd_sde(p, LR, noise="scalar")


@pytest.mark.parametrize("bias", [False, True])
def test_rmsprop_sde_at_a_point(problem, bias):
    model = rmsprop_sde(problem, LR, beta=BETA2, eps=EPS, bias_correction=bias)
    assert model.constants == pytest.approx(dict(sigma0=SIGMA0, eps0=EPS0, c2=C2,
                                                 bias_correction=bias))
    t = 0.3
    f, g = _eval(model, t, np.concatenate([THETA, U]))
    gamma2 = 1.0 - math.exp(-C2 * t) if bias else 1.0
    F = math.sqrt(gamma2) / (SIGMA0 * np.sqrt(U) + EPS0 * math.sqrt(gamma2))
    np.testing.assert_allclose(f[:2], -F * (H @ (THETA - THETA_STAR)), rtol=1e-13)
    np.testing.assert_allclose(f[2:], C2 * (np.diag(SIGMA) - U), rtol=1e-13)
    np.testing.assert_allclose(g[:2], -SIGMA0 * F[:, None] * _sqrt_sigma(), rtol=1e-12)
    np.testing.assert_array_equal(g[2:], 0.0)


@pytest.mark.parametrize("bias", [False, True])
def test_adam_sde_at_a_point(problem, bias):
    model = adam_sde(problem, LR, betas=(BETA1, BETA2), eps=EPS, bias_correction=bias)
    assert model.constants == pytest.approx(dict(sigma0=SIGMA0, eps0=EPS0, c1=C1, c2=C2,
                                                 bias_correction=bias))
    t = 0.3
    f, g = _eval(model, t, np.concatenate([THETA, M, U]))
    gamma1 = 1.0 - math.exp(-C1 * t) if bias else 1.0
    gamma2 = 1.0 - math.exp(-C2 * t) if bias else 1.0
    P = SIGMA0 * np.sqrt(U) + EPS0 * math.sqrt(gamma2)
    grad = H @ (THETA - THETA_STAR)
    np.testing.assert_allclose(f[:2], -math.sqrt(gamma2) / gamma1 * M / P, rtol=1e-13)
    np.testing.assert_allclose(f[2:4], C1 * (grad - M), rtol=1e-13)
    np.testing.assert_allclose(f[4:], C2 * (np.diag(SIGMA) - U), rtol=1e-13)
    np.testing.assert_array_equal(g[:2], 0.0)
    np.testing.assert_allclose(g[2:4], SIGMA0 * C1 * _sqrt_sigma(), rtol=1e-12)
    np.testing.assert_array_equal(g[4:], 0.0)


def test_adam_sde_on_minibatch_regression_uses_the_per_example_covariance():
    """Σ(θ) of a data set enters the SDE exactly: compare with the covariance of the
    per-example gradients computed by hand."""
    X, y, _ = synthetic_regression(25, 3, seed=3)
    p = linear_regression(X, y, 5)
    model = adam_sde(p, LR, betas=(BETA1, BETA2), eps=EPS, bias_correction=False)
    theta, m, u = np.array([0.2, -0.4, 0.1]), np.array([0.1, 0.0, -0.2]), np.ones(3)
    f, g = _eval(model, 0.5, np.concatenate([theta, m, u]))
    G = (X @ theta - y)[:, None] * X
    cov = np.cov(G.T, bias=True)
    lam, vec = np.linalg.eigh(cov)
    sigma0 = LR / math.sqrt(5)
    np.testing.assert_allclose(g[3:6], sigma0 * C1 * (vec * np.sqrt(lam)) @ vec.T, rtol=1e-9)
    np.testing.assert_allclose(f[3:6], C1 * (G.mean(0) - m), rtol=1e-12)
    np.testing.assert_allclose(f[6:], C2 * (np.diag(cov) - u), rtol=1e-10)
    np.testing.assert_allclose(f[:3], -m / (sigma0 * np.sqrt(u) + EPS0), rtol=1e-13)


def test_bias_corrected_rmsprop_preconditioner_is_constant_along_u_of_t(problem):
    """SPEC §3: constant Σ, u0 = 0 ⇒ u(t) = diagΣ·γ2(t) and √γ2·P⁻¹ = 1/(σ0√diagΣ + ε0)."""
    model = rmsprop_sde(problem, LR, beta=BETA2, eps=EPS, bias_correction=True)
    expected = -(H @ (THETA - THETA_STAR)) / (SIGMA0 * np.sqrt(np.diag(SIGMA)) + EPS0)
    for t in (0.0, 1e-9, 0.01, 0.5, 3.0):
        u = np.diag(SIGMA) * -math.expm1(-C2 * t)
        f, g = _eval(model, t, np.concatenate([THETA, u]))
        np.testing.assert_allclose(f[:2], expected, rtol=1e-8, err_msg=f"t={t}")
        np.testing.assert_allclose(g[:2], -SIGMA0 * _sqrt_sigma() / (
            SIGMA0 * np.sqrt(np.diag(SIGMA)) + EPS0)[:, None], rtol=1e-8, err_msg=f"t={t}")


def test_bias_corrected_adam_uses_the_small_t_limit_at_t0(problem):
    """At t = 0 with m = u = 0 the drift is the limit m/γ1 → ∇f, u/γ2 → diagΣ."""
    model = adam_sde(problem, LR, betas=(BETA1, BETA2), eps=EPS, bias_correction=True)
    x0 = model.initial_state(THETA)
    f, _ = _eval(model, 0.0, x0)
    grad = H @ (THETA - THETA_STAR)
    np.testing.assert_allclose(f[:2], -grad / (SIGMA0 * np.sqrt(np.diag(SIGMA)) + EPS0),
                               rtol=1e-13)
    # and the exact drift at small t > 0 on the mean path m ≈ c1 t ∇f, u ≈ c2 t diagΣ tends to it
    t = 1e-7
    x = np.concatenate([THETA, -math.expm1(-C1 * t) * grad, -math.expm1(-C2 * t) * np.diag(SIGMA)])
    f_t, _ = _eval(model, t, x)
    np.testing.assert_allclose(f_t[:2], f[:2], rtol=1e-12)


def test_one_engine_step_is_euler_maruyama_of_the_model(problem):
    model = adam_sde(problem, LR, betas=(BETA1, BETA2), eps=EPS, bias_correction=True)
    x0 = model.initial_state(THETA)
    h = model.h
    sol = simulate(model.sde, x0, (h, 2 * h), h, 3, save_brownian=True, seed=4)
    f, g = _eval(model, h, x0)
    for p in range(3):
        dW = sol.W[-1, p]
        np.testing.assert_allclose(sol.x[-1, p], x0 + f * h + g @ dW, rtol=1e-13, atol=1e-15)


def test_time_and_state_maps(problem):
    rms = rmsprop_sde(problem, LR, beta=BETA2, eps=EPS)
    adam = adam_sde(problem, LR, betas=(BETA1, BETA2), eps=EPS, bias_correction=False)
    sgd = sgd_sde(problem, LR)
    np.testing.assert_allclose(rms.time_of_step(np.array([0, 1, 50])), [0.0, 0.01, 0.5])
    assert sgd.time_of_step(30) == pytest.approx(3.0)
    assert adam.t_span(200) == pytest.approx((0.0, 2.0))
    v0 = np.array([2.0, 50.0])
    x0 = adam.initial_state(THETA, m0=M, v0=v0)
    np.testing.assert_allclose(x0, np.concatenate([THETA, M, v0 / NOISE_SCALE**2]))
    np.testing.assert_allclose(rms.initial_state(THETA, v0=v0), np.concatenate(
        [THETA, v0 / NOISE_SCALE**2]))
    batch = np.stack([x0, 2 * x0])[None]                      # (n_save, n_paths, 3d)
    np.testing.assert_array_equal(adam.theta(batch), batch[..., :2])
    np.testing.assert_array_equal(adam.m(batch), batch[..., 2:4])
    np.testing.assert_allclose(adam.v(batch)[0, 0], v0)
    per_path = adam.initial_state(np.zeros((4, 2)))
    assert per_path.shape == (4, 6)
    np.testing.assert_array_equal(sgd.initial_state(THETA), THETA)
    # a float v0/m0 applies to every coordinate, as in run_optimizer
    np.testing.assert_array_equal(rms.initial_state(THETA, v0=2.0),
                                  rms.initial_state(THETA, v0=[2.0, 2.0]))
    np.testing.assert_array_equal(adam.initial_state(THETA, m0=0.5, v0=2.0),
                                  adam.initial_state(THETA, m0=[0.5, 0.5], v0=[2.0, 2.0]))


@pytest.mark.parametrize("build, match", [
    (lambda p: sgd_sde(p, 0.0), "`lr` must be positive"),
    (lambda p: rmsprop_sde(p, -0.1), "`lr` must be positive"),
    (lambda p: rmsprop_sde(p, 0.1, beta=1.0), r"`beta` must lie in \[0, 1\)"),
    (lambda p: rmsprop_sde(p, 0.1, beta=-0.1), r"`beta` must lie in \[0, 1\)"),
    (lambda p: rmsprop_sde(p, 0.1, eps=-1e-8), "`eps` must be a finite number ≥ 0"),
    (lambda p: adam_sde(p, 0.1, betas=(0.9, 1.5)), r"`betas\[1\]` must lie in \[0, 1\)"),
    (lambda p: adam_sde(p, 0.1, betas=(1.0, 0.9)), r"`betas\[0\]` must lie in \[0, 1\)"),
    (lambda p: adam_sde(p, 0.1, betas=0.9), "`betas` must be a pair"),
    (lambda p: adam_sde(p, 0.1, bias_correction="yes"), "`bias_correction` must be True or"),
    (lambda p: adam_sde(p, 0.1).initial_state(THETA, m0=M), "`m0` must be 0 with bias"),
    (lambda p: adam_sde(p, 0.1).initial_state(THETA, v0=[-1.0, 0.0]), "`v0` must be ≥ 0"),
    (lambda p: adam_sde(p, 0.1, eps=0.0, bias_correction=False).initial_state(THETA),
     "singular"),
    (lambda p: rmsprop_sde(p, 0.1).initial_state(np.zeros(3)), r"`theta0` must have shape"),
    (lambda p: sgd_sde(p, 0.1).initial_state(THETA, v0=U), "do not apply to the SGD SDE"),
    (lambda p: sgd_sde(p, 0.1).time_of_step(-1), "`k` must be non-negative integer"),
    (lambda p: rmsprop_sde(p, 0.1).m(np.zeros(4)), "has no m block"),
])
def test_bad_hyperparameters_and_states_are_refused(problem, build, match):
    with pytest.raises(ValueError, match=match):
        build(problem)
