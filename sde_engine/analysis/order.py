"""Convergence-order fits with honest confidence intervals.

An order study measures errors e_i ± s_i (Monte Carlo standard errors) at step
sizes h_i and fits  log|e_i| = log C + p log h_i. Two sources of uncertainty
enter the slope p:

* Monte Carlo noise, propagated with the delta method: sd(log|e|) ≈ s/|e|;
* lack of fit: the error is only asymptotically a power law, so residuals can
  exceed the Monte Carlo noise. When they do (reduced χ² > 1) the interval is
  widened by √χ²_red (the Birge ratio), so it covers both.

Points whose error is within ``floor_sigmas`` standard errors of zero carry
no information about the slope (their log is dominated by noise) and are
excluded from the fit; the fit reports which, so a user can add paths.

A power law is not the only asymptotic form: the bias-corrected optimizers of
SPEC §4 have |e| ≈ η²(a + b ln(1/η)), whose local slope creeps towards 2
without reaching it. :func:`fit_log_model` fits |e| = x^q (a + b ln(1/x)) by
weighted least squares on the errors themselves (linear in a, b, so the
Monte Carlo noise enters exactly), with the same interval rule, and
:func:`compare_fits` says which of the two curves the data prefer.
"""
from dataclasses import dataclass, field

import numpy as np
from scipy import special, stats


@dataclass
class OrderFit:
    """Result of :func:`fit_order`.

    Attributes
    ----------
    order : float
        Fitted slope p of log|error| against log h (nan if < 2 usable points).
    ci : (float, float)
        Confidence interval for p at level ``level``.
    stderr : float
        Standard error of p used for ``ci``.
    constant : float
        Fitted C in |error| ≈ C h^p.
    used : ndarray of bool, shape (n,)
        Points that entered the fit.
    below_noise : ndarray of bool, shape (n,)
        Points whose |error| < floor_sigmas · stderr (excluded).
    reduced_chi2 : float
        Lack-of-fit statistic (1 means residuals match the Monte Carlo noise).
    level : float
        Confidence level of ``ci``.
    """

    order: float
    ci: tuple
    stderr: float
    constant: float
    used: np.ndarray
    below_noise: np.ndarray
    reduced_chi2: float
    level: float = 0.95
    notes: list = field(default_factory=list)

    def contains(self, value):
        """Whether ``value`` lies inside the confidence interval."""
        return bool(self.ci[0] <= value <= self.ci[1])

    def as_dict(self):
        return dict(order=self.order, ci=list(self.ci), stderr=self.stderr,
                    constant=self.constant, used=self.used.tolist(),
                    below_noise=self.below_noise.tolist(),
                    reduced_chi2=self.reduced_chi2, level=self.level, notes=list(self.notes))


def noise_floor_mask(errors, stderrs, floor_sigmas=3.0):
    """True where |error| < floor_sigmas · stderr: indistinguishable from zero."""
    errors = np.asarray(errors, dtype=float)
    stderrs = np.asarray(stderrs, dtype=float)
    return np.abs(errors) < floor_sigmas * stderrs


def fit_order(h, errors, stderrs=None, level=0.95, floor_sigmas=3.0):
    """Fit |error| ≈ C h^p by weighted least squares in log–log space.

    Parameters
    ----------
    h : array_like, shape (n,)
        Step sizes (or learning rates), positive.
    errors : array_like, shape (n,)
        Signed or absolute errors; their absolute value is fitted.
    stderrs : array_like, shape (n,), optional
        Monte Carlo standard errors of ``errors``. Without them the points are
        weighted equally and the interval comes from the residuals alone.
    level : float
        Confidence level of the interval.
    floor_sigmas : float
        Points with |error| < floor_sigmas · stderr are excluded and flagged.

    Returns
    -------
    OrderFit
    """
    h, errors, stderrs, used, below, notes = _points(h, errors, stderrs, level, floor_sigmas)
    known_noise = stderrs is not None
    if known_noise:
        with np.errstate(divide="ignore", invalid="ignore"):
            log_sd = stderrs / np.abs(errors)
    n = int(used.sum())
    nan_fit = OrderFit(np.nan, (np.nan, np.nan), np.nan, np.nan, used, below, np.nan, level, notes)
    if n < 2:
        notes.append("fewer than 2 usable points: no slope")
        return nan_fit
    x = np.log(h[used])
    y = np.log(np.abs(errors[used]))
    sd = np.maximum(log_sd[used], 1e-300) if known_noise else np.ones(n)
    X = np.column_stack([np.ones(n), x])
    (intercept, slope), cov, _, chi2_red, dof, quantile = _wls(X, y, sd, known_noise, level)
    if not known_noise and dof == 0:
        notes.append("2 points and no standard errors: no interval")
        return OrderFit(float(slope), (np.nan, np.nan), np.nan, float(np.exp(intercept)),
                        used, below, np.nan, level, notes)
    se = float(np.sqrt(cov[1, 1]))
    if known_noise and dof > 0 and chi2_red > 1:
        notes.append(f"residuals exceed Monte Carlo noise (reduced chi2 = {chi2_red:.2f}): "
                     f"interval widened; the error is not yet a clean power law")
    return OrderFit(order=float(slope), ci=(float(slope - quantile * se), float(slope + quantile * se)),
                    stderr=se, constant=float(np.exp(intercept)), used=used, below_noise=below,
                    reduced_chi2=chi2_red, level=level, notes=notes)


def _points(h, errors, stderrs, level, floor_sigmas):
    """Check the inputs of a fit and choose its points.

    Returns
    -------
    h, errors : ndarray, shape (n,)
    stderrs : ndarray, shape (n,), or None
    used, below : ndarray of bool, shape (n,)
        Points that enter the fit; points under the noise floor (excluded).
    notes : list of str
    """
    h = np.asarray(h, dtype=float)
    errors = np.asarray(errors, dtype=float)
    if h.shape != errors.shape or h.ndim != 1:
        raise ValueError(f"`h` and `errors` must be 1-D of equal length, got {h.shape} and {errors.shape}")
    if np.any(h <= 0) or not np.all(np.isfinite(h)):
        raise ValueError(f"`h` must be positive and finite, got {h}")
    if not 0 < level < 1:
        raise ValueError(f"`level` must be in (0, 1), got {level}")
    if stderrs is None:
        below = np.zeros(h.shape, dtype=bool)
    else:
        stderrs = np.asarray(stderrs, dtype=float)
        if stderrs.shape != h.shape or np.any(stderrs < 0):
            raise ValueError(f"`stderrs` must be non-negative with shape {h.shape}, got {stderrs}")
        below = noise_floor_mask(errors, stderrs, floor_sigmas)
    used = ~below & np.isfinite(errors) & (errors != 0)
    notes = []
    if np.any(below):
        notes.append(f"{int(below.sum())} point(s) below the noise floor "
                     f"(|error| < {floor_sigmas:g} stderr) excluded: add paths")
    return h, errors, stderrs, used, below, notes


def _wls(X, y, sd, known_noise, level):
    """Weighted least squares y ≈ X β with weights 1/sd², and this module's interval rule.

    Parameters
    ----------
    X : ndarray, shape (n, k)
    y, sd : ndarray, shape (n,)
        Data and their standard deviations (any common value when not ``known_noise``).
    known_noise : bool
        ``sd`` are the true noise levels: the covariance is widened by χ²_red only
        when χ²_red > 1 (Birge ratio), with a t quantile then and a normal one
        otherwise. Unknown noise: scaled by χ²_red, t quantile (nan when dof = 0).

    Returns
    -------
    beta : ndarray (k,)
    cov : ndarray (k, k)
        Covariance of ``beta``, already scaled.
    chi2 : float
        Σ (y − X β)² / sd².
    chi2_red : float
        chi2 / (n − k) (nan when n = k).
    dof : int
    quantile : float
        Two-sided quantile at ``level`` for intervals β ± quantile · √diag(cov).
    """
    n, k = X.shape
    w = 1.0 / sd**2
    cov = np.linalg.inv(X.T @ (X * w[:, None]))
    beta = cov @ (X.T @ (w * y))
    chi2 = float(np.sum(w * (y - X @ beta) ** 2))
    dof = n - k
    chi2_red = chi2 / dof if dof > 0 else np.nan
    if known_noise:
        scale = max(1.0, chi2_red) if dof > 0 else 1.0
        quantile = stats.norm.ppf(0.5 + level / 2) if scale == 1.0 else stats.t.ppf(0.5 + level / 2, dof)
    elif dof > 0:
        scale, quantile = chi2_red, stats.t.ppf(0.5 + level / 2, dof)
    else:
        scale, quantile = np.nan, np.nan
    return beta, cov * scale, chi2, chi2_red, dof, float(quantile)


@dataclass
class LogModelFit:
    """Result of :func:`fit_log_model`: |error| ≈ x^power (a + b ln(1/x)).

    Attributes
    ----------
    a, b : float
        Fitted coefficients (nan if < 2 usable points). b = 0 is a pure power
        law of exponent ``power``; b ≠ 0 adds a logarithm (|e|/x^power grows by
        b ln 2 per halving of x).
    a_ci, b_ci : (float, float)
        Confidence intervals at level ``level``.
    a_stderr, b_stderr : float
        Their standard errors (widened like :class:`OrderFit`'s).
    power : float
        The fixed exponent q.
    chi2, reduced_chi2 : float
        Σ ((|e_i| − model_i)/s_i)² over the points used, and chi2/(n − 2).
    used, below_noise : ndarray of bool, shape (n,)
        As in :class:`OrderFit` (the same points, so the two fits compare).
    """

    a: float
    b: float
    a_ci: tuple
    b_ci: tuple
    a_stderr: float
    b_stderr: float
    power: float
    chi2: float
    reduced_chi2: float
    used: np.ndarray
    below_noise: np.ndarray
    level: float = 0.95
    notes: list = field(default_factory=list)

    def curve(self, x):
        """The fitted |error| at ``x``, shape of ``x``."""
        x = np.asarray(x, dtype=float)
        return x**self.power * (self.a + self.b * np.log(1.0 / x))

    def as_dict(self):
        return dict(model=f"|e| = x^{self.power:g} (a + b ln(1/x))", a=self.a, b=self.b,
                    a_ci=list(self.a_ci), b_ci=list(self.b_ci), a_stderr=self.a_stderr,
                    b_stderr=self.b_stderr, power=self.power, chi2=self.chi2,
                    reduced_chi2=self.reduced_chi2, used=self.used.tolist(),
                    below_noise=self.below_noise.tolist(), level=self.level,
                    notes=list(self.notes))


def fit_log_model(x, errors, stderrs=None, power=2.0, level=0.95, floor_sigmas=3.0):
    """Fit |error| ≈ x^power (a + b ln(1/x)) by weighted least squares.

    The model is linear in (a, b): with u_i = x_i^power and l_i = u_i ln(1/x_i),
    |e_i| = a u_i + b l_i, each point weighted by 1/s_i². Intervals follow
    :func:`fit_order`'s rule (normal quantile; widened by √χ²_red with a t
    quantile when χ²_red > 1; residual-based without stderrs).

    Parameters
    ----------
    x : array_like, shape (n,)
        Learning rates η (or step sizes), positive.
    errors : array_like, shape (n,)
        Signed or absolute errors; their absolute value is fitted.
    stderrs : array_like, shape (n,), optional
        Monte Carlo standard errors of ``errors``.
    power : float
        The exponent q: 2 for the RMSprop/Adam weak error in η (order 1 in h = η²).
    level : float
        Confidence level of the intervals.
    floor_sigmas : float
        Points with |error| < floor_sigmas · stderr are excluded, as in
        :func:`fit_order`, so that both fits use the same points.

    Returns
    -------
    LogModelFit
    """
    if not np.isfinite(power):
        raise ValueError(f"`power` must be finite, got {power}")
    # the same checks and the same points as the power-law fit
    x, errors, stderrs, used, below, notes = _points(x, errors, stderrs, level, floor_sigmas)
    x, e, n = x[used], np.abs(errors[used]), int(used.sum())
    known_noise = stderrs is not None
    sd = stderrs[used] if known_noise else np.ones(n)
    if n < 2 or np.any(sd <= 0):
        notes.append("fewer than 2 usable points: no fit" if n < 2 else
                     "a zero standard error among the points: no weighted fit")
        nan2 = (np.nan, np.nan)
        return LogModelFit(np.nan, np.nan, nan2, nan2, np.nan, np.nan, float(power), np.nan,
                           np.nan, used, below, level, notes)
    u = x**power
    X = np.column_stack([u, u * np.log(1.0 / x)])
    (a, b), cov, chi2, chi2_red, dof, quantile = _wls(X, e, sd, known_noise, level)
    se_a, se_b = (float(np.sqrt(c)) for c in np.diag(cov))
    if known_noise and dof > 0 and chi2_red > 1:
        notes.append(f"residuals exceed Monte Carlo noise (reduced chi2 = {chi2_red:.2f}): "
                     f"intervals widened")
    if not known_noise and dof == 0:
        notes.append("2 points and no standard errors: no interval")
    return LogModelFit(a=float(a), b=float(b),
                       a_ci=(float(a - quantile * se_a), float(a + quantile * se_a)),
                       b_ci=(float(b - quantile * se_b), float(b + quantile * se_b)),
                       a_stderr=se_a, b_stderr=se_b, power=float(power),
                       chi2=chi2 if known_noise else np.nan,
                       reduced_chi2=chi2_red if known_noise else np.nan,
                       used=used, below_noise=below, level=level, notes=notes)


# |ΔAIC| below this is "no preference" (Burnham & Anderson's rule of thumb)
AIC_THRESHOLD = 2.0


@dataclass
class ModelComparison:
    """Result of :func:`compare_fits`: C x^p against x^q (a + b ln(1/x)).

    Attributes
    ----------
    n_points : int
        Points both fits used.
    chi2_power, chi2_log : float
        Σ ((|e_i| − model_i)/s_i)² of each fitted curve.
    p_power, p_log : float
        Goodness of fit: P(χ²_{n−2} ≥ chi2) (small: the curve misses the data
        by more than the Monte Carlo noise).
    delta_aic : float
        AIC(power law) − AIC(log model) = chi2_power − chi2_log (two
        parameters each): positive favours the log model.
    log_weight : float
        Akaike weight of the log model, 1 / (1 + exp(−ΔAIC/2)).
    preferred : {"log", "power", "neither"}
        "neither" when |ΔAIC| < :data:`AIC_THRESHOLD` or no comparison is possible.
    """

    n_points: int
    chi2_power: float
    chi2_log: float
    p_power: float
    p_log: float
    delta_aic: float
    log_weight: float
    preferred: str
    notes: list = field(default_factory=list)

    def summary(self):
        """One line: which model the data prefer, with the numbers."""
        if not np.isfinite(self.delta_aic):
            return "no comparison: " + "; ".join(self.notes)
        which = {"log": "the log model", "power": "the power law",
                 "neither": "neither model clearly"}[self.preferred]
        return (f"data prefer {which}: ΔAIC = {self.delta_aic:.1f} (Akaike weight of the log "
                f"model {self.log_weight:.3f}); χ² {self.chi2_power:.1f} (power, p = "
                f"{self.p_power:.2g}) vs {self.chi2_log:.1f} (log, p = {self.p_log:.2g}) "
                f"on {self.n_points - 2} dof")

    def as_dict(self):
        return dict(n_points=self.n_points, chi2_power=self.chi2_power, chi2_log=self.chi2_log,
                    p_power=self.p_power, p_log=self.p_log, delta_aic=self.delta_aic,
                    log_weight=self.log_weight, preferred=self.preferred,
                    summary=self.summary(), notes=list(self.notes))


def compare_fits(x, errors, stderrs, power_fit, log_fit):
    """Which curve the data prefer: ``power_fit`` (C x^p) or ``log_fit`` (x^q (a + b ln 1/x)).

    Both are scored by χ² of the fitted curve against |e_i| with the Monte Carlo
    standard errors s_i, over the points both used. The power law was fitted in
    log space, which to first order in s/|e| (≤ 1/3 on the points used) is its
    least-squares fit on this scale. With two parameters each, ΔAIC = Δχ².

    Parameters
    ----------
    x, errors, stderrs : array_like, shape (n,)
        The data both fits were made from (``stderrs`` required).
    power_fit : OrderFit
    log_fit : LogModelFit

    Returns
    -------
    ModelComparison
    """
    if stderrs is None:
        raise ValueError("`stderrs` is required to compare fits: their χ² needs the noise")
    x = np.asarray(x, dtype=float)
    e = np.abs(np.asarray(errors, dtype=float))
    s = np.asarray(stderrs, dtype=float)
    if not (x.shape == e.shape == s.shape == power_fit.used.shape == log_fit.used.shape):
        raise ValueError(f"`x`, `errors`, `stderrs` and the fits must have one shape, got "
                         f"{x.shape}, {e.shape}, {s.shape}, {power_fit.used.shape}, "
                         f"{log_fit.used.shape}")
    both = power_fit.used & log_fit.used
    n = int(both.sum())
    if n < 3 or not (np.isfinite(power_fit.order) and np.isfinite(log_fit.a)):
        return ModelComparison(n, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, "neither",
                               [f"{n} common point(s): at least 3 are needed"])
    x, e, s = x[both], e[both], s[both]
    chi2_power = float(np.sum(((e - power_fit.constant * x**power_fit.order) / s) ** 2))
    chi2_log = float(np.sum(((e - log_fit.curve(x)) / s) ** 2))
    dof = n - 2
    delta = chi2_power - chi2_log
    preferred = "neither" if abs(delta) < AIC_THRESHOLD else ("log" if delta > 0 else "power")
    p_power, p_log = (float(stats.chi2.sf(c, dof)) for c in (chi2_power, chi2_log))
    notes = []
    if max(p_power, p_log) < 1e-3:
        notes.append("neither curve fits within the Monte Carlo noise (both p < 0.001)")
    return ModelComparison(n, chi2_power, chi2_log, p_power, p_log, float(delta),
                           float(special.expit(delta / 2)), preferred, notes)
