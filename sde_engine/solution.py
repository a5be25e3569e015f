"""What a simulation returns."""
from dataclasses import dataclass, field
from typing import Optional

import numpy as np


class DivergenceError(FloatingPointError):
    """Raised when paths become NaN/inf and the caller asked to raise."""

    def __init__(self, report):
        self.report = report
        super().__init__(report.describe())


@dataclass
class DivergenceReport:
    """Paths whose state became non-finite.

    Attributes
    ----------
    paths : ndarray of int, shape (n_diverged,)
        Global path indices (``path_offset`` included).
    steps : ndarray of int, shape (n_diverged,)
        First step whose result was non-finite (step k ends at t0 + k dt).
    times : ndarray of float, shape (n_diverged,)
        ``t0 + steps * dt``.
    """

    paths: np.ndarray
    steps: np.ndarray
    times: np.ndarray

    def __len__(self):
        return len(self.paths)

    def describe(self, limit=5):
        shown = ", ".join(f"path {p} at step {s} (t={t:.6g})"
                          for p, s, t in zip(self.paths[:limit], self.steps[:limit],
                                             self.times[:limit]))
        more = f" and {len(self) - limit} more" if len(self) > limit else ""
        return f"{len(self)} path(s) became non-finite: {shown}{more}"


@dataclass
class Solution:
    """Result of :func:`sde_engine.simulate`.

    Attributes
    ----------
    t : ndarray, shape (n_save,)
        Save times.
    x : ndarray, shape (n_save, n_paths, dim), or None
        States at the save times (None when ``save_paths=False``). Diverged
        paths hold NaN from their divergence on (``on_divergence="warn"``) or
        are removed (``"drop"``; see ``kept_paths``).
    mean, var : ndarray, shape (n_save, n_observables), or None
        Mean and unbiased variance of the observables over the paths that
        stayed finite.
    n_used : int
        Number of paths in ``mean``/``var``.
    W : ndarray, shape (n_save, n_paths, noise_dim), or None
        The Brownian path at the save times, when asked for.
    diverged : DivergenceReport
        Paths that became non-finite (empty when none did).
    """

    t: np.ndarray
    x: Optional[np.ndarray]
    mean: Optional[np.ndarray]
    var: Optional[np.ndarray]
    n_used: int
    diverged: DivergenceReport
    W: Optional[np.ndarray] = None
    kept_paths: Optional[np.ndarray] = None
    info: dict = field(default_factory=dict)

    @property
    def stderr(self):
        """Monte Carlo standard error of ``mean``, shape (n_save, n_observables)."""
        if self.mean is None:
            return None
        return np.sqrt(self.var / max(self.n_used, 1))
