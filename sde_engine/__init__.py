"""sde-engine: simulate SDEs with Numba and study optimizers through their SDE limits.

The import order below is the dependency order (core, then optimizer runs, models,
torch forms with a lazy torch, then the SVAG/scaling layer).
"""
from .examples import gbm, gbm_exact, gbm_moments, ornstein_uhlenbeck, ou_moments
from .sde import SDE
from .simulate import simulate
from .user_functions import AllocationWarning
from .expectation import expectation
from .extrapolation import Extrapolation, extrapolate
from .solution import DivergenceError, DivergenceReport, Solution
from .runner import run_optimizer
from .coupled import coupled_weak_error
from .models import adam_sde, rmsprop_sde, sgd_sde
from .problems import quadratic
from .torch import register_torch_form, run_optimizer_torch, torch_form  # registers backend "torch"
from .models.scaling import scaling_rule, sqrt_rule
from .optimizers.svag import run_svag

__version__ = "0.1.0"

__all__ = [
    "SDE", "simulate", "expectation", "extrapolate", "Extrapolation", "Solution", "DivergenceError", "DivergenceReport",
    "AllocationWarning",
    "gbm", "gbm_exact", "gbm_moments", "ornstein_uhlenbeck", "ou_moments",
    "run_optimizer", "coupled_weak_error", "adam_sde", "rmsprop_sde", "sgd_sde", "quadratic",
    "run_optimizer_torch", "register_torch_form", "torch_form",
    "scaling_rule", "sqrt_rule", "run_svag", "__version__",
]
