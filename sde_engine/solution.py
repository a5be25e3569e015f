"""What a simulation returns."""
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np


class DivergenceError(FloatingPointError):
    """Raised when paths become NaN/inf and the caller asked to raise."""

    def __init__(self, report):
        self.report = report
        super().__init__(report.describe())


@dataclass
class DivergenceReport:
    """Paths that stopped: their state, or an observable of it, became non-finite.

    Attributes
    ----------
    paths : ndarray of int, shape (n_diverged,)
        Global path indices (``path_offset`` included).
    steps : ndarray of int, shape (n_diverged,)
        First step whose result was non-finite (step k ends at t0 + k dt).
    times : ndarray of float, shape (n_diverged,)
        ``t0 + steps * dt``.
    observables : ndarray of int, shape (n_diverged,), optional
        −1 where the state became non-finite; q ≥ 0 where the state was
        finite but observable q was not (at save step ``steps``). Default: all −1.
    labels : sequence of str, optional
        Names of the observables, for :meth:`describe`.
    """

    paths: np.ndarray
    steps: np.ndarray
    times: np.ndarray
    observables: Optional[np.ndarray] = None
    labels: Optional[Sequence[str]] = None

    def __post_init__(self):
        if self.observables is None:
            self.observables = np.full(len(self.paths), -1, dtype=np.int64)

    def __len__(self):
        return len(self.paths)

    def describe(self, limit=5):
        shown = ", ".join(self._describe_one(i) for i in range(min(limit, len(self))))
        more = f" and {len(self) - limit} more" if len(self) > limit else ""
        return f"{len(self)} path(s) became non-finite: {shown}{more}"

    def _describe_one(self, i):
        where = f"at step {self.steps[i]} (t={self.times[i]:.6g})"
        q = self.observables[i]
        if q < 0:
            return f"path {self.paths[i]} {where}"
        name = self.labels[q] if self.labels is not None else f"observable[{q}]"
        return f"path {self.paths[i]} (state finite, {name} non-finite) {where}"


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
        Mean and unbiased variance of the observables, at each save time over
        the paths finite at that time (``counts``). NaN where no path was
        (with a warning); ``var`` is NaN where fewer than two were.
    n_used : int
        Number of paths that stayed finite to the end.
    W : ndarray, shape (n_save, n_paths, noise_dim), or None
        The Brownian path at the save times, when asked for.
    diverged : DivergenceReport
        Paths that became non-finite (empty when none did).
    kept_paths : ndarray of int, or None
        Under ``on_divergence="drop"``, the paths kept in ``x``/``W`` when
        some path was dropped; None otherwise (and when no paths are saved).
    counts : ndarray of int, shape (n_save,), or None
        Paths in ``mean``/``var`` at each save time: a path that stopped at
        step k counts at the save steps before k. None: ``n_used`` at every
        save time.
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
    counts: Optional[np.ndarray] = None

    @property
    def stderr(self):
        """Monte Carlo standard error of ``mean``, shape (n_save, n_observables).

        sqrt(var / count) per save time; NaN where fewer than two paths counted.
        """
        if self.mean is None:
            return None
        counts = np.full(len(self.mean), self.n_used) if self.counts is None else self.counts
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sqrt(self.var / counts[:, None])
