"""The coupled discrete–SDE estimator (sde_engine.coupled, issue 14 §1).

One compiled kernel serves the default-run tests (RMSprop on a quadratic with
the default test functions; its compilation is ~26 s of their ~30 s on an idle
2-core machine); SGD and Adam hand checks (each a further compile) and the
comparison with the independent estimator (20 000 runs of each) are marked slow. Statistical tolerances come from the Monte Carlo standard
errors of the run.
"""
import math

import numpy as np
import pytest

import sde_engine as se
from sde_engine.coupled import QUANTITIES, coupled_weak_error, theta_observables
from sde_engine.optimizers import adam, rmsprop, sgd
from sde_engine.studies.coupled import resolve_estimator
from sde_engine.studies.order_config import build_config
from sde_engine.studies.svag_convergence import reference_model
from solvers.rng import stream_block_normals

H2 = np.array([[1.5, 0.4], [0.4, 0.8]])
SIGMA2 = np.array([[1.0, 0.3], [0.3, 0.5]])
ROW = {name: i for i, name in enumerate(QUANTITIES)}


def rmsprop_at(lr, bias_correction=False):
    """RMSprop with the study mapping σ0 = 1, ε0 = 0.1, c2 = 1 (SPEC §3) at ``lr``."""
    return rmsprop(lr=lr, beta=1.0 - lr * lr, eps=0.1 / lr, bias_correction=bias_correction)


def by_hand(problem, optimizer, theta0, n_steps, m, seed, path, v0=None, sign=1.0):
    """φ(θ_k), φ(X^m), φ(X^{m/2}) of one coupled path, in NumPy from the stream's normals."""
    d = problem.dim
    model = reference_model(problem, optimizer)
    h = optimizer.time_per_step
    dt = h / m
    z = stream_block_normals(seed, path, n_steps * m * d, 1024).reshape(n_steps, m, d)
    state = optimizer.init(np.asarray(theta0), v0=v0) if v0 is not None else \
        optimizer.init(np.asarray(theta0))
    kw = {} if v0 is None else dict(v0=v0)
    fine = model.initial_state(np.asarray(theta0), **kw)
    coarse = fine.copy()
    sde = model.sde
    f = np.empty(sde.dim)
    g = np.empty((sde.dim, d))

    def em(t, x, step, dw):
        sde.drift_jit(t, x, sde.params, f)
        sde.diffusion_jit(t, x, sde.params, g)
        return x + f * step + g @ dw

    for k in range(1, n_steps + 1):
        xi = z[k - 1].sum(axis=0) / math.sqrt(m)
        grad = problem.grad_at(state[:d]) + problem.noise_scale * problem.noise_sqrt_at(
            state[:d]) @ xi
        state = optimizer.step(k, grad, state)
        for j in range(m):
            fine = em(((k - 1) * m + j) * dt, fine, dt, sign * math.sqrt(dt) * z[k - 1, j])
        for j in range(m // 2):
            dw = sign * math.sqrt(dt) * (z[k - 1, 2 * j] + z[k - 1, 2 * j + 1])
            coarse = em(((k - 1) * (m // 2) + j) * 2 * dt, coarse, 2 * dt, dw)
    phi = theta_observables(problem.loss)
    out = np.empty((3, 4))
    for r, theta in enumerate((state[:d], fine[:d], coarse[:d])):
        phi.py_func(np.ascontiguousarray(theta), problem.params, out[r])
    return out


def check_one_path(problem, optimizer, theta0, n_steps, m, sign, v0=None):
    seed, path = 3, 7
    res = coupled_weak_error(problem, optimizer, theta0, n_steps, 1, substeps=m, seed=seed,
                             path_offset=path, v0=v0)
    disc, fine, coarse = by_hand(problem, optimizer, theta0, n_steps, m, seed, path, v0, sign)
    want = np.stack([disc - fine, fine - coarse, disc - 2 * fine + coarse, disc, fine,
                     2 * fine - coarse])
    np.testing.assert_allclose(res.mean[-1], want, rtol=1e-11, atol=1e-13)


def test_one_path_by_hand_rmsprop():
    """Two steps of bias-corrected RMSprop on a 2-D quadratic with full H and Σ: the
    discrete noise is the normalised sum of the SDE's sub-increments, and the SDE
    copies are Euler–Maruyama at dt = h/4 and 2dt (time-dependent drift at t = kh + j dt)."""
    problem = se.quadratic(H2, Sigma=SIGMA2, noise_scale=1 / 0.3)
    check_one_path(problem, rmsprop_at(0.3, bias_correction=True), [1.0, -0.5], 2, 4, 1.0)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_one_path_by_hand_sgd_adam(name):
    """SGD couples with ΔW = −√dt ξ (its SDE carries the noise with the opposite sign),
    Adam (bias-corrected, the t = 0 limit of its drift) with +√dt ξ."""
    problem = se.quadratic(H2, Sigma=SIGMA2, noise_scale=2.0)
    if name == "sgd":
        check_one_path(problem, sgd(lr=0.1), [1.0, -0.5], 3, 4, -1.0)
        # with that sign the two sides move together: the difference varies far less
        # than either side (the opposite sign would make it vary more)
        res = coupled_weak_error(se.quadratic([1.0]), sgd(lr=0.05), [1.0], 20, 2000)
        assert np.all(res.variance_reduction()[-1, :2] > 10)
    else:
        opt = adam(lr=0.3, betas=(1 - 0.5 * 0.09, 1 - 0.09), eps=0.1 / 0.3)
        check_one_path(problem, opt, [1.0, -0.5], 3, 4, 1.0)


@pytest.mark.slow
def test_fine_copy_is_simulate():
    """The fine SDE copy is simulate's Euler–Maruyama at dt = h/m on the same streams."""
    problem = se.quadratic([1.0], noise_scale=1 / 0.2)
    opt = rmsprop_at(0.2)
    model = reference_model(problem, opt)
    n_steps, m = 5, 4
    res = coupled_weak_error(problem, opt, [1.0], n_steps, 3, substeps=m, seed=1,
                             path_offset=4, v0=12.5)
    sol = se.simulate(model.sde, model.initial_state([1.0], v0=12.5), (0, n_steps * 0.04),
                      0.04 / m, 3, seed=1, path_offset=4)
    np.testing.assert_allclose(res.mean[-1, ROW["sde"], 0], sol.x[-1, :, 0].mean(),
                               rtol=1e-14)


@pytest.fixture(scope="module")
def quad1():
    return se.quadratic([1.0], noise_scale=1.0)


@pytest.mark.slow
def test_agrees_with_independent_estimate(quad1):
    """RMSprop (σ0 = 1, ε0 = 0.1, c2 = 1, u0 = 0.5) at η = 0.2, T = 1: the coupled,
    extrapolated weak error of E θ₁ and E θ₁² agrees with discrete runs minus the
    exact SDE moments within 3 combined standard errors."""
    from sde_engine.analysis.moments import exact_moments

    lr, n_steps, n = 0.2, 25, 20_000
    problem = quad1.with_noise_scale(1 / lr)
    opt = rmsprop_at(lr)
    v0 = 0.5 / lr**2
    res = coupled_weak_error(problem, opt, [1.0], n_steps, n, substeps=4, seed=5, v0=v0)
    err, se_c = res.error("extrapolated")
    sol = se.run_optimizer(problem, opt, [1.0], n_steps, n, seed=6, v0=v0,
                           observables=("theta", "norm_sq"), record_steps=[n_steps])
    model = reference_model(problem, opt)
    ref = exact_moments(model, model.initial_state([1.0], v0=v0), [n_steps * lr**2])
    indep = sol.mean[-1] - np.array([ref.theta_mean[-1, 0], ref.theta_sq[-1].sum()])
    se_i = np.sqrt(sol.var[-1] / n)
    coupled = err[-1, :2]
    assert np.all(np.abs(coupled - indep) < 3 * np.hypot(se_c[-1, :2], se_i)), \
        (coupled, indep, se_c[-1, :2], se_i)
    # the coupled standard error is far smaller at the same number of paths
    assert np.all(se_c[-1, :2] < se_i / 5)


def test_difference_variance_is_order_h(quad1):
    """Var(φ(θ_k) − φ(X_kh)) for E θ₁ falls like h (4x per halving of η) for RMSprop:
    the squared strong distance of the two sides. The slope of log Var against log h over
    η = 0.2, 0.1, 0.05 is 1 within 3 standard errors (the variances' relative standard
    error is √((κ − 1)/n) with κ ≤ 9, a bound on the kurtosis of the difference)."""
    n = 4000
    lrs = [0.2, 0.1, 0.05]
    var = []
    for lr in lrs:
        problem = quad1.with_noise_scale(1 / lr)
        res = coupled_weak_error(problem, rmsprop_at(lr), [1.0], round(1 / lr**2), n,
                                 substeps=4, seed=2, v0=0.5 / lr**2)
        var.append(res._row("difference")[2][-1, 0])
    h = np.array(lrs) ** 2
    slope = np.polyfit(np.log(h), np.log(var), 1)[0]
    rel = math.sqrt(8 / n)
    slope_se = rel * math.sqrt(2) / math.log(h[0] / h[-1])
    assert abs(slope - 1) < 3 * slope_se + 0.05, (slope, var)


def test_same_numbers_any_threads_and_split(quad1):
    """Path i is path i: threads do not matter, and a run over paths [0, 2) equals the
    mean of the runs over [0, 1) and [1, 2)."""
    problem = quad1.with_noise_scale(5.0)
    opt = rmsprop_at(0.2)
    args = (problem, opt, [1.0], 10, 3000)
    one = coupled_weak_error(*args, n_threads=1, seed=4, v0=12.5)
    two = coupled_weak_error(*args, n_threads=2, seed=4, v0=12.5)
    np.testing.assert_array_equal(one.mean, two.mean)
    np.testing.assert_array_equal(one.m2, two.m2)
    both = coupled_weak_error(problem, opt, [1.0], 10, 2, seed=4, path_offset=10, v0=12.5)
    a = coupled_weak_error(problem, opt, [1.0], 10, 1, seed=4, path_offset=10, v0=12.5)
    b = coupled_weak_error(problem, opt, [1.0], 10, 1, seed=4, path_offset=11, v0=12.5)
    np.testing.assert_allclose(both.mean, (a.mean + b.mean) / 2, rtol=1e-13, atol=1e-15)


def test_non_gaussian_noise_refused():
    for noise in ("rademacher", "skewed"):
        problem = se.quadratic([1.0], noise=noise)
        with pytest.raises(ValueError, match=f"noise '{noise}'.*no pathwise coupling"):
            coupled_weak_error(problem, rmsprop_at(0.2), [1.0], 5, 10)
    X = np.random.default_rng(0).standard_normal((20, 2))
    minibatch = se.problems.linear_regression(X, X[:, 0], 4)
    with pytest.raises(ValueError, match="'minibatch'.*no pathwise coupling"):
        coupled_weak_error(minibatch, rmsprop_at(0.2), [0.0, 0.0], 5, 10)


def test_bad_arguments(quad1):
    with pytest.raises(ValueError, match="`substeps` must be an even integer ≥ 2.*got 3"):
        coupled_weak_error(quad1, rmsprop_at(0.2), [1.0], 5, 10, substeps=3)
    with pytest.raises(ValueError, match="`record_steps`"):
        coupled_weak_error(quad1, rmsprop_at(0.2), [1.0], 5, 10, record_steps=[0])


BASE = dict(algorithm="rmsprop", c2=1.0, horizon=1.0, lrs=[0.2, 0.1], paths=100)


def test_config_estimator_choices():
    """'coupled' refuses non-Gaussian noise and the exact reference; 'auto' falls back to
    the independent estimator there and says why."""
    with pytest.raises(ValueError, match="'coupled' needs Gaussian noise: 'skewed'"):
        build_config({**BASE, "estimator": "coupled", "noise": "skewed"})
    with pytest.raises(ValueError, match="`reference` must be 'simulate'.*got 'exact'"):
        build_config({**BASE, "estimator": "coupled", "reference": "exact"})
    with pytest.raises(ValueError, match="`sde_substeps` must be even"):
        build_config({**BASE, "sde_substeps": 5})
    with pytest.raises(ValueError, match="`estimator` must be one of"):
        build_config({**BASE, "estimator": "paired"})
    kind, note = resolve_estimator(build_config({**BASE, "estimator": "auto",
                                                 "noise": "rademacher"}))
    assert kind == "independent" and "rademacher noise has no pathwise coupling" in note
    assert resolve_estimator(build_config({**BASE, "estimator": "auto"})) == ("coupled", "")


def test_auto_fallback_is_in_the_record():
    """A study with estimator 'auto' on Rademacher noise runs the independent estimator
    and its record says so (given evaluator and reference: no simulation)."""
    from sde_engine.studies.statistics import Moments
    from sde_engine.studies.weak_order import run_order_study

    cfg = build_config({**BASE, "estimator": "auto", "noise": "rademacher"})

    def evaluator(cfg, lr, off, n):
        return Moments.of(np.full((n, len(cfg.tests)), lr**2) + np.arange(n)[:, None] % 2)

    def reference(cfg, lr):
        return np.full(3, 0.5), np.zeros(3), np.zeros(3)

    record = run_order_study(cfg, evaluator=evaluator, reference=reference).record
    assert record["estimator_kind"] == "independent"
    assert any("rademacher noise has no pathwise coupling" in n for n in record["notes"])


# ---- the order study --------------------------------------------------------------------
STUDY = dict(algorithm="rmsprop", c2=1.0, sigma0=1.0, eps0=0.1, u0=[0.5], theta0=[1.0],
             horizon=0.5, lrs=[0.2, 0.1], paths=3000, chunk_paths=2000,
             tests=["theta1", "theta_sq"], estimator="coupled")


def test_coupled_study_resumes_from_its_checkpoints(tmp_path):
    """A coupled study goes through the chunk checkpoints: a rerun reloads every chunk and
    gives the same record; the record holds the coupled errors, the SDE bias and the
    variance-reduction factor (here far above 1)."""
    from sde_engine.studies.weak_order import run_order_study

    cfg = build_config(STUDY)
    first = run_order_study(cfg, str(tmp_path), progress=False, plot=False).record
    again = run_order_study(cfg, str(tmp_path), progress=False, plot=False).record
    assert again["points_from_checkpoint"] == 2
    assert first["estimator_kind"] == "coupled" and "extrapolated" in \
        first["reference"]["method"]
    for test in STUDY["tests"]:
        p, q = first["points"][test], again["points"][test]
        for key in ("error", "stderr", "variance_reduction", "sde_bias"):
            np.testing.assert_array_equal(p[key], q[key])
        assert np.all(np.asarray(p["variance_reduction"]) > 20)
    # extrapolated error = fine-SDE error − SDE bias, and the stderr is that of the pairs
    simulate = run_order_study(build_config({**STUDY, "reference": "simulate"}),
                               str(tmp_path), progress=False, plot=False).record
    p, s = first["points"]["theta1"], simulate["points"]["theta1"]
    np.testing.assert_allclose(p["error"], np.asarray(s["error"]) - np.asarray(s["sde_bias"]),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(s["reference_bias"], np.abs(s["sde_bias"]))
    # other chunks, same paths: only the rounding of the merge differs
    rechunked = run_order_study(build_config({**STUDY, "chunk_paths": 1024}), None,
                                progress=False, plot=False).record
    for key in ("error", "stderr", "variance_reduction"):
        np.testing.assert_allclose(rechunked["points"]["theta1"][key], p[key], rtol=1e-10)


def test_extrapolated_reference_of_the_independent_estimator(monkeypatch):
    """reference = 'extrapolated' takes the 2φ(X^dt) − φ(X^2dt) column of the coupled
    reference chunks, with its own standard error, and reports no first-order bias."""
    from sde_engine.studies import weak_order
    from sde_engine.studies.statistics import Moments

    cfg = build_config({**STUDY, "estimator": "independent", "reference": "extrapolated"})
    rng = np.random.default_rng(1)

    def fake_chunk(cfg, lrs, off, n):
        fine = rng.normal(1.0, 1.0, size=(n, len(lrs), 2))
        coarse = fine + rng.normal(0.1, 0.1, size=fine.shape)
        return Moments.of(np.concatenate([fine, fine - coarse, 2 * fine - coarse], axis=2))

    monkeypatch.setattr(weak_order, "reference_chunk", fake_chunk)
    refs = weak_order.sde_reference(cfg)
    assert "extrapolated" in refs[0][3]
    for value, stderr, bias, _ in refs:
        assert np.all(np.abs(value - 0.9) < 4 * stderr)      # E(2·fine − coarse) = 1 − 0.1
        assert np.all(bias == 0)


@pytest.mark.slow
def test_extrapolated_reference_removes_the_sde_bias():
    """On the RMSprop SDE (exact moments known) at dt = 0.05, Euler–Maruyama is biased by
    many standard errors and the extrapolated reference agrees with the exact value."""
    from sde_engine.studies.weak_order import exact_reference, sde_reference

    base = {**STUDY, "estimator": "independent", "lrs": [0.2], "horizon": 1.0,
            "paths": 200_000, "chunk_paths": 200_000, "sde_dt": 0.05, "tests": ["theta1"]}
    exact = exact_reference(build_config(base), 0.2)
    fine = sde_reference(build_config({**base, "reference": "simulate"}))[0]
    extra = sde_reference(build_config({**base, "reference": "extrapolated"}))[0]
    assert abs(extra[0][0] - exact[0]) < 3 * extra[1][0]
    assert fine[2][0] > 3 * fine[1][0]       # the first-order bias estimate is resolved


@pytest.mark.slow
def test_gaussian_regression_oracle_and_coupling():
    """Logistic regression with noise='gaussian': the oracle has mean ∇f and covariance
    σ²Σ(θ) (within Monte Carlo error), and one coupled bias-corrected Adam path matches
    the hand computation."""
    X, y, _ = se.problems.synthetic_regression(40, 2, kind="logistic", seed=3)
    problem = se.problems.logistic_regression(X, y, 4, noise="gaussian")
    theta = np.array([0.3, -0.2])
    g = problem.sample_gradients(theta, 40_000, seed=2)
    cov = problem.noise_scale**2 * problem.noise_cov(theta)
    se_mean = np.sqrt(np.diag(cov) / len(g))
    assert np.all(np.abs(g.mean(axis=0) - problem.grad_at(theta)) < 4 * se_mean)
    np.testing.assert_allclose(np.cov(g.T), cov, rtol=0.05, atol=1e-4 * np.max(cov))
    opt = adam(lr=0.3, betas=(1 - 0.5 * 0.09, 1 - 0.09), eps=0.1 / 0.3)
    check_one_path(problem, opt, theta, 3, 4, 1.0)
