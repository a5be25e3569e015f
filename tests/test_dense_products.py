"""Small dense products in user functions (issue #17, item 3).

``sde_engine.dense`` writes A x into ``out`` without allocating; a user function
that allocates per call (``A @ x``) is found from Numba's typed IR and named in an
``AllocationWarning`` before the run. The linear SDE is Rößler (2010) eq. 7.4
as in sdeint's tests: 5-D, 4 noises, dX = A X dt + Σ_k B_k X dW_k.
"""
import warnings

import numpy as np
import pytest
from numba import njit

import sde_engine as se
from sde_engine.dense import matvec, matvec_add, matvec_column
from sde_engine.user_functions import AllocationWarning, allocating_lines, sde_function_types

D, M = 5, 4
A = np.full((D, D), 0.05) + np.diag(np.full(D, -1.55))
B = np.stack([np.full((D, D), 0.01) + np.diag(np.full(D, 0.19 + 0.01 * k)) for k in range(M)])


@njit
def _products(a, x, out, g, h):
    matvec(a, x, out)
    matvec_add(a, x, g[:, 1])
    matvec_column(a, x, h, 2)


def test_matvec_matvec_add_and_matvec_column_against_numpy():
    rng = np.random.default_rng(3)
    a, x = rng.normal(size=(3, 4)), rng.normal(size=4)
    out = np.empty(3)
    g, h = rng.normal(size=(3, 2)), rng.normal(size=(3, 3))
    g0, h0 = g.copy(), h.copy()
    _products(a, x, out, g, h)
    np.testing.assert_allclose(out, a @ x, rtol=1e-14)
    np.testing.assert_allclose(g[:, 1], g0[:, 1] + a @ x, rtol=1e-14)   # a strided view
    np.testing.assert_array_equal(g[:, 0], g0[:, 0])
    np.testing.assert_allclose(h[:, 2], a @ x, rtol=1e-14)
    np.testing.assert_array_equal(h[:, :2], h0[:, :2])


def _drift_loops(t, x, p, out):
    matvec(A, x, out)


def _diffusion_loops(t, x, p, out):
    for k in range(out.shape[1]):
        matvec_column(B[k], x, out, k)


def _drift_at(t, x, p, out):
    out[:] = A @ x


def _diffusion_at(t, x, p, out):
    for k in range(out.shape[1]):
        out[:, k] = B[k] @ x


def test_allocating_lines_finds_the_product_and_not_the_views():
    first = _drift_at.__code__.co_firstlineno
    assert allocating_lines(_drift_at, sde_function_types(1)) == [first + 1]
    assert allocating_lines(_diffusion_at, sde_function_types(2)) == [first + 6]
    assert allocating_lines(_diffusion_loops, sde_function_types(2)) == []


def _simulate(drift, diffusion):
    sde = se.SDE(drift, diffusion, dim=D, noise="general", noise_dim=M)
    return se.simulate(sde, np.ones(D), (0.0, 0.5), 0.05, 16, seed=4, n_threads=1)


def test_allocating_user_functions_warn_once_and_give_the_same_paths():
    with warnings.catch_warnings():
        warnings.simplefilter("error", AllocationWarning)
        fast = _simulate(_drift_loops, _diffusion_loops)
    with pytest.warns(AllocationWarning) as caught:
        slow = _simulate(_drift_at, _diffusion_at)
    messages = [str(w.message) for w in caught if w.category is AllocationWarning]
    assert len(messages) == 2
    assert messages[0].startswith("`drift` (_drift_at in test_dense_products.py) makes a new "
                                  "array on every call (line")
    assert "sde_engine.dense.matvec" in messages[1] and "`diffusion`" in messages[1]
    # BLAS may sum in another order: equal to rounding
    np.testing.assert_allclose(slow.x, fast.x, rtol=1e-12)
