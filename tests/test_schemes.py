"""One-step and few-step checks of the schemes against hand computation.

The Brownian increments are taken from the engine itself, two ways: the saved
Brownian path ``W`` at t0 + dt (``save_brownian=True``) and the generator's own
block sequence (``stream_block_normals(seed, path, n, block)``: step k of a
path uses normals k·m .. k·m + m − 1, scaled by √dt). The updates are then recomputed in NumPy
from the formulas in the fixture docstrings (tests/conftest.py).
"""
import math

import numpy as np
import pytest

import sde_engine as se
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


@pytest.mark.parametrize("fixture, method, update", CASES)
def test_three_steps_with_generator_normals(request, fixture, method, update, x0_per_path):
    """Increments rebuilt from the streams; also checks t_n and the draw order."""
    sde = request.getfixturevalue(fixture)
    n, m, n_steps, offset = x0_per_path.shape[0], sde.noise_dim, 3, 1000
    sol = se.simulate(sde, x0_per_path, (T0, T0 + n_steps * DT), DT, n, method=method,
                      seed=SEED, path_offset=offset,
                      save_at=T0 + DT * np.arange(n_steps + 1))
    z = np.array([stream_block_normals(SEED, offset + p, n_steps * m, 1) for p in range(n)])
    x = x0_per_path
    for k in range(n_steps):
        dW = z[:, k * m:(k + 1) * m] * math.sqrt(DT)
        x = update(T0 + k * DT, x, dW, DT)
        np.testing.assert_allclose(sol.x[k + 1], x, rtol=RTOL, atol=1e-15)


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
