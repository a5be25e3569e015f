"""Problems: exact values against hand computation, oracle statistics within Monte
Carlo error (|estimate − exact| < 4·stderr, fixed seeds), bad input."""
import numpy as np
import pytest

from sde_engine.problems import (custom_problem, linear_regression, logistic_regression,
                                 quadratic, synthetic_regression)

N_SAMPLES = 100_000
H2 = np.array([[2.0, 0.5], [0.5, 1.0]])
SIGMA2 = np.array([[1.0, 0.6], [0.6, 2.0]])
THETA_STAR = np.array([1.0, -1.0])
X_POINT = np.array([0.3, 0.7])


def _assert_within(estimate, exact, stderr, what):
    """|estimate − exact| < 4·stderr; a zero stderr (e.g. ξ⁴ = 1 for Rademacher) asks for equality."""
    diff = np.abs(np.asarray(estimate) - exact)
    stderr = np.asarray(stderr)
    ok = np.where(stderr > 0, diff < 4.0 * stderr, diff < 1e-12)
    assert np.all(ok), f"{what}: |estimate − exact| = {diff}, stderr = {stderr}"


def _check_oracle_moments(g, grad, cov):
    """Mean ∇f and covariance σ²Σ of oracle samples g (n, d), tolerances from the MC error."""
    n = g.shape[0]
    _assert_within(g.mean(0), grad, g.std(0) / np.sqrt(n), "mean")
    z = g - grad
    prod = z[:, :, None] * z[:, None, :]
    _assert_within(prod.mean(0), cov, prod.std(0) / np.sqrt(n), "covariance")


# ---- quadratic -----------------------------------------------------------------------
def test_quadratic_values_match_hand_computation():
    p = quadratic(H2, THETA_STAR, SIGMA2)
    r = X_POINT - THETA_STAR
    assert p.loss_at(X_POINT) == pytest.approx(0.5 * r @ H2 @ r, rel=1e-14)
    np.testing.assert_allclose(p.grad_at(X_POINT), H2 @ r, rtol=1e-14)
    np.testing.assert_array_equal(p.hessian(), H2)
    S = p.noise_sqrt_at(X_POINT)
    np.testing.assert_allclose(S, S.T, atol=1e-15)           # symmetric square root
    np.testing.assert_allclose(S @ S.T, SIGMA2, rtol=1e-12)
    diag = np.empty(2)
    p.noise_diag(X_POINT, p.params, diag)
    np.testing.assert_allclose(diag, np.diag(SIGMA2), rtol=1e-15)


def test_quadratic_diagonal_inputs_equal_full_matrices():
    diag_p = quadratic([2.0, 3.0], THETA_STAR, [1.0, 4.0])
    full_p = quadratic(np.diag([2.0, 3.0]), THETA_STAR, np.diag([1.0, 4.0]))
    for p in (diag_p, full_p):
        np.testing.assert_allclose(p.grad_at(X_POINT), [2.0 * -0.7, 3.0 * 1.7], rtol=1e-14)
        np.testing.assert_allclose(p.noise_sqrt_at(X_POINT), np.diag([1.0, 2.0]), rtol=1e-15)
    # same oracle draws from the same streams
    np.testing.assert_allclose(diag_p.sample_gradients(X_POINT, 50, seed=3),
                               full_p.sample_gradients(X_POINT, 50, seed=3), rtol=1e-14)


def test_singular_sigma_has_a_square_root():
    p = quadratic([1.0, 1.0], Sigma=np.array([[1.0, 1.0], [1.0, 1.0]]))
    S = p.noise_sqrt_at(np.zeros(2))
    np.testing.assert_allclose(S @ S.T, np.ones((2, 2)), atol=1e-12)


@pytest.mark.parametrize("noise, kappa3, kappa4", [
    ("gaussian", 0.0, 3.0), ("rademacher", 0.0, 1.0), ("skewed", 2.0, 9.0)])
def test_oracle_mean_covariance_and_shape_of_each_family(noise, kappa3, kappa4):
    sigma = 0.5
    p = quadratic(H2, THETA_STAR, SIGMA2, noise=noise, noise_scale=sigma)
    g = p.sample_gradients(X_POINT, N_SAMPLES, seed=11)
    grad = p.grad_at(X_POINT)
    _check_oracle_moments(g, grad, sigma**2 * SIGMA2)
    # third moment of z_i = Σ_j S_ij ξ_j: E z_i³ = κ3 Σ_j S_ij³ (ξ independent, E ξ³ = κ3)
    z3 = ((g - grad) / sigma) ** 3
    S = p.noise_sqrt_at(X_POINT)
    _assert_within(z3.mean(0), kappa3 * (S**3).sum(1), z3.std(0) / np.sqrt(N_SAMPLES),
                   "third moment")
    # fourth moment of ξ itself, read off a 1-D problem with S = 1
    q = quadratic([1.0], noise=noise, noise_scale=1.0)
    xi4 = q.sample_gradients(np.zeros(1), N_SAMPLES, seed=12)[:, 0] ** 4
    _assert_within(xi4.mean(), kappa4, xi4.std() / np.sqrt(N_SAMPLES), "fourth moment")


def test_oracle_streams_are_reproducible_and_independent_of_n():
    p = quadratic(H2, THETA_STAR, SIGMA2, noise="skewed")
    a = p.sample_gradients(X_POINT, 40, seed=5)
    np.testing.assert_array_equal(a[:10], p.sample_gradients(X_POINT, 10, seed=5))
    assert not np.array_equal(a, p.sample_gradients(X_POINT, 40, seed=6))


def test_with_noise_scale_changes_only_sigma():
    p = quadratic(H2, THETA_STAR, SIGMA2, noise_scale=2.0)
    q = p.with_noise_scale(0.25)
    assert (p.noise_scale, q.noise_scale) == (2.0, 0.25)
    np.testing.assert_array_equal(p.params[1:], q.params[1:])
    np.testing.assert_allclose(q.sample_gradients(X_POINT, 5, seed=1) - q.grad_at(X_POINT),
                               (p.sample_gradients(X_POINT, 5, seed=1) - p.grad_at(X_POINT)) / 8,
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kwargs, match", [
    (dict(H=np.array([[1.0, 2.0], [0.0, 1.0]])), "`H` must be symmetric"),
    (dict(H=np.array([[1.0, 2.0], [2.0, 1.0]])), "`H` must be positive semi-definite"),
    (dict(H=[1.0, -1.0]), "`H`"),
    (dict(H=np.ones((2, 3))), "`H` must be a square matrix"),
    (dict(H=[1.0, 1.0], Sigma=np.array([[1.0, 3.0], [3.0, 1.0]])),
     "`Sigma` must be positive semi-definite"),
    (dict(H=[1.0, 1.0], Sigma=[1.0, 1.0, 1.0]), "`Sigma` must have dimension 2"),
    (dict(H=[1.0, 1.0], theta_star=[0.0]), r"`theta_star` must have shape \(2,\)"),
    (dict(H=[1.0], noise="cauchy"), "`noise` must be one of"),
    (dict(H=[1.0], noise_scale=0.0), "`noise_scale` must be positive"),
    (dict(H=[1.0], noise_scale=-1.0), "`noise_scale` must be positive"),
    (dict(H=[np.nan]), "`H`"),
])
def test_quadratic_refuses_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        quadratic(**kwargs)


def test_point_of_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"`x` must have shape \(2,\)"):
        quadratic(H2).grad_at(np.zeros(3))
    with pytest.raises(ValueError, match="`sigma` must be positive"):
        quadratic(H2).with_noise_scale(-2.0)


# ---- regression ----------------------------------------------------------------------
def _per_example_gradients(kind, X, y, theta, l2):
    z = X @ theta
    r = z - y if kind == "linear" else 1.0 / (1.0 + np.exp(-z)) - y
    return r[:, None] * X + l2 * theta


@pytest.mark.parametrize("kind", ["linear", "logistic"])
def test_regression_matches_per_example_gradients_by_hand(kind):
    X, y, _ = synthetic_regression(40, 3, kind=kind, seed=4)
    build = linear_regression if kind == "linear" else logistic_regression
    p = build(X, y, 5, l2=0.1)
    theta = np.array([0.4, -0.3, 0.8])
    G = _per_example_gradients(kind, X, y, theta, 0.1)
    z = X @ theta
    per_loss = 0.5 * (z - y) ** 2 if kind == "linear" else np.logaddexp(0.0, z) - y * z
    assert p.loss_at(theta) == pytest.approx(per_loss.mean() + 0.05 * theta @ theta, rel=1e-12)
    np.testing.assert_allclose(p.grad_at(theta), G.mean(0), rtol=1e-12)
    cov = np.cov(G.T, bias=True)                      # population covariance over the N examples
    np.testing.assert_allclose(p.noise_cov(theta), cov, rtol=1e-10, atol=1e-14)
    diag = np.empty(3)
    p.noise_diag(theta, p.params, diag)
    np.testing.assert_allclose(diag, np.diag(cov), rtol=1e-10)
    S = p.noise_sqrt_at(theta)
    np.testing.assert_allclose(S, S.T, atol=1e-12)
    # Hessian against central differences of the gradient
    fd = np.array([(p.grad_at(theta + 1e-6 * e) - p.grad_at(theta - 1e-6 * e)) / 2e-6
                   for e in np.eye(3)])
    np.testing.assert_allclose(p.hessian(theta), fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kind", ["linear", "logistic"])
def test_minibatch_oracle_has_mean_grad_and_covariance_sigma_over_b(kind):
    X, y, _ = synthetic_regression(30, 2, kind=kind, seed=7)
    build = linear_regression if kind == "linear" else logistic_regression
    batch = 4
    p = build(X, y, batch)
    assert p.noise_scale == pytest.approx(0.5)
    theta = np.array([0.2, -0.5])
    g = p.sample_gradients(theta, N_SAMPLES, seed=2)
    _check_oracle_moments(g, p.grad_at(theta), p.noise_cov(theta) / batch)


def test_with_batch_size_and_noise_scale():
    X, y, _ = synthetic_regression(20, 2, seed=0)
    p = linear_regression(X, y, 2)
    q = p.with_batch_size(8)
    assert (q.batch_size, q.noise_scale, p.batch_size) == (8, pytest.approx(8 ** -0.5), 2)
    assert p.with_noise_scale(0.25).batch_size == 16
    with pytest.raises(ValueError, match="1/√B"):
        p.with_noise_scale(0.3)


def test_synthetic_data_is_seeded():
    a = synthetic_regression(10, 3, kind="logistic", seed=9)
    b = synthetic_regression(10, 3, kind="logistic", seed=9)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert set(np.unique(a[1])) <= {0.0, 1.0}
    assert not np.array_equal(a[0], synthetic_regression(10, 3, kind="logistic", seed=8)[0])


@pytest.mark.parametrize("call, match", [
    (lambda X, y: linear_regression(X, y[:-1], 2), r"`y` must have shape \(10,\)"),
    (lambda X, y: linear_regression(X[:, 0], y, 2), r"`X` must have shape \(N, p\)"),
    (lambda X, y: logistic_regression(X, y + 0.5, 2), "labels 0 or 1"),
    (lambda X, y: linear_regression(X, y, 0), "`batch_size` must be a positive integer"),
    (lambda X, y: linear_regression(X, y, 2.5), "`batch_size` must be a positive integer"),
    (lambda X, y: linear_regression(X, y, 2, l2=-1.0), "`l2` must be"),
    (lambda X, y: synthetic_regression(10, 2, kind="poisson"), "`kind` must be one of"),
])
def test_regression_refuses_bad_input(call, match):
    X, y, _ = synthetic_regression(10, 2, kind="logistic", seed=1)
    with pytest.raises(ValueError, match=match):
        call(X, y)


# ---- user-defined problems -------------------------------------------------------------
def _dw_loss(x, p):
    return 0.25 * p[0] * np.sum((x * x - 1.0) ** 2)


def _dw_grad(x, p, out):
    out[:] = p[0] * x * (x * x - 1.0)


def _dw_noise_sqrt(x, p, out):
    out[:, :] = 0.0
    for i in range(x.shape[0]):
        out[i, i] = np.sqrt(1.0 + x[i] * x[i])


def _bad_grad(x, p, out):
    out[5] = 1.0


def test_custom_problem_follows_the_protocol():
    p = custom_problem("double_well", 3, np.array([2.0]), loss=_dw_loss, grad=_dw_grad,
                       noise_sqrt=_dw_noise_sqrt, noise="gaussian", noise_scale=0.5)
    x = np.array([0.5, 1.0, 2.0])
    assert p.loss_at(x) == pytest.approx(0.5 * ((0.25 - 1) ** 2 + 0 + 9.0))
    np.testing.assert_allclose(p.grad_at(x), 2.0 * x * (x * x - 1.0))
    np.testing.assert_allclose(p.noise_cov(x), np.diag(1.0 + x * x))
    diag = np.empty(3)
    p.noise_diag(x, p.params, diag)                 # default: row norms of noise_sqrt
    np.testing.assert_allclose(diag, 1.0 + x * x)
    g = p.sample_gradients(x, N_SAMPLES, seed=4)
    _check_oracle_moments(g, p.grad_at(x), 0.25 * np.diag(1.0 + x * x))


def test_custom_problem_refuses_bad_input():
    kw = dict(loss=_dw_loss, grad=_dw_grad, noise_sqrt=_dw_noise_sqrt)
    with pytest.raises(ValueError, match="`grad` failed at θ = 0"):
        custom_problem("bad", 2, [1.0], loss=_dw_loss, grad=_bad_grad,
                       noise_sqrt=_dw_noise_sqrt)
    with pytest.raises(ValueError, match="`noise` must be 'custom'"):
        custom_problem("x", 2, [1.0], stochastic_grad=_dw_grad, **kw)
    with pytest.raises(ValueError, match="`dim` must be a positive integer"):
        custom_problem("x", 0, [1.0], **kw)
    with pytest.raises(ValueError, match="`noise_scale` must be positive"):
        custom_problem("x", 2, [1.0], noise_scale=0.0, **kw)
    with pytest.raises(ValueError, match="not diagonal"):
        custom_problem("x", 2, [1.0], loss=_dw_loss, grad=_dw_grad, noise_sqrt=_full_sqrt,
                       diagonal_noise=True)


def _full_sqrt(x, p, out):
    out[:, :] = 1.0


def test_diagonal_noise_flags():
    assert quadratic([1.0, 2.0], Sigma=[1.0, 3.0]).diagonal_noise
    assert quadratic([1.0, 2.0], Sigma=np.diag([1.0, 3.0])).diagonal_noise
    assert not quadratic([1.0, 2.0], Sigma=SIGMA2).diagonal_noise
    X, y, _ = synthetic_regression(10, 2)
    assert not linear_regression(X, y, 2).diagonal_noise
