"""Heavy-tailed gradient noise (issue #16, item 6): Student-t and α-stable draws,
the Euler scheme for α-stable driven SDEs, the Lévy-driven SGD SDE, the exact
laws on a quadratic, and SignSGD's SDE under heavy tails.

Statistical checks use fixed seeds and 4 Monte Carlo standard errors; the
characteristic function E cos(uX) = exp(−|u|^α) of S_α is bounded, so its
sample mean has a finite standard error for every α.
"""
import math

import numpy as np
import pytest
from scipy import special, stats

import sde_engine as se
from conftest import model_coefficients
from sde_engine.analysis.stable_laws import (brownian_sde_law, gradient_flow_law,
                                             levy_euler_law, levy_sde_law, sgd_law)
from sde_engine.models import sgd_levy_sde, sgd_sde, signsgd_sde
from sde_engine.optimizers import sgd
from sde_engine.studies.heavy_tails import sgd_stable_errors
from solvers.rng import stream_block_normals

N_DRAWS = 100_000
U = np.array([0.5, 1.0, 2.0])


def _assert_cf(samples, scale, alpha, what):
    """E cos(u x) of ``samples`` within 4 s.e. of exp(−|u scale|^α) at u in U."""
    c = np.cos(np.outer(U, samples))
    diff = np.abs(c.mean(1) - np.exp(-np.abs(U * scale) ** alpha))
    stderr = c.std(1) / math.sqrt(samples.size)
    assert np.all(diff < 4 * stderr), f"{what}: |cf − exact| = {diff}, stderr = {stderr}"


def _noise_draws(noise, n=N_DRAWS, seed=7, **shape):
    """ξ from the quadratic's oracle at its minimum (σ = 1, s = 1)."""
    p = se.quadratic([1.0], noise=noise, **shape)
    return p.sample_gradients(np.zeros(1), n, seed=seed)[:, 0]


# ---- draws ----------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [1.3, 2.0])
def test_stable_noise_has_the_characteristic_function_of_s_alpha(alpha):
    # ξ = X/√2 with E exp(iuX) = exp(−|u|^α): E cos(uξ) = exp(−|u/√2|^α)
    _assert_cf(_noise_draws("stable", alpha=alpha), 2 ** -0.5, alpha, f"stable α={alpha}")


def test_stable_noise_at_alpha_two_is_standard_normal():
    xi = _noise_draws("stable", n=20_000, alpha=2.0)
    assert stats.kstest(xi, "norm").pvalue > 1e-3


def test_student_t_noise_is_a_standardised_t():
    df = 3.0
    xi = _noise_draws("student_t", n=20_000, df=df)
    assert stats.kstest(xi * math.sqrt(df / (df - 2.0)), stats.t(df).cdf).pvalue > 1e-3
    # variance 1 (ν = 5: finite fourth moment, so the sample variance has a standard error)
    xi = _noise_draws("student_t", df=5.0, seed=8)
    assert abs(np.mean(xi**2) - 1.0) < 4 * np.std(xi**2) / math.sqrt(xi.size)


@pytest.mark.parametrize("kwargs, match", [
    (dict(noise="student_t"), "needs `df`"),
    (dict(noise="student_t", df=2.0), "`df` must be > 2"),
    (dict(noise="stable", alpha=1.0), r"`alpha` must be in \(1, 2\]"),
    (dict(noise="stable", alpha=2.5), r"`alpha` must be in \(1, 2\]"),
    (dict(noise="stable"), "needs `alpha`"),
    (dict(noise="gaussian", df=3.0), "`df`"),
    (dict(noise="student_t", df=3.0, alpha=1.5), "`alpha`"),
])
def test_bad_noise_shapes_are_refused_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        se.quadratic([1.0], **kwargs)


def test_brownian_models_refuse_infinite_variance_noise():
    stable = se.quadratic([1.0], noise="stable", alpha=1.5)
    for build in (lambda p: sgd_sde(p, 0.1), lambda p: se.rmsprop_sde(p, 0.1)):
        with pytest.raises(ValueError, match="infinite variance.*sgd_levy_sde"):
            build(stable)
    # α = 2 is Gaussian: the Brownian SDE applies; Student-t has a covariance
    sgd_sde(se.quadratic([1.0], noise="stable", alpha=2.0), 0.1)
    sgd_sde(se.quadratic([1.0], noise="student_t", df=3.0), 0.1)
    with pytest.raises(ValueError, match="noise='stable'"):
        sgd_levy_sde(se.quadratic([1.0]), 0.1)


def test_sgd_with_student_t_noise_has_the_exact_first_two_moments():
    # only two moments of ξ enter θ's mean and covariance; ν = 5 keeps E θ⁴ finite
    from sde_engine.analysis import sgd_iterate_moments

    problem = se.quadratic([2.0, 1.0], [1.0, -1.0], [1.0, 2.0], noise="student_t", df=5.0,
                           noise_scale=0.8)
    lr, n_steps, n_runs = 0.1, 10, 20_000
    theta = se.run_optimizer(problem, sgd(lr=lr), [0.3, 0.7], n_steps, n_runs, seed=9,
                             record_steps=[n_steps]).x[-1]
    exact = sgd_iterate_moments(problem, lr, [0.3, 0.7], n_steps)
    for estimate, value, what in ((theta, exact["theta_mean"], "mean"),
                                  ((theta - exact["theta_mean"]) ** 2,
                                   np.diag(exact["theta_cov"]), "variance")):
        stderr = estimate.std(0) / math.sqrt(n_runs)
        assert np.all(np.abs(estimate.mean(0) - value) < 4 * stderr), (what, estimate.mean(0), value)
    with pytest.raises(ValueError, match="infinite variance"):
        sgd_iterate_moments(se.quadratic([1.0], noise="stable", alpha=1.5), lr, [0.0], 3)


# ---- the Euler scheme for α-stable driven SDEs ----------------------------------------
def _ou_drift(t, x, p, out):
    for i in range(x.shape[0]):
        out[i] = -p[0] * x[i]


def _ou_diffusion(t, x, p, out):
    for i in range(x.shape[0]):
        out[i] = p[1]


ALPHA = 1.5
LEVY_OU = se.SDE(_ou_drift, _ou_diffusion, dim=2, params=np.array([1.0, 0.5]),
                 levy_alpha=ALPHA)
DT = 0.125
SEED = 21


def _levy_run(n_paths, n_steps=8, **kwargs):
    return se.simulate(LEVY_OU, [0.3, -0.2], (0.0, n_steps * DT), DT, n_paths, seed=SEED,
                       save_brownian=True, **kwargs)


def _cms(alpha, a, b):
    v, e = 0.5 * np.arctan2(b, a), 0.5 * (a * a + b * b)
    return (np.sin(alpha * v) / np.cos(v) ** (1 / alpha)
            * (np.cos((1 - alpha) * v) / e) ** ((1 - alpha) / alpha))


def test_euler_levy_steps_by_hand_from_the_stream_normals():
    n_paths, n_steps, m = 3, 4, 2
    sol = _levy_run(n_paths, n_steps, path_offset=40)
    c, g = LEVY_OU.params
    for p in range(n_paths):
        z = stream_block_normals(SEED, 40 + p, n_steps * 2 * m, 1).reshape(n_steps, 2 * m)
        x, w = np.array([0.3, -0.2]), np.zeros(m)
        for k in range(n_steps):
            dL = DT ** (1 / ALPHA) * _cms(ALPHA, z[k, :m], z[k, m:])
            x = x - c * x * DT + g * dL
            w = w + dL
        np.testing.assert_allclose(sol.x[-1, p], x, rtol=1e-12)
        np.testing.assert_allclose(sol.W[-1, p], w, rtol=1e-12)


def test_euler_levy_has_the_exact_law_of_its_recursion():
    n_steps, n_paths = 8, 40_000
    x = _levy_run(n_paths, n_steps).x[-1]
    c, g = LEVY_OU.params
    r = 1 - c * DT
    # X_n = rⁿ x0 + g dt^{1/α} Σ_k r^{n−1−k} S_k: scale g dt^{1/α} (Σ r^{αk})^{1/α}
    scale = g * DT ** (1 / ALPHA) * np.sum(r ** (ALPHA * np.arange(n_steps))) ** (1 / ALPHA)
    for i, x0 in enumerate((0.3, -0.2)):
        _assert_cf(x[:, i] - r**n_steps * x0, scale, ALPHA, f"coordinate {i}")
    # the coordinates are driven independently
    a, b = np.cos(x[:, 0] - r**n_steps * 0.3), np.cos(x[:, 1] + r**n_steps * 0.2)
    cov = np.mean(a * b) - a.mean() * b.mean()
    assert abs(cov) < 4 * np.std((a - a.mean()) * (b - b.mean())) / math.sqrt(n_paths)


def test_euler_levy_paths_are_reproducible():
    whole = _levy_run(2500)
    np.testing.assert_array_equal(_levy_run(2500, n_threads=1).x, whole.x)
    np.testing.assert_array_equal(_levy_run(10).x, whole.x[:, :10])
    tail = _levy_run(1000, path_offset=1500)
    np.testing.assert_array_equal(tail.x, whole.x[:, 1500:])
    np.testing.assert_array_equal(tail.W, whole.W[:, 1500:])


def test_levy_sdes_refuse_what_assumes_brownian_increments():
    with pytest.raises(ValueError, match="assumes Brownian increments"):
        se.simulate(LEVY_OU, [0.0, 0.0], (0.0, 1.0), DT, 10, method="milstein")
    with pytest.raises(ValueError, match="`brownian_dt`"):
        se.simulate(LEVY_OU, [0.0, 0.0], (0.0, 1.0), DT, 10, brownian_dt=DT / 2)
    with pytest.raises(ValueError, match="levy_alpha"):
        se.SDE(_ou_drift, _ou_diffusion, dim=2, levy_alpha=2.5)


# ---- SGD with α-stable noise and its Lévy SDE -----------------------------------------
def test_sgd_with_stable_noise_has_its_exact_law():
    c, sigma, s2, lr, n_steps, n_paths = 1.0, 1.0, 2.0, 0.1, 10, 20_000
    problem = se.quadratic([c], Sigma=[s2], noise="stable", alpha=ALPHA, noise_scale=sigma)
    theta = se.run_optimizer(problem, sgd(lr=lr), [1.0], n_steps, n_paths, seed=3,
                             record_steps=[n_steps]).x[-1, :, 0]
    law = sgd_law(c, sigma, s2, ALPHA, lr, n_steps, 1.0)
    _assert_cf(theta - law.location, law.scale, ALPHA, "SGD")


def test_levy_sde_coefficients_by_hand():
    # drift −∇f, diffusion η^{1−1/α} σ S/√2 (S = Σ^{1/2}), driven by L with levy_alpha = α;
    # its Euler scheme is tested on LEVY_OU above, and simulated against the exact law in
    # the heavy_tails experiment
    lr, sigma = 0.04, 0.7
    problem = se.quadratic([1.0, 2.0], Sigma=[1.0, 4.0], noise="stable", alpha=ALPHA,
                           noise_scale=sigma)
    model = sgd_levy_sde(problem, lr)
    assert model.sde.levy_alpha == ALPHA and model.h == lr and model.sde.noise == "general"
    f, g = model_coefficients(model, [0.3, -0.4])
    np.testing.assert_allclose(f, [-0.3, 0.8], rtol=1e-15)
    np.testing.assert_allclose(g, lr ** (1 - 1 / ALPHA) * sigma / math.sqrt(2) * np.diag([1, 2]),
                               rtol=1e-14)


def test_sgd_runs_with_heavy_tailed_noise_are_reproducible():
    problem = se.quadratic([1.0, 2.0], noise="stable", alpha=1.2)
    run = lambda n, **kw: se.run_optimizer(problem, sgd(lr=0.1), [1.0, -1.0], 5, n, seed=2,
                                           record_steps=[5], **kw).x
    whole = run(2500)
    np.testing.assert_array_equal(run(2500, n_threads=1), whole)
    np.testing.assert_array_equal(run(7), whole[:, :7])
    np.testing.assert_array_equal(run(1000, run_offset=1500), whole[:, 1500:])


def test_the_levy_sde_is_the_sgd_sde_at_alpha_two():
    # at α = 2, L = √2 W: the diffusion η^{1/2} σ s/√2 times √2 is the SGD SDE's σ√η s
    problem = se.quadratic([1.0, 2.0], Sigma=[1.0, 4.0], noise="stable", alpha=2.0,
                           noise_scale=0.7)
    x = [0.3, -0.4]
    g_levy = model_coefficients(sgd_levy_sde(problem, 0.04), x)[1]
    g_sgd = model_coefficients(sgd_sde(problem, 0.04), x)[1]
    np.testing.assert_allclose(math.sqrt(2.0) * g_levy, g_sgd, rtol=1e-14)


def test_exact_laws_by_hand():
    c, sigma, s2, alpha, lr, n, t = 0.5, 2.0, 3.0, 1.5, 0.1, 4, 0.4
    r = 1 - lr * c
    law = sgd_law(c, sigma, s2, alpha, lr, n, 1.0)
    expected = lr * sigma * math.sqrt(s2 / 2) * sum(r ** (alpha * k) for k in range(n)) ** (1 / alpha)
    assert law.location == pytest.approx(r**n) and law.scale == pytest.approx(expected, rel=1e-14)
    # the Euler scheme of the Lévy SDE at dt: increments η^{1−1/α} σ s/√2 · dt^{1/α} X
    dt = lr / 4
    law = levy_euler_law(c, sigma, s2, alpha, lr, dt, 4 * n, 1.0)
    expected = (lr ** (1 - 1 / alpha) * sigma * math.sqrt(s2 / 2) * dt ** (1 / alpha)
                * sum((1 - dt * c) ** (alpha * k) for k in range(4 * n)) ** (1 / alpha))
    assert law.location == pytest.approx((1 - dt * c) ** (4 * n))
    assert law.scale == pytest.approx(expected, rel=1e-14)
    law = levy_sde_law(c, sigma, s2, alpha, lr, t, 1.0)
    expected = (lr ** (1 - 1 / alpha) * sigma * math.sqrt(s2 / 2)
                * ((1 - math.exp(-alpha * c * t)) / (alpha * c)) ** (1 / alpha))
    assert law.location == pytest.approx(math.exp(-c * t)) and law.scale == pytest.approx(expected)
    law = brownian_sde_law(c, sigma, s2, lr, t, 1.0)
    variance = lr * sigma**2 * s2 * (1 - math.exp(-2 * c * t)) / (2 * c)
    assert law.alpha == 2.0 and law.scale == pytest.approx(math.sqrt(variance / 2))
    # S_2 with scale a is N(0, 2a²): E cos(uθ) = cos(u m) exp(−u² var/2)
    assert law.expected_cos(1.3) == pytest.approx(
        math.cos(1.3 * law.location) * math.exp(-1.3**2 * variance / 2))
    assert gradient_flow_law(c, t, 2.0).expected_cos(1.0) == pytest.approx(
        math.cos(2 * math.exp(-c * t)))


def test_where_the_brownian_sde_stops_describing_sgd():
    lrs = 2.0 ** -np.arange(6, 11)
    record = sgd_stable_errors([2.0, 1.5], lrs)
    at2, at15 = record["2"], record["1.5"]
    # α = 2: the SDEs coincide, weak order 2 in E cos(uθ) from the minimum; flow order 1
    assert at2["levy_sde"]["order"] == pytest.approx(2.0, abs=0.02)
    assert at2["brownian_sde"]["errors"] == pytest.approx(at2["levy_sde"]["errors"], rel=1e-9)
    assert at2["gradient_flow"]["order"] == pytest.approx(1.0, abs=0.02)
    # α = 1.5: the Lévy SDE keeps order α, the Brownian SDE falls to α − 1 with the flow,
    # and the share of SGD's noise effect it misses grows towards 1
    assert at15["levy_sde"]["order"] == pytest.approx(1.5, abs=0.02)
    assert at15["brownian_sde"]["order"] == pytest.approx(0.5, abs=0.05)
    assert at15["gradient_flow"]["order"] == pytest.approx(0.5, abs=0.02)
    assert np.all(np.diff(at15["unexplained"]) > 0) and at15["unexplained"][-1] > 0.9


# ---- SignSGD under heavy tails --------------------------------------------------------
@pytest.mark.parametrize("shape", [dict(noise="stable", alpha=1.3),
                                   dict(noise="student_t", df=3.0)])
def test_signsgd_sde_is_the_mean_and_variance_of_the_sign_of_the_oracle(shape):
    problem = se.quadratic([2.0, 1.0], [1.0, -1.0], [1.0, 2.0], noise_scale=0.8, **shape)
    theta = np.array([0.3, 0.7])
    n = 200_000
    signs = np.sign(problem.sample_gradients(theta, n, seed=4))
    f, g = model_coefficients(signsgd_sde(problem, 1.0), theta)
    mean, var = signs.mean(axis=0), signs.var(axis=0)
    assert np.all(np.abs(mean + f) < 4 * np.sqrt(var / n)), (mean, -f)
    np.testing.assert_allclose(np.diag(g) ** 2, 1 - f**2, rtol=1e-12)


def test_signsgd_drift_slope_at_zero_is_the_density_of_the_noise():
    # phase 3: G(z) ≈ 2F'(0) z with 2F'(0) = 2√2 Γ(1 + 1/α)/π for ξ = X/√2
    alpha, z = 1.5, 1e-4
    f = model_coefficients(signsgd_sde(se.quadratic([1.0], noise="stable", alpha=alpha), 0.1),
                           [z])[0]
    assert -f[0] / z == pytest.approx(2 * math.sqrt(2) * special.gamma(1 + 1 / alpha) / math.pi,
                                      rel=1e-6)


@pytest.mark.slow
def test_signsgd_keeps_weak_order_one_under_stable_noise():
    # sign(g) is bounded: SignSGD's limit stays Brownian at α = 1.5 (independent Monte
    # Carlo, as in the heavy_tails experiment, there with 2·10⁵ paths: 1.01 [0.90, 1.11])
    from sde_engine.studies.heavy_tails import signsgd_stable_orders

    record = signsgd_stable_orders([1.5], [0.2, 0.1, 0.05, 0.025], n_paths=100_000, seed=5)
    fit = record["1.5"]
    assert fit["ci"][0] <= 1.0 <= fit["ci"][1] and fit["ci"][1] - fit["ci"][0] < 0.6, fit
