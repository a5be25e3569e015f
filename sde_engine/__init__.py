"""sde-engine: simulate SDEs with Numba and study optimizers through their SDE limits."""
from .examples import gbm, gbm_exact, gbm_moments, ornstein_uhlenbeck, ou_moments
from .sde import SDE
from .simulate import simulate
from .solution import DivergenceError, DivergenceReport, Solution

__version__ = "0.1.0"

__all__ = [
    "SDE", "simulate", "Solution", "DivergenceError", "DivergenceReport",
    "gbm", "gbm_exact", "gbm_moments", "ornstein_uhlenbeck", "ou_moments", "__version__",
]

from .runner import run_optimizer  # noqa: E402  (discrete optimizer runs, issue 3)

__all__ += ["run_optimizer"]

from .models import adam_sde, rmsprop_sde, sgd_sde  # noqa: E402  (optimizer SDEs, issue 3)
from .problems import quadratic  # noqa: E402

__all__ += ["adam_sde", "rmsprop_sde", "sgd_sde", "quadratic"]

from .torch_discrete import run_optimizer_torch  # noqa: E402  (torch backend, issue 6; lazy torch)
from .torch_models import register_torch_form, torch_form  # noqa: E402

__all__ += ["run_optimizer_torch", "register_torch_form", "torch_form"]

from .models.scaling import scaling_rule, sqrt_rule  # noqa: E402  (issue 4: scaling rules, SVAG)
from .optimizers.svag import run_svag  # noqa: E402

__all__ += ["scaling_rule", "sqrt_rule", "run_svag"]
