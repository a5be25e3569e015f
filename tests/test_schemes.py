"""One-step and few-step checks of the schemes against hand computation.

The Brownian increments are taken from the engine itself, two ways: the saved
Brownian path ``W`` at t0 + dt (``save_brownian=True``) and the generator's own
block sequence (``stream_block_normals(seed, path, n, block)``: step k of a
path uses normals k·n .. k·n + n − 1, scaled by √dt, with n the scheme's
``draws_per_step``: m for the Gaussian schemes, m + m(m−1)/2 for ``weak2`` on
general noise). The updates are then recomputed in NumPy from the formulas in
the fixture docstrings (tests/conftest.py) and, for ``weak2``, from the scheme
as Kloeden & Platen write it (a sum over columns, written independently of the
kernel's loops).
"""
import math

import numpy as np
import pytest
from scipy.stats import norm

import sde_engine as se
from solvers.registry import get_scheme
from solvers.rng import stream_block_normals

from conftest import DIAG2_PARAMS, GENERAL_PARAMS

T0 = 0.3          # non-zero start time: checks that steps see t_n, not t - t0
DT = 0.05
SEED = 42
RTOL = 1e-14      # libm sin/cos in Numba and NumPy may differ in the last bit


def diag2_coefficients(t, x, p=DIAG2_PARAMS):
    """f, g, dg/dx of the ``diag2`` fixture for states x of shape (n, 2)."""
    f = np.column_stack([p[0] * x[:, 1] + math.sin(t), -p[1] * x[:, 0] * x[:, 1]])
    g = np.column_stack([p[2] * np.sin(x[:, 0]) + p[4] * t, p[3] * x[:, 1] ** 2 + p[4]])
    dg = np.column_stack([p[2] * np.cos(x[:, 0]), 2.0 * p[3] * x[:, 1]])
    return f, g, dg


def general_coefficients(t, x, p=GENERAL_PARAMS):
    """f (n, 2) and G (n, 2, 3) of the ``general`` fixture."""
    n = x.shape[0]
    f = np.column_stack([-p[0] * x[:, 0] + x[:, 1], -p[0] * x[:, 1] + t])
    G = np.zeros((n, 2, 3))
    G[:, 0, 0] = p[1]
    G[:, 0, 1] = p[2] * x[:, 1]
    G[:, 1, 0] = p[2] * x[:, 0]
    G[:, 1, 1] = p[1]
    G[:, 1, 2] = p[2] * math.cos(t)
    return f, G


def em_diagonal(t, x, dW, dt):
    f, g, _ = diag2_coefficients(t, x)
    return x + f * dt + g * dW


def milstein_derivative(t, x, dW, dt):
    f, g, dg = diag2_coefficients(t, x)
    return x + f * dt + g * dW + 0.5 * g * dg * (dW * dW - dt)


def milstein_derivative_free(t, x, dW, dt):
    f, g, _ = diag2_coefficients(t, x)
    sqrt_dt = math.sqrt(dt)
    _, g_support, _ = diag2_coefficients(t, x + f * dt + g * sqrt_dt)
    return x + f * dt + g * dW + 0.5 * (g_support - g) * (dW * dW - dt) / sqrt_dt


def em_general(t, x, dW, dt):
    f, G = general_coefficients(t, x)
    return x + f * dt + np.einsum("nij,nj->ni", G, dW)


def three_point(dW, dt):
    """√(3dt) sign(ΔW) where |ΔW| > Φ⁻¹(5/6) √dt, else 0."""
    big = np.abs(dW) > norm.ppf(5.0 / 6.0) * math.sqrt(dt)
    return np.where(big, np.sign(dW) * math.sqrt(3.0 * dt), 0.0)


def weak2_diagonal(t, x, dW, dt):
    """Kloeden & Platen (15.1.1) coordinate-wise on ``diag2``."""
    W = three_point(dW, dt)
    sq = math.sqrt(dt)
    f, g, _ = diag2_coefficients(t, x)
    f_bar, _, _ = diag2_coefficients(t + dt, x + f * dt + g * W)
    _, g_plus, _ = diag2_coefficients(t + dt, x + f * dt + g * sq)
    _, g_minus, _ = diag2_coefficients(t + dt, x + f * dt - g * sq)
    return (x + 0.5 * (f_bar + f) * dt + 0.25 * (g_plus + g_minus + 2 * g) * W
            + 0.25 * (g_plus - g_minus) * (W * W - dt) / sq)


def weak2_general(t, x, dW, dt, m=3):
    """Kloeden & Platen's explicit order 2.0 weak scheme on ``general``: columns
    j = 0..m−1 of dW give the three-point Ŵ, the others one sign per pair r < j."""
    W = three_point(dW[:, :m], dt)
    pairs = [(r, j) for r in range(m) for j in range(r + 1, m)]
    V = np.zeros((x.shape[0], m, m))
    for p, (r, j) in enumerate(pairs):
        V[:, r, j] = dt * np.where(dW[:, m + p] >= 0.0, 1.0, -1.0)
        V[:, j, r] = -V[:, r, j]
    sq = math.sqrt(dt)
    f, G = general_coefficients(t, x)
    f_bar, _ = general_coefficients(t + dt, x + f * dt + np.einsum("nij,nj->ni", G, W))
    out = x + 0.5 * (f_bar + f) * dt
    for j in range(m):
        w = W[:, j:j + 1]
        g_plus = general_coefficients(t + dt, x + f * dt + G[:, :, j] * sq)[1][:, :, j]
        g_minus = general_coefficients(t + dt, x + f * dt - G[:, :, j] * sq)[1][:, :, j]
        out += 0.25 * ((g_plus + g_minus + 2 * G[:, :, j]) * w
                       + (g_plus - g_minus) * (w * w - dt) / sq)
        for r in range(m):
            if r == j:
                continue
            u_plus = general_coefficients(t, x + G[:, :, r] * sq)[1][:, :, j]
            u_minus = general_coefficients(t, x - G[:, :, r] * sq)[1][:, :, j]
            area = w * W[:, r:r + 1] + V[:, r, j][:, None]
            out += 0.25 * ((u_plus + u_minus - 2 * G[:, :, j]) * w
                           + (u_plus - u_minus) * area / sq)
    return out


@pytest.fixture(scope="module")
def x0_per_path():
    rng = np.random.default_rng(0)
    return rng.uniform(-1.0, 1.5, size=(7, 2))


CASES = [
    ("diag2", "euler_maruyama", em_diagonal),
    ("diag2", "milstein", milstein_derivative),
    ("diag2_rk", "milstein", milstein_derivative_free),
    ("general", "euler_maruyama", em_general),
]


@pytest.mark.parametrize("fixture, method, update", CASES)
def test_one_step_with_saved_brownian_increment(request, fixture, method, update, x0_per_path):
    sde = request.getfixturevalue(fixture)
    n = x0_per_path.shape[0]
    sol = se.simulate(sde, x0_per_path, (T0, T0 + DT), DT, n, method=method, seed=SEED,
                      save_brownian=True)
    assert sol.W.shape == (2, n, sde.noise_dim)
    np.testing.assert_array_equal(sol.W[0], 0.0)
    np.testing.assert_array_equal(sol.x[0], x0_per_path)
    expected = update(T0, x0_per_path, sol.W[1], DT)
    np.testing.assert_allclose(sol.x[1], expected, rtol=RTOL, atol=1e-15)


WEAK2_CASES = [
    ("diag2", "weak2", weak2_diagonal),
    ("general", "weak2", weak2_general),
]


@pytest.mark.parametrize("fixture, method, update", CASES + WEAK2_CASES)
def test_three_steps_with_generator_normals(request, fixture, method, update, x0_per_path):
    """Increments rebuilt from the streams; also checks t_n and the draw order."""
    sde = request.getfixturevalue(fixture)
    n, n_steps, offset = x0_per_path.shape[0], 3, 1000
    draws = get_scheme(method).draws_per_step(sde)
    sol = se.simulate(sde, x0_per_path, (T0, T0 + n_steps * DT), DT, n, method=method,
                      seed=SEED, path_offset=offset,
                      save_at=T0 + DT * np.arange(n_steps + 1))
    z = np.array([stream_block_normals(SEED, offset + p, n_steps * draws, 1) for p in range(n)])
    x = x0_per_path
    for k in range(n_steps):
        dW = z[:, k * draws:(k + 1) * draws] * math.sqrt(DT)
        x = update(T0 + k * DT, x, dW, DT)
        np.testing.assert_allclose(sol.x[k + 1], x, rtol=RTOL, atol=1e-15)


def test_weak2_draws_per_step():
    from conftest import _general_diffusion, _general_drift

    for m, draws in ((1, 1), (2, 3), (3, 6), (4, 10)):
        sde = se.SDE(_general_drift, _general_diffusion, dim=2, noise="general", noise_dim=m)
        assert get_scheme("weak2").draws_per_step(sde) == draws
    assert get_scheme("weak2").draws_per_step(se.gbm(dim=3)) == 3


def test_weak2_saved_w_is_its_three_point_walk(gbm):
    """W holds Σ Ŵ: multiples of √(3dt), one step's Ŵ taking ±√(3dt) with
    probability 1/6 each (binomial standard errors, 5σ)."""
    n, dt = 60_000, 0.04
    sol = se.simulate(gbm, [1.0], (0.0, 2 * dt), dt, n, method="weak2", seed=SEED,
                      save_at=[0.0, dt, 2 * dt], save_brownian=True)
    units = sol.W[:, :, 0] / math.sqrt(3 * dt)
    np.testing.assert_allclose(units, np.round(units), atol=1e-12)
    z = np.array([stream_block_normals(SEED, p, 1, 1)[0] for p in range(50)])
    np.testing.assert_allclose(sol.W[1, :50, 0], three_point(z * math.sqrt(dt), dt), rtol=RTOL)
    step1 = np.round(units[1])
    for value, prob in ((-1, 1 / 6), (0, 2 / 3), (1, 1 / 6)):
        freq = np.mean(step1 == value)
        assert abs(freq - prob) < 5 * math.sqrt(prob * (1 - prob) / n), (value, freq)
    assert set(np.unique(np.round(units[2]))) <= {-2, -1, 0, 1, 2}


def test_weak2_is_reproducible_across_threads_prefixes_and_splits(general):
    """The extra (two-point) draws come from the same per-path streams: path i is
    path i for any thread count, number of paths (crossing chunks) or split."""
    kwargs = dict(x0=[0.3, -0.2], t_span=(0.0, 1.0), dt=0.125, method="weak2", seed=7,
                  save_at=np.linspace(0.0, 1.0, 3), save_brownian=True)
    whole = se.simulate(general, n_paths=2100, n_threads=2, **kwargs)
    one = se.simulate(general, n_paths=2100, n_threads=1, **kwargs)
    np.testing.assert_array_equal(one.x, whole.x)
    head = se.simulate(general, n_paths=1500, **kwargs)
    tail = se.simulate(general, n_paths=600, path_offset=1500, **kwargs)
    np.testing.assert_array_equal(np.concatenate([head.x, tail.x], axis=1), whole.x)
    np.testing.assert_array_equal(np.concatenate([head.W, tail.W], axis=1), whole.W)
    assert np.std(whole.x[-1]) > 0.05


def test_weak2_refined_brownian_path_maps_the_summed_increment(gbm):
    """With brownian_dt = dt/2, Ŵ is the three-point map of the summed fine increment."""
    dt, n = 0.1, 40
    sol = se.simulate(gbm, [1.0], (0.0, dt), dt, n, method="weak2", seed=SEED,
                      brownian_dt=dt / 2, save_brownian=True)
    z = np.array([stream_block_normals(SEED, p, 2, 1) for p in range(n)])
    dW = (z[:, 0] + z[:, 1]) * math.sqrt(dt / 2)
    np.testing.assert_allclose(sol.W[1, :, 0], three_point(dW, dt), rtol=RTOL)


def test_brownian_increment_is_scaled_first_normal(diag2):
    sol = se.simulate(diag2, [0.1, 0.2], (0.0, DT), DT, 5, seed=SEED, save_brownian=True)
    for p in range(5):
        np.testing.assert_array_equal(sol.W[1, p],
                                      stream_block_normals(SEED, p, 2, 2) * math.sqrt(DT))


def test_milstein_derivative_free_tracks_analytic_derivative(diag2, diag2_rk, x0_per_path):
    """The two Milstein forms differ by O(dt^{3/2}) per step: halving dt divides the
    gap by ~2^{3/2} (checked on one step with the same normals)."""
    n = x0_per_path.shape[0]
    gaps = []
    for dt in (0.04, 0.01):
        a = se.simulate(diag2, x0_per_path, (T0, T0 + dt), dt, n, method="milstein",
                        seed=SEED).x[1]
        b = se.simulate(diag2_rk, x0_per_path, (T0, T0 + dt), dt, n, method="milstein",
                        seed=SEED).x[1]
        gaps.append(np.max(np.abs(a - b)))
    assert gaps[1] > 0
    order = math.log(gaps[0] / gaps[1]) / math.log(4.0)
    assert 1.3 < order < 1.7


ADDITIVE = np.array([0.7, 0.3, 0.0, 0.0, 0.4])   # p2 = p3 = 0: g = (p4 t, p4)


@pytest.mark.parametrize("milstein_fixture", ["diag2", "diag2_rk"])
def test_milstein_equals_em_when_diffusion_does_not_depend_on_x(request, diag2,
                                                                milstein_fixture):
    """With g independent of x the Milstein correction (analytic ∂g/∂x = 0, or the
    finite difference g(x̂) − g(x) = 0) vanishes exactly: same paths as EM."""
    kwargs = dict(x0=[0.5, -0.2], t_span=(0.0, 1.0), dt=2**-6, n_paths=300, seed=3,
                  save_at=np.linspace(0.0, 1.0, 9))
    em = se.simulate(diag2.with_params(ADDITIVE), method="euler_maruyama", **kwargs)
    sde = request.getfixturevalue(milstein_fixture).with_params(ADDITIVE)
    mil = se.simulate(sde, method="milstein", **kwargs)
    np.testing.assert_array_equal(mil.x, em.x)
    assert np.std(mil.x[-1]) > 0.1    # the noise is really there
