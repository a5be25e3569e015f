"""``se.extrapolate``: Richardson (Talay–Tubaro) extrapolation on coupled paths.

What it computes is checked against two ``simulate`` runs on one Brownian
path; its slope 2 is in tests/test_scheme_orders.py (the weak order 2 table).
"""
import math

import numpy as np
import pytest

import sde_engine as se
from sde_engine.extrapolation import extrapolate

SEED = 11
DT = 0.125


def _square(t, x, params, out):
    out[0] = x[0] * x[0]
    out[1] = t * x[0]


def test_values_are_the_richardson_combination_of_coupled_runs(gbm):
    n = 3000
    save = [0.0, 0.5, 1.0]
    ex = extrapolate(gbm, [1.0], (0.0, 1.0), DT, n, seed=SEED, save_at=save,
                     observables=_square, n_observables=2, keep_paths=True)
    fine = se.simulate(gbm, [1.0], (0.0, 1.0), DT, n, seed=SEED, save_at=save,
                       brownian_dt=DT, save_brownian=True)
    coarse = se.simulate(gbm, [1.0], (0.0, 1.0), 2 * DT, n, seed=SEED, save_at=save,
                         brownian_dt=DT)
    t = np.asarray(save)[:, None]

    def phi(x):
        return np.stack([x[..., 0] ** 2, t * x[..., 0]], axis=-1)

    values = 2 * phi(fine.x) - phi(coarse.x)
    np.testing.assert_allclose(ex.values, values, rtol=1e-13)
    np.testing.assert_allclose(ex.W, fine.W)
    np.testing.assert_allclose(ex.mean, values.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(ex.stderr, values.std(axis=1, ddof=1) / math.sqrt(n),
                               rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(ex.fine_mean, phi(fine.x).mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(ex.fine_bias, ex.fine_mean - ex.coarse_mean, rtol=1e-9,
                               atol=1e-15)
    assert ex.order == 1.0 and ex.n_used == n and len(ex.diverged) == 0
    # the coupling: Var D close to Var φ(X^dt), not 5 times it as for independent runs
    ratio = ex.stderr[-1] / (phi(fine.x)[-1].std(axis=0, ddof=1) / math.sqrt(n))
    assert np.all(ratio < 1.3), ratio


def test_batches_and_threads_do_not_change_the_numbers(gbm):
    kwargs = dict(x0=[1.0], t_span=(0.0, 1.0), dt=DT, n_paths=2500, seed=SEED)
    whole = extrapolate(gbm, **kwargs)
    split = extrapolate(gbm, batch_paths=1000, n_threads=1, **kwargs)
    np.testing.assert_allclose(split.mean, whole.mean, rtol=1e-13)
    np.testing.assert_allclose(split.stderr, whole.stderr, rtol=1e-10)
    head = extrapolate(gbm, **{**kwargs, "n_paths": 1000}, keep_paths=True)
    full = extrapolate(gbm, **kwargs, keep_paths=True)
    np.testing.assert_array_equal(full.values[:, :1000], head.values)


def test_order_sets_the_weights(gbm):
    one = extrapolate(gbm, [1.0], (0.0, 1.0), DT, 500, seed=SEED)
    two = extrapolate(gbm, [1.0], (0.0, 1.0), DT, 500, seed=SEED, order=2.0)
    np.testing.assert_allclose(two.mean, (4 * one.fine_mean - one.coarse_mean) / 3,
                               rtol=1e-12)


@pytest.mark.parametrize("kwargs, message", [
    (dict(dt=0.3), r"`2\*dt` must divide"),
    (dict(save_at=[0.0, 0.125]), "`save_at` times must lie on the step grid"),
    (dict(n_observables=2), "`n_observables` given"),
    (dict(order=0.0), "`order`"),
    (dict(method="heun"), "`method` must be one of"),
    (dict(brownian_dt=0.1), "`brownian_dt`"),
    (dict(on_divergence="ignore"), "`on_divergence`"),
    (dict(x0=[1.0, 2.0]), "`x0`"),
])
def test_bad_arguments_are_refused(gbm, kwargs, message):
    base = dict(x0=[1.0], t_span=(0.0, 1.0), dt=DT, n_paths=10)
    with pytest.raises(ValueError, match=message):
        extrapolate(gbm, **{**base, **kwargs})


def test_diverging_paths_are_reported_not_averaged(cubic):
    """dX = X³ dt: Euler from x0 = 3 (path 1) overflows at the 8th fine step of 1/8
    (3, 6.4, 39, 7.3e3, 4.9e10, 1.5e31, 4.2e92, 9.3e276, inf) though not on the
    coarse grid; x0 = 0.1 (paths 0, 2) stays small."""
    x0 = np.array([[0.1], [3.0], [0.1]])
    with pytest.raises(se.DivergenceError):
        extrapolate(cubic, x0, (0.0, 1.0), 0.125, 3)
    ex = extrapolate(cubic, x0, (0.0, 1.0), 0.125, 3, on_divergence="drop")
    assert ex.n_used == 2 and list(ex.diverged.paths) == [1]
    assert np.all(np.isfinite(ex.mean))
    with pytest.warns(RuntimeWarning, match="non-finite"):
        extrapolate(cubic, x0, (0.0, 1.0), 0.125, 3, on_divergence="warn")
