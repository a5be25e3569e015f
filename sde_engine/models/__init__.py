"""SDE models of optimizers (SPEC §3): state layouts and time maps in :mod:`.base`."""
from .adam import adam_sde
from .base import OptimizerSDE
from .levy import sgd_levy_sde
from .momentum import sgd_momentum_sde
from .rmsprop import rmsprop_sde
from .sign import signsgd_sde, signum_sde
from .weight_decay import adamw_sde, rmspropw_sde
from .sgd import sgd_sde

__all__ = ["OptimizerSDE", "adam_sde", "rmsprop_sde", "sgd_sde", "sgd_momentum_sde",
           "signsgd_sde", "signum_sde", "rmspropw_sde", "adamw_sde", "sgd_levy_sde"]

from .ema import ema_sde  # noqa: E402
from .scaling import (ema_rule, linear_rule, momentum_rule, rescale_v, scaling_rule,  # noqa: E402
                      sde_constants, sqrt_rule)
from .svag import svag_transform  # noqa: E402

__all__ += ["ema_sde", "ema_rule", "momentum_rule", "linear_rule", "rescale_v", "scaling_rule", "sde_constants", "sqrt_rule",
            "svag_transform"]
