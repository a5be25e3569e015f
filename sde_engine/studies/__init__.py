"""Studies: orchestration of convergence and weak-approximation experiments.

Each study splits its paths in chunks (``path_offset``), reduces every chunk to
streamed moments and merges them in a fixed order (:mod:`.statistics`).
"""
from .solver_convergence import ConvergenceResult, solver_convergence
from .statistics import Moments, chunk_bounds

__all__ = ["ConvergenceResult", "solver_convergence", "Moments", "chunk_bounds"]
