"""Shared SDE fixtures for the engine's tests.

Numba compiles one driver per (SDE object, scheme, observables) the first time
it is used, a few seconds each. The SDEs below are therefore built once per
session (session-scoped fixtures) from module-level functions, and tests that
need other parameter values use ``SDE.with_params``, which shares the compiled
code. Hand computations in the tests re-derive the same formulas in NumPy; the
coefficients are written out in each fixture's docstring.
"""
import math

import numpy as np
import pytest

import sde_engine as se

# --- a 2-D diagonal-noise SDE with time dependence and coupled drift ---------
DIAG2_PARAMS = np.array([0.7, 0.3, 0.9, 0.4, 0.2])


def _diag2_drift(t, x, p, out):
    out[0] = p[0] * x[1] + math.sin(t)
    out[1] = -p[1] * x[0] * x[1]


def _diag2_diffusion(t, x, p, out):
    out[0] = p[2] * math.sin(x[0]) + p[4] * t
    out[1] = p[3] * x[1] * x[1] + p[4]


def _diag2_diffusion_dx(t, x, p, out):
    out[0] = p[2] * math.cos(x[0])
    out[1] = 2.0 * p[3] * x[1]


# --- a 2-D SDE driven by a 3-D Brownian motion (general noise) ---------------
GENERAL_PARAMS = np.array([0.5, 0.3, 0.2])


def _general_drift(t, x, p, out):
    out[0] = -p[0] * x[0] + x[1]
    out[1] = -p[0] * x[1] + t


def _general_diffusion(t, x, p, out):
    out[0, 0] = p[1]
    out[0, 1] = p[2] * x[1]
    out[0, 2] = 0.0
    out[1, 0] = p[2] * x[0]
    out[1, 1] = p[1]
    out[1, 2] = p[2] * math.cos(t)


# --- dX = a X^3 dt + b dW: explodes in finite time (divergence handling) -----
def _cubic_drift(t, x, p, out):
    out[0] = p[0] * x[0] * x[0] * x[0]


def _cubic_diffusion(t, x, p, out):
    out[0] = p[1]


def model_coefficients(model, x):
    """Drift (dim,) and diffusion (dim, noise_dim) of an optimizer model's SDE at x, t = 0."""
    sde = model.sde
    f, g = np.empty(sde.dim), np.empty((sde.dim, sde.noise_dim))
    sde.drift_jit(0.0, np.asarray(x, dtype=float), sde.params, f)
    sde.diffusion_jit(0.0, np.asarray(x, dtype=float), sde.params, g)
    return f, g


def moments_observable(t, x, params, out):
    """Observables (x_0, x_0^2): streaming mean and variance of the first coordinate."""
    out[0] = x[0]
    out[1] = x[0] * x[0]


@pytest.fixture(scope="session")
def gbm():
    """GBM dX = 0.5 X dt + 0.8 X dW (dim 1) with ``diffusion_dx``."""
    return se.gbm(mu=0.5, sigma=0.8, dim=1)


@pytest.fixture(scope="session")
def gbm_rk(gbm):
    """The same GBM without ``diffusion_dx``: Milstein uses its derivative-free form."""
    return se.SDE(gbm.drift, gbm.diffusion, dim=1, noise="diagonal", params=gbm.params,
                  name="gbm_rk")


@pytest.fixture(scope="session")
def ou():
    """Ornstein–Uhlenbeck dX = 1.0 (0 - X) dt + 0.5 dW (dim 1)."""
    return se.ornstein_uhlenbeck(theta=1.0, mean=0.0, sigma=0.5, dim=1)


@pytest.fixture(scope="session")
def diag2():
    """2-D diagonal noise, parameters p = DIAG2_PARAMS::

        f = (p0 x1 + sin t,  -p1 x0 x1)
        g = (p2 sin x0 + p4 t,  p3 x1^2 + p4)      (g_i depends on x_i only)
        dg/dx diagonal = (p2 cos x0,  2 p3 x1)

    With p2 = p3 = 0 the diffusion does not depend on x (additive noise).
    """
    return se.SDE(_diag2_drift, _diag2_diffusion, dim=2, noise="diagonal",
                  params=DIAG2_PARAMS, diffusion_dx=_diag2_diffusion_dx, name="diag2")


@pytest.fixture(scope="session")
def diag2_rk():
    """``diag2`` without ``diffusion_dx`` (derivative-free Milstein)."""
    return se.SDE(_diag2_drift, _diag2_diffusion, dim=2, noise="diagonal",
                  params=DIAG2_PARAMS, name="diag2_rk")


@pytest.fixture(scope="session")
def general():
    """dim 2, noise_dim 3, parameters p = GENERAL_PARAMS::

        f = (-p0 x0 + x1,  -p0 x1 + t)
        G = [[p1,     p2 x1, 0         ],
             [p2 x0,  p1,    p2 cos t  ]]
    """
    return se.SDE(_general_drift, _general_diffusion, dim=2, noise="general", noise_dim=3,
                  params=GENERAL_PARAMS, name="general")


@pytest.fixture(scope="session")
def cubic():
    """dX = p0 X^3 dt + p1 dW (dim 1); with p1 = 0 its blow-up step is deterministic."""
    return se.SDE(_cubic_drift, _cubic_diffusion, dim=1, noise="diagonal",
                  params=np.array([1.0, 0.0]), name="cubic")


@pytest.fixture(scope="session")
def moments():
    """The observables function (x_0, x_0^2); pass ``n_observables=2``."""
    return moments_observable
