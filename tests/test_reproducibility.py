"""Same seed, same numbers: across thread counts, path counts, path offsets,
and step sizes sharing one Brownian path.

Path p of a run uses the stream (seed, path_offset + p) and paths are grouped
in chunks of CHUNK_PATHS whatever the thread count; the sizes below straddle
chunk boundaries (5000 = 4 full chunks + 904, splits at 1500) on purpose.
"""
import math

import numpy as np
import pytest

import sde_engine as se
from solvers.driver import CHUNK_PATHS
from solvers.rng import stream_block_normals

N = 5000
SPLIT = 1500
SEED = 99
SAVE = np.linspace(0.0, 1.0, 5)

RUNS = [("gbm", "euler_maruyama"), ("gbm", "milstein"), ("general", "euler_maruyama")]


def run(sde, method, n_paths, **kwargs):
    x0 = np.full(sde.dim, 0.7)
    return se.simulate(sde, x0, (0.0, 1.0), 2**-6, n_paths, method=method, seed=SEED,
                       save_at=SAVE, save_brownian=True, **kwargs)


def test_sizes_straddle_chunks():
    assert N % CHUNK_PATHS != 0 and SPLIT % CHUNK_PATHS != 0 and N > 2 * CHUNK_PATHS


@pytest.mark.parametrize("fixture, method", RUNS)
def test_thread_count_does_not_change_paths(request, fixture, method):
    sde = request.getfixturevalue(fixture)
    one = run(sde, method, N, n_threads=1)
    two = run(sde, method, N, n_threads=2)
    np.testing.assert_array_equal(one.x, two.x)
    np.testing.assert_array_equal(one.W, two.W)
    assert np.all(np.isfinite(one.x)) and np.std(one.x[-1]) > 0


@pytest.mark.parametrize("fixture, method", RUNS)
def test_path_i_does_not_depend_on_n_paths(request, fixture, method):
    sde = request.getfixturevalue(fixture)
    many = run(sde, method, N)
    few = run(sde, method, 10)
    np.testing.assert_array_equal(few.x, many.x[:, :10])
    np.testing.assert_array_equal(few.W, many.W[:, :10])


@pytest.mark.parametrize("fixture, method", RUNS)
def test_path_offset_splits_a_run(request, fixture, method):
    sde = request.getfixturevalue(fixture)
    whole = run(sde, method, N)
    head = run(sde, method, SPLIT)
    tail = run(sde, method, N - SPLIT, path_offset=SPLIT)
    np.testing.assert_array_equal(np.concatenate([head.x, tail.x], axis=1), whole.x)
    np.testing.assert_array_equal(np.concatenate([head.W, tail.W], axis=1), whole.W)


def test_path_offset_with_per_path_initial_states(gbm):
    x0 = np.linspace(0.5, 2.0, N).reshape(N, 1)
    kwargs = dict(t_span=(0.0, 1.0), dt=2**-5, seed=SEED)
    whole = se.simulate(gbm, x0, n_paths=N, **kwargs)
    tail = se.simulate(gbm, x0[SPLIT:], n_paths=N - SPLIT, path_offset=SPLIT, **kwargs)
    np.testing.assert_array_equal(tail.x, whole.x[:, SPLIT:])


def test_different_seeds_give_different_paths(gbm):
    a = se.simulate(gbm, [1.0], (0.0, 1.0), 2**-5, 100, seed=1).x[-1]
    b = se.simulate(gbm, [1.0], (0.0, 1.0), 2**-5, 100, seed=2).x[-1]
    assert not np.any(a == b)


@pytest.mark.parametrize("fixture", ["gbm", "general"])
def test_coarse_and_fine_steps_share_the_brownian_path(request, fixture):
    """dt and dt/4 with brownian_dt = dt/4: W at the common times agrees to
    rounding (the coarse increment is the sum of the four fine ones)."""
    sde = request.getfixturevalue(fixture)
    fine_dt = 2**-8
    common = np.linspace(0.0, 1.0, 17)
    kwargs = dict(t_span=(0.0, 1.0), n_paths=300, seed=SEED, save_at=common,
                  save_brownian=True, brownian_dt=fine_dt)
    x0 = np.full(sde.dim, 0.7)
    coarse = se.simulate(sde, x0, dt=4 * fine_dt, **kwargs)
    fine = se.simulate(sde, x0, dt=fine_dt, **kwargs)
    np.testing.assert_allclose(coarse.W, fine.W, rtol=0, atol=1e-13)
    # the fine run's Brownian path is the plain one (refinement 1)
    plain = se.simulate(sde, x0, dt=fine_dt, **{**kwargs, "brownian_dt": None})
    np.testing.assert_array_equal(plain.W, fine.W)
    # ... and at W_1 ~ N(0, 1) per coordinate: a real Brownian path
    assert abs(np.var(fine.W[-1]) - 1.0) < 4 * math.sqrt(2 / fine.W[-1].size)


def test_coarse_increment_is_the_sum_of_fine_normals_in_draw_order(general):
    """Step k of a run with refinement r sums normals (k r + i) m + j, i < r,
    for noise coordinate j (fine-step-major order), times √brownian_dt."""
    m, refine, fine_dt, n_steps = general.noise_dim, 4, 2**-6, 3
    dt = refine * fine_dt
    sol = se.simulate(general, [0.1, 0.2], (0.0, n_steps * dt), dt, 4, seed=SEED,
                      save_at=dt * np.arange(n_steps + 1), save_brownian=True,
                      brownian_dt=fine_dt)
    for p in range(4):
        z = stream_block_normals(SEED, p, n_steps * refine * m, 5).reshape(n_steps, refine, m)
        W = np.zeros(m)
        for k in range(n_steps):
            dW = np.zeros(m)
            for i in range(refine):
                dW += z[k, i]
            W = W + dW * math.sqrt(fine_dt)
            np.testing.assert_array_equal(sol.W[k + 1, p], W)
