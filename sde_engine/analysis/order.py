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
"""
from dataclasses import dataclass, field

import numpy as np
from scipy import stats


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
        log_sd = np.ones_like(h)
        known_noise = False
    else:
        stderrs = np.asarray(stderrs, dtype=float)
        if stderrs.shape != h.shape or np.any(stderrs < 0):
            raise ValueError(f"`stderrs` must be non-negative with shape {h.shape}, got {stderrs}")
        below = noise_floor_mask(errors, stderrs, floor_sigmas)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_sd = stderrs / np.abs(errors)
        known_noise = True
    used = ~below & np.isfinite(errors) & (errors != 0)
    notes = []
    if np.any(below):
        notes.append(f"{int(below.sum())} point(s) below the noise floor "
                     f"(|error| < {floor_sigmas:g} stderr) excluded: add paths")
    n = int(used.sum())
    nan_fit = OrderFit(np.nan, (np.nan, np.nan), np.nan, np.nan, used, below, np.nan, level, notes)
    if n < 2:
        notes.append("fewer than 2 usable points: no slope")
        return nan_fit
    x = np.log(h[used])
    y = np.log(np.abs(errors[used]))
    sd = np.maximum(log_sd[used], 1e-300) if known_noise else np.ones(n)
    w = 1.0 / sd**2
    X = np.column_stack([np.ones(n), x])
    cov = np.linalg.inv(X.T @ (X * w[:, None]))
    intercept, slope = cov @ (X.T @ (w * y))
    resid = y - (intercept + slope * x)
    dof = n - 2
    chi2_red = float(np.sum(w * resid**2) / dof) if dof > 0 else np.nan
    if known_noise:
        scale = max(1.0, chi2_red) if dof > 0 else 1.0
        quantile = stats.norm.ppf(0.5 + level / 2) if scale == 1.0 else stats.t.ppf(0.5 + level / 2, dof)
    else:
        if dof == 0:
            notes.append("2 points and no standard errors: no interval")
            return OrderFit(float(slope), (np.nan, np.nan), np.nan, float(np.exp(intercept)),
                            used, below, np.nan, level, notes)
        scale = chi2_red
        quantile = stats.t.ppf(0.5 + level / 2, dof)
    se = float(np.sqrt(cov[1, 1] * scale))
    if known_noise and dof > 0 and chi2_red > 1:
        notes.append(f"residuals exceed Monte Carlo noise (reduced chi2 = {chi2_red:.2f}): "
                     f"interval widened; the error is not yet a clean power law")
    return OrderFit(order=float(slope), ci=(float(slope - quantile * se), float(slope + quantile * se)),
                    stderr=se, constant=float(np.exp(intercept)), used=used, below_noise=below,
                    reduced_chi2=chi2_red, level=level, notes=notes)
