"""The coupled estimator of a weak-order study (issue 14 §1, ``estimator = "coupled"``).

Each chunk runs the discrete algorithm and its SDE on the same Brownian paths
with :func:`sde_engine.coupled.coupled_weak_error` (``sde_substeps`` = m
Euler–Maruyama steps per discrete step, and m/2 for the bias check) and
returns :class:`~.statistics.Moments` of shape (6, n_tests), rows
:data:`sde_engine.coupled.QUANTITIES`: the difference D = φ(θ_k) − φ(X^m),
the SDE bias B = φ(X^m) − φ(X^{m/2}), the extrapolated difference D − B,
φ(θ_k), φ(X^m) and 2φ(X^m) − φ(X^{m/2}). Chunks go through the study's
checkpoints and executors like the independent ones.

The weak error of a point is mean D (``reference = "simulate"``; its SDE bias
≈ mean B is reported) or mean (D − B) (``"extrapolated"``, the default with
this estimator; bias O(dt²)), with the standard error of that mean. The
variance-reduction factor (Var φ(θ) + Var φ(X)) / Var(difference) is what the
independent estimator (both sides simulated, as many paths each) would need
in extra paths for the same standard error; it is measured on the run.
"""
import numpy as np

from ..coupled import QUANTITIES
from .statistics import Moments


def resolve_estimator(cfg):
    """The estimator a study uses, and why.

    Returns
    -------
    (str, str)
        ``"coupled"`` or ``"independent"``, and a note ("" when the choice is
        the one asked for).
    """
    if cfg.estimator == "auto":
        if cfg.noise != "gaussian":
            return "independent", (f"estimator 'auto': {cfg.noise} noise has no pathwise "
                                   f"coupling with the Brownian motion, so the discrete runs "
                                   f"and the SDE reference are estimated independently")
        if cfg.reference in ("exact", "mlmc"):
            return "independent", (f"estimator 'auto': reference {cfg.reference!r} asked for, "
                                   f"so the discrete runs are compared with it (independent "
                                   f"estimator)")
        return "coupled", ""
    return cfg.estimator, ""


def coupled_reference(cfg):
    """``"extrapolated"`` or ``"simulate"``: which SDE value the coupled errors use."""
    return "simulate" if cfg.reference == "simulate" else "extrapolated"


def coupled_points(cfg, merged):
    """Discrete moments, references and errors of each learning rate from merged chunks.

    Parameters
    ----------
    merged : list of Moments
        One per learning rate, shape (6, n_tests).

    Returns
    -------
    discrete : list of Moments, shape (n_tests,)
    refs : list of (value, stderr, bias, method)
        As :func:`.weak_order.sde_reference`; ``bias`` is |mean B| with
        ``"simulate"`` and 0 with ``"extrapolated"`` (which removes it; the
        removed amount is ``sde_bias`` of the errors).
    errors : list of dict
        ``error``, ``stderr``, ``variance_reduction``, ``sde_bias``,
        ``sde_bias_stderr``: arrays of shape (n_tests,).
    """
    ref_kind = coupled_reference(cfg)
    row = {name: i for i, name in enumerate(QUANTITIES)}
    diff = row["extrapolated_difference" if ref_kind == "extrapolated" else "difference"]
    sde = row["sde_extrapolated" if ref_kind == "extrapolated" else "sde"]
    discrete, refs, errors = [], [], []
    for m in merged:
        method = (f"SDE on the discrete paths: Euler–Maruyama at dt = h/{cfg.sde_substeps}"
                  + (", extrapolated 2·φ(X^dt) − φ(X^2dt)" if ref_kind == "extrapolated"
                     else ""))
        var, se = m.var, m.stderr
        bias = m.mean[row["sde_bias"]]
        discrete.append(Moments(m.count, m.mean[row["discrete"]], m.m2[row["discrete"]]))
        refs.append((m.mean[sde], se[sde],
                     np.abs(bias) if ref_kind == "simulate" else np.zeros_like(bias), method))
        with np.errstate(divide="ignore", invalid="ignore"):
            vrf = (var[row["discrete"]] + var[sde]) / var[diff]
        errors.append(dict(error=m.mean[diff], stderr=se[diff], variance_reduction=vrf,
                           sde_bias=bias, sde_bias_stderr=se[row["sde_bias"]]))
    return discrete, refs, errors
