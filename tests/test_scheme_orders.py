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
        if name == "weak2":      # no strong order; its weak order 2 is the slow studies below
            assert scheme.strong_order is None and scheme.weak_order == 2.0
            continue
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


# ----------------------------------------------------------------------------
# Weak order 2: the ``weak2`` scheme and the Richardson-extrapolated EM
# ----------------------------------------------------------------------------
#
# A weak error of order 2 is small: at h = 1/32 it is ~1e-4 of the mean, far
# below the plain Monte Carlo noise of 10^5 paths. Each study therefore
# estimates E φ(X^h) − E φ(X_T) as mean(φ(X^h) − C) + E C − E φ(X_T) with a
# control variate C whose mean is known exactly, so the estimator's mean is
# untouched and only its variance falls:
#
# * reducible problems X_t = u(z0 + a t + b W_t) (GBM, sinh, arctan; Kloeden &
#   Platen §4.4): C = u(z0 + a T + b S_T) with S the walk that drove the run
#   (``Solution.W``). For ``weak2`` S is the three-point walk, whose law is a
#   trinomial one (E C is a finite sum); for EM S is the Brownian path and
#   E C = E u(X_T) (Gauss–Hermite quadrature). φ(X^h) − C is then a strong
#   error (O(h) for ``weak2`` on these problems, O(h^{1/2}) for EM);
# * linear problems (OU, RMSprop, Adam on a quadratic; exact moments from
#   their ODEs): C = Σ_k β_k·(S_{s_{k+1}} − S_{s_k}) over the save intervals,
#   E C = 0; the β_k are least-squares coefficients from a pilot run with
#   another seed, so they do not depend on the paths they are applied to.
#
# The extrapolated rows use :func:`sde_engine.extrapolate` with one Brownian
# resolution (half the finest step) for every level, so all levels are coupled.
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import gammaln

from sde_engine.analysis.moments import exact_moments
from sde_engine.extrapolation import extrapolate

WEAK2_HALF_WIDTH = 0.25    # still rejects order 1 (and 3) by a wide margin
WEAK2_ALLOWANCE = 0.15     # pre-asymptotic bias of the slope (closed forms: see its test)


def _sinh_drift(t, x, p, out):       # X = sinh(z0 + a t + b W)
    out[0] = p[0] * math.sqrt(1.0 + x[0] * x[0]) + 0.5 * p[1] * p[1] * x[0]


def _sinh_diffusion(t, x, p, out):
    out[0] = p[1] * math.sqrt(1.0 + x[0] * x[0])


def _arctan_drift(t, x, p, out):     # X = arctan(z0 + a t + b W)
    c = math.cos(x[0])
    out[0] = p[0] * c * c - p[1] * p[1] * math.sin(x[0]) * c * c * c


def _arctan_diffusion(t, x, p, out):
    c = math.cos(x[0])
    out[0] = p[1] * c * c


@pytest.fixture(scope="module")
def sinh_sde():
    return se.SDE(_sinh_drift, _sinh_diffusion, dim=1, params=np.array([0.3, 0.5]),
                  name="sinh")


@pytest.fixture(scope="module")
def arctan_sde():
    return se.SDE(_arctan_drift, _arctan_diffusion, dim=1, params=np.array([0.5, 0.8]),
                  name="arctan")


class Reducible:
    """X_t = u(z0 + a t + b W_t) for the SDE ``sde`` with params ``params``."""

    def __init__(self, sde, params, u, z0, a, b, x0):
        self.sde, self.u, self.z0, self.a, self.b, self.x0 = (
            sde.with_params(np.asarray(params, dtype=float)), u, z0, a, b, x0)

    def control(self, T, S):
        return self.u(self.z0 + self.a * T + self.b * S)

    def exact_mean(self, T):
        nodes, weights = hermegauss(120)
        return np.sum(weights * self.control(T, math.sqrt(T) * nodes)) / math.sqrt(2 * math.pi)

    def walk_mean(self, T, h):
        """E u(z0 + aT + b S_T) for the three-point walk S of T/h steps of size h."""
        n = round(T / h)
        up, down = np.arange(n + 1)[:, None], np.arange(n + 1)[None, :]
        zero = n - up - down
        ok = zero >= 0
        zero = np.where(ok, zero, 0)
        log_p = (gammaln(n + 1) - gammaln(up + 1) - gammaln(down + 1) - gammaln(zero + 1)
                 + (up + down) * math.log(1 / 6) + zero * math.log(2 / 3))
        values = self.control(T, math.sqrt(3 * h) * (up - down))
        return np.sum(np.where(ok, np.exp(log_p) * values, 0.0))


def reducible(name, request, weak2):
    """The reducible test problems; ``weak2=False`` picks drift-dominated
    parameters for EM, whose O(h^{1/2}) strong error sets the noise there."""
    if name == "gbm":
        mu, sigma = (MU, SIGMA) if weak2 else (1.0, 0.2)
        return Reducible(request.getfixturevalue("gbm"), [mu, sigma], np.exp, 0.0,
                         mu - 0.5 * sigma**2, sigma, 1.0)
    if name == "sinh":
        a, b = (0.3, 0.5) if weak2 else (1.0, 0.2)
        return Reducible(request.getfixturevalue("sinh_sde"), [a, b], np.sinh,
                         math.asinh(0.5), a, b, 0.5)
    a, b = (0.5, 0.8) if weak2 else (1.0, 0.2)
    return Reducible(request.getfixturevalue("arctan_sde"), [a, b], np.arctan,
                     math.tan(0.3), a, b, 0.3)


def _first_coordinate(t, x, params, out):
    out[0] = x[0]


class Linear:
    """φ = x_0 of a linear-Gaussian SDE with an exact mean (``mean(T)``)."""

    def __init__(self, sde, x0, T, mean):
        self.sde, self.x0, self.T, self.mean = sde, np.asarray(x0, dtype=float), T, mean


QUADRATIC = dict(H=[1.0, 0.5], theta_star=[0.0, 0.0], Sigma=[1.0, 1.0], noise_scale=5.0)
THETA0 = [2.0, -1.0]


def linear(name, request):
    if name == "ou":
        theta, sigma = 2.0, 0.3
        sde = request.getfixturevalue("ou").with_params(np.array([theta, OU_MEAN, sigma]))
        return Linear(sde, [X0_OU], T1, lambda T: se.ou_moments(
            X0_OU, T, theta=theta, mean=OU_MEAN, sigma=sigma)[0])
    problem = se.quadratic(QUADRATIC["H"], QUADRATIC["theta_star"], QUADRATIC["Sigma"],
                           noise_scale=QUADRATIC["noise_scale"])
    if name == "rmsprop":
        model = se.rmsprop_sde(problem, lr=0.1, beta=0.99)   # c2 = 1, F from 4 to 2
        x0 = model.initial_state(THETA0, v0=0.25 * QUADRATIC["noise_scale"]**2)
    else:
        model = se.adam_sde(problem, lr=0.1, betas=(0.97, 0.99), bias_correction=True)
        x0 = model.initial_state(THETA0)
    return Linear(model.sde, x0, T1,
                  lambda T: exact_moments(model, x0, [T]).theta_mean[0, 0])


def _linear_control(S_incr, y, pilot_S_incr, pilot_y):
    """y − β·S_incr with β fitted on the pilot: (values, stderr)."""
    A = pilot_S_incr - pilot_S_incr.mean(axis=0)
    beta, *_ = np.linalg.lstsq(A, pilot_y - pilot_y.mean(), rcond=None)
    adjusted = y - S_incr @ beta
    return adjusted.mean(), adjusted.std(ddof=1) / math.sqrt(len(y))


def _increments(W):
    """(n_save, n, m) walk at the save times -> (n, (n_save − 1)·m) increments."""
    return np.diff(W, axis=0).transpose(1, 0, 2).reshape(W.shape[1], -1)


WEAK2_STUDIES = {
    # problem: (step sizes, paths)
    "gbm": (2.0 ** -np.arange(1, 6), 50_000),
    "sinh": (2.0 ** -np.arange(1, 6), 50_000),
    "arctan": (2.0 ** -np.arange(3, 7), 200_000),
    "ou": (2.0 ** -np.arange(4, 8), 100_000),
    "rmsprop": (2.0 ** -np.arange(3, 7), 400_000),
    "adam": (2.0 ** -np.arange(3, 7), 100_000),
}


def _control_save_times(T, hs):
    """Save times of the linear control: every second step of the coarsest grid
    (a grid the coarse level of an extrapolation at that step also lies on)."""
    return np.linspace(0.0, T, round(T / (2 * hs.max())) + 1)


EXTRAPOLATION_STUDIES = {
    "gbm": (2.0 ** -np.arange(4, 8), 50_000),
    "sinh": (2.0 ** -np.arange(4, 8), 50_000),
    "arctan": (2.0 ** -np.arange(3, 7), 100_000),
    "ou": (2.0 ** -np.arange(4, 8), 400_000),
    "rmsprop": (2.0 ** -np.arange(2, 6), 400_000),
    "adam": (2.0 ** -np.arange(4, 8), 400_000),
}


def _weak_errors(request, name, studies, run, weak2):
    """Errors and standard errors of one study over its steps h.

    ``run(sde, x0, h, n, seed, save_at, brownian_dt)`` returns (φ(X_T) per path
    (n,), the walk that drove the run at the save times (n_save, n, m)).
    """
    hs, n = studies[name]
    errors, stderrs = [], []
    fine_w = hs.min() / 2
    if name in ("gbm", "sinh", "arctan"):
        prob = reducible(name, request, weak2=weak2)
        exact = prob.exact_mean(T1)
        for h in hs:
            y, W = run(prob.sde, [prob.x0], h, n, SEED, None, fine_w)
            gap = y - prob.control(T1, W[-1, :, 0])
            control_mean = prob.walk_mean(T1, h) if weak2 else exact   # E C
            errors.append(gap.mean() + control_mean - exact)
            stderrs.append(gap.std(ddof=1) / math.sqrt(n))
        return hs, np.array(errors), np.array(stderrs)
    prob = linear(name, request)
    save = _control_save_times(prob.T, hs)
    for h in hs:
        (y, W), (pilot_y, pilot_W) = [run(prob.sde, prob.x0, h, size, seed, save, fine_w)
                                      for seed, size in ((SEED, n), (SEED + 1, n // 4))]
        mean, err = _linear_control(_increments(W), y, _increments(pilot_W), pilot_y)
        errors.append(mean - prob.mean(prob.T))
        stderrs.append(err)
    return hs, np.array(errors), np.array(stderrs)


def _run_weak2(sde, x0, h, n, seed, save_at, brownian_dt):
    sol = se.simulate(sde, x0, (0.0, T1), h, n, method="weak2", seed=seed, save_at=save_at,
                      save_brownian=True)
    return sol.x[-1, :, 0], sol.W


def _run_extrapolated_em(sde, x0, h, n, seed, save_at, brownian_dt):
    """One Brownian resolution (half the finest step) for every h: all levels coupled."""
    ex = extrapolate(sde, x0, (0.0, T1), h, n, seed=seed, observables=_first_coordinate,
                     n_observables=1, save_at=save_at, keep_paths=True, brownian_dt=brownian_dt)
    return ex.values[-1, :, 0], ex.W


def weak2_errors(request, name):
    return _weak_errors(request, name, WEAK2_STUDIES, _run_weak2, weak2=True)


def extrapolated_em_errors(request, name):
    return _weak_errors(request, name, EXTRAPOLATION_STUDIES, _run_extrapolated_em, weak2=False)


WEAK2_PROBLEMS = ("gbm", "sinh", "arctan", "ou", "rmsprop", "adam")


# Extrapolated EM on the optimizer SDEs is still pre-asymptotic on every grid
# whose finest errors these path counts resolve: the local ratios e(h)/e(h/2)
# fall towards 4 from above (Adam: 5.4, 4.7, 4.7 at h = 1/16..1/128, i.e.
# e ≈ C h²(1 + D h) with D ≈ 20; RMSprop: 41, 9–11, ~5 at h = 1/4..1/32), the
# stiffness near t = 0 of the bias correction and of the v equation. There the
# test asserts what extrapolation promises -- the order-1 term is gone -- and
# not the asymptotic slope itself.
PRE_ASYMPTOTIC = {"extrapolated EM/rmsprop", "extrapolated EM/adam"}


def _assert_order_two(h, errors, stderrs, label):
    fit = fit_order(h, errors, stderrs, level=0.95)
    summary = (f"{label}: order {fit.order:.3f}, 95% CI [{fit.ci[0]:.3f}, {fit.ci[1]:.3f}], "
               f"chi2_red {fit.reduced_chi2:.2f}, errors {errors}, stderrs {stderrs}")
    print(summary)                   # the numbers behind a pass: pytest -m slow -rP
    assert fit.used.sum() >= 3, summary
    if label in PRE_ASYMPTOTIC:
        assert fit.ci[1] + WEAK2_ALLOWANCE >= 2.0 and fit.ci[0] > 1.5, summary
        return
    assert (fit.ci[1] - fit.ci[0]) / 2 < WEAK2_HALF_WIDTH, summary
    assert fit.ci[0] - WEAK2_ALLOWANCE <= 2.0 <= fit.ci[1] + WEAK2_ALLOWANCE, summary


def test_weak2_allowance_covers_exact_pre_asymptotic_bias():
    """Noise-free means (closed forms) fitted on the studies' grids with
    constant absolute standard errors, as the controlled linear studies have.

    ``weak2`` on OU takes E X ← E X + h a + ½ h² a' a (a = −θ(x − μ)); EM on a
    linear drift E X ← (1 + λh) E X, extrapolated as 2 E X^h − E X^{2h}.
    """
    theta = 2.0
    h = WEAK2_STUDIES["ou"][0]
    weak2_ou = (1 - theta * h + 0.5 * (theta * h) ** 2) ** (T1 / h) - math.exp(-theta * T1)

    def extrapolated_linear(lam, h):
        return (2 * (1 + lam * h) ** (T1 / h) - (1 + 2 * lam * h) ** (T1 / (2 * h))
                - math.exp(lam * T1))

    h_ou, h_gbm = EXTRAPOLATION_STUDIES["ou"][0], EXTRAPOLATION_STUDIES["gbm"][0]
    cases = ((h, weak2_ou), (h_ou, extrapolated_linear(-theta, h_ou)),
             (h_gbm, extrapolated_linear(1.0, h_gbm)))   # the GBM study's μ = 1
    for h, errors in cases:
        bias = abs(fit_order(h, errors, np.full(len(h), 1e-12)).order - 2.0)
        assert bias < WEAK2_ALLOWANCE


@pytest.mark.slow
@pytest.mark.parametrize("problem", WEAK2_PROBLEMS)
def test_weak2_scheme_has_weak_order_two(request, problem):
    _assert_order_two(*weak2_errors(request, problem), f"weak2/{problem}")


@pytest.mark.slow
@pytest.mark.parametrize("problem", WEAK2_PROBLEMS)
def test_extrapolated_euler_has_weak_order_two(request, problem):
    _assert_order_two(*extrapolated_em_errors(request, problem), f"extrapolated EM/{problem}")
