"""Convergence orders of every scheme in the registry: ONE table.

Each row (scheme, problem, kind, expected order) runs a small convergence study
with a fixed seed, fits |error| ≈ C h^p with
:func:`sde_engine.analysis.fit_order` (weighted least squares in log–log space,
Monte Carlo standard errors propagated; the interval is widened by the Birge
ratio when residuals exceed the noise) and asserts

    ci_low − ALLOWANCE ≤ expected order ≤ ci_high + ALLOWANCE,

with every point above the noise floor and an interval narrow enough
(half-width < MAX_HALF_WIDTH) that a scheme of the wrong order fails.

Why ALLOWANCE = 0.05: the confidence interval covers Monte Carlo noise only. On
step sizes this coarse the error is not yet a pure power law: its next term is
relative O(h^{1/2}) (strong) or O(h) (weak). For the weak rows the noise-free
EM errors have closed forms; fitted on the table's grids with the studies'
relative weights their slopes are 0.964 (GBM mean) and 1.030 (OU mean), see
``test_allowance_covers_exact_pre_asymptotic_bias``. For the strong rows,
studies at 4 seeds gave slopes 0.49 (EM), 0.99 (Milstein) and 1.015
(derivative-free Milstein), stable across seeds, i.e. offsets ≤ 0.02 that are
bias, not noise. 0.05 covers these offsets with a margin and is still 10× smaller
than the gap between orders 0.5 and 1.

Studies:

* strong — GBM, T = 1: E|X^h_T − X_T| with X_T = x0 exp((μ − σ²/2)T + σ W_T)
  evaluated on the same Brownian path (``save_brownian``, shared
  ``brownian_dt``), so only the discretisation error is measured;
* weak, GBM — E X^h_T − E X_T estimated on coupled paths as the mean of
  X^h_T − X_T(W_T); E X_T(W_T) = x0 e^{μT} exactly, which is checked too;
* weak, OU — E X^h_T from the streaming observables minus the exact mean
  (``ou_moments``).

All levels of a study share one Brownian path per sample path (common random
numbers), which makes the errors of different h positively correlated; the fit
treats them as independent, which overstates the slope's noise (conservative).
"""
import math

import numpy as np
import pytest

import sde_engine as se
from sde_engine.analysis import fit_order

ALLOWANCE = 0.05
MAX_HALF_WIDTH = 0.1
SEED = 20240601
T1 = 1.0
X0_GBM = 1.0
X0_OU = 5.0
MU, SIGMA = 0.5, 0.8                 # the gbm fixture
THETA, OU_MEAN, OU_SIGMA = 1.0, 0.0, 0.5   # the ou fixture

STUDIES = {
    # kind: (step sizes, number of paths)
    "strong": (2.0 ** -np.arange(4, 10), 10_000),
    "weak_gbm": (2.0 ** -np.arange(2, 8), 100_000),
    "weak_ou": (2.0 ** -np.arange(3, 8), 100_000),
}

ORDER_TABLE = [
    # scheme,           problem,   kind,     expected order
    ("euler_maruyama", "gbm", "strong", 0.5),
    ("milstein", "gbm", "strong", 1.0),
    ("milstein", "gbm_rk", "strong", 1.0),
    ("euler_maruyama", "gbm", "weak", 1.0),
    ("milstein", "gbm", "weak", 1.0),
    ("euler_maruyama", "ou", "weak", 1.0),
]


def strong_errors_gbm(sde, method):
    hs, n = STUDIES["strong"]
    errors, stderrs = [], []
    for h in hs:
        sol = se.simulate(sde, [X0_GBM], (0.0, T1), h, n, method=method, seed=SEED,
                          save_brownian=True, brownian_dt=hs.min())
        exact = se.gbm_exact(X0_GBM, T1, sol.W[-1, :, 0], mu=MU, sigma=SIGMA)
        gap = np.abs(sol.x[-1, :, 0] - exact)
        errors.append(gap.mean())
        stderrs.append(gap.std(ddof=1) / math.sqrt(n))
    return hs, np.array(errors), np.array(stderrs)


def weak_errors_gbm(sde, method):
    hs, n = STUDIES["weak_gbm"]
    exact_mean, _ = se.gbm_moments(X0_GBM, T1, mu=MU, sigma=SIGMA)
    errors, stderrs = [], []
    for h in hs:
        sol = se.simulate(sde, [X0_GBM], (0.0, T1), h, n, method=method, seed=SEED,
                          save_brownian=True, brownian_dt=hs.min())
        exact = se.gbm_exact(X0_GBM, T1, sol.W[-1, :, 0], mu=MU, sigma=SIGMA)
        # the control variate is unbiased: E X_T(W_T) is the exact mean
        assert abs(exact.mean() - exact_mean) < 4 * exact.std(ddof=1) / math.sqrt(n)
        diff = sol.x[-1, :, 0] - exact
        errors.append(diff.mean())
        stderrs.append(diff.std(ddof=1) / math.sqrt(n))
    return hs, np.array(errors), np.array(stderrs)


def weak_errors_ou(sde, method, observables):
    hs, n = STUDIES["weak_ou"]
    exact_mean, _ = se.ou_moments(X0_OU, T1, theta=THETA, mean=OU_MEAN, sigma=OU_SIGMA)
    errors, stderrs = [], []
    for h in hs:
        sol = se.simulate(sde, [X0_OU], (0.0, T1), h, n, method=method, seed=SEED,
                          brownian_dt=hs.min(), observables=observables, n_observables=2)
        errors.append(sol.mean[-1, 0] - exact_mean)
        stderrs.append(sol.stderr[-1, 0])
    return hs, np.array(errors), np.array(stderrs)


@pytest.mark.parametrize("method, problem, kind, expected", ORDER_TABLE,
                         ids=["-".join(map(str, row)) for row in ORDER_TABLE])
def test_order(request, moments, method, problem, kind, expected):
    sde = request.getfixturevalue(problem)
    if kind == "strong":
        h, errors, stderrs = strong_errors_gbm(sde, method)
    elif problem in ("gbm", "gbm_rk"):
        h, errors, stderrs = weak_errors_gbm(sde, method)
    else:
        h, errors, stderrs = weak_errors_ou(sde, method, moments)
    fit = fit_order(h, errors, stderrs, level=0.95)
    summary = (f"{method}/{problem}/{kind}: order {fit.order:.3f}, 95% CI "
               f"[{fit.ci[0]:.3f}, {fit.ci[1]:.3f}], chi2_red {fit.reduced_chi2:.2f}, "
               f"errors {errors}, stderrs {stderrs}")
    assert fit.used.all(), summary            # no point below the noise floor
    assert (fit.ci[1] - fit.ci[0]) / 2 < MAX_HALF_WIDTH, summary
    assert fit.ci[0] - ALLOWANCE <= expected <= fit.ci[1] + ALLOWANCE, summary


def test_table_covers_the_registry():
    from solvers.registry import SCHEMES

    for name, scheme in SCHEMES.items():
        rows = [row for row in ORDER_TABLE if row[0] == name]
        assert {"strong", "weak"} <= {row[2] for row in rows}, name
        for _, _, kind, expected in rows:
            declared = scheme.strong_order if kind == "strong" else scheme.weak_order
            assert expected == declared, (name, kind)


def test_allowance_covers_exact_pre_asymptotic_bias():
    """Noise-free EM weak errors (closed forms) fitted on the table's grids.

    The weights mimic the studies' standard errors: ∝ h^{1/2} for the coupled
    GBM differences (their spread is the strong error), constant for OU.
    """
    h_gbm = STUDIES["weak_gbm"][0]
    h_ou = STUDIES["weak_ou"][0]
    # EM on GBM: E X_{k+1} = (1 + μh) E X_k; on OU: E X_{k+1} = (1 − θh) E X_k (mean 0)
    gbm_errors = X0_GBM * ((1 + MU * h_gbm) ** (T1 / h_gbm) - math.exp(MU * T1))
    ou_errors = X0_OU * ((1 - THETA * h_ou) ** (T1 / h_ou) - math.exp(-THETA * T1))
    for h, errors, weights in ((h_gbm, gbm_errors, h_gbm**0.5),
                               (h_ou, ou_errors, np.ones_like(h_ou))):
        bias = abs(fit_order(h, errors, 1e-9 * weights).order - 1.0)
        assert bias < ALLOWANCE
