"""The SDE reference of a weak-order study by multilevel Monte Carlo (``reference = "mlmc"``).

For each learning rate's SDE time t and each test function φ, E φ(X_t) is
:func:`sde_engine.expectation` with Euler–Maruyama, level 0 at the smallest
discrete step h of the study (so every level is at least as fine as the
discrete runs), to the root-mean-square error tol = max(:data:`ATOL`,
:data:`RTOL`·|E φ|). The reference's stderr is the estimator's and its bias
the estimated bias of the finest level. Streams (seed, (ℓ + 1)·2^44 + i) are
disjoint from the discrete runs and from the simulated reference.
"""
import math

import numpy as np

from ..expectation import expectation

RTOL = 1e-3
ATOL = 1e-4


def theta1(x):
    return x[0]


def theta_sq(x):
    total = 0.0
    for i in range(x.shape[0]):
        total += x[i] * x[i]
    return total


def theta1_cubed(x):
    return x[0] * x[0] * x[0]


#: φ of each test name of :data:`~.order_config.TESTS`; "loss" is the problem's f.
TEST_FUNCTIONS = {"theta1": theta1, "theta_sq": theta_sq, "theta1_cubed": theta1_cubed}


def mlmc_reference(points, tests, h_min, seed, *, checkpoint_dir=None, executor=None,
                   rtol=None, atol=None):
    """E φ(X_t) for each point and test.

    Parameters
    ----------
    points : list of (model, x0, t)
        Optimizer model (its ``.sde`` and ``.problem``), SDE initial state and time.
    tests : sequence of str
        Test names (``theta1``, ``theta_sq``, ``loss``, ``theta1_cubed``).
    h_min : float
        Smallest discrete step of the study; level 0 has steps of at most h_min.
    seed : int
    checkpoint_dir, executor
        As for :func:`sde_engine.expectation`.
    rtol, atol : float, optional
        The RMSE asked for (default :data:`RTOL`, :data:`ATOL`).

    Returns
    -------
    list of (value, stderr, bias, method)
        One per point; arrays of shape (n_tests,).
    """
    rtol = RTOL if rtol is None else rtol
    atol = ATOL if atol is None else atol
    out = []
    cache = {}
    for model, x0, t in points:
        values, errors, biases = [], [], []
        steps0 = max(1, math.ceil(t / h_min - 1e-9))
        for test in tests:
            phi = model.problem.loss if test == "loss" else TEST_FUNCTIONS[test]
            key = (id(model.sde.drift_jit), tuple(model.sde.params), tuple(np.ravel(x0)), t,
                   test)
            if key not in cache:
                cache[key] = expectation(model, phi, x0, t, rtol=rtol, atol=atol,
                                         steps0=steps0, seed=seed,
                                         checkpoint_dir=checkpoint_dir, executor=executor)
            r = cache[key]
            values.append(r.estimate)
            errors.append(r.stderr)
            biases.append(r.bias)
        method = (f"multilevel Monte Carlo (Euler–Maruyama, level 0 at dt ≤ {h_min:.4g}, "
                  f"rmse ≤ max({atol:g}, {rtol:g}·|E φ|))")
        out.append((np.array(values), np.array(errors), np.array(biases), method))
    return out
