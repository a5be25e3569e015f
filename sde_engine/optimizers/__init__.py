"""Discrete optimizers (SPEC §2) as pure (init, update) pairs with Numba kernels.

``sgd``, ``sgd_momentum``, ``signsgd``, ``signum``, ``rmsprop`` and ``adam`` build an
:class:`Optimizer`; the registry
:data:`OPTIMIZERS` maps names to them; :func:`sde_engine.runner.run_optimizer`
runs many independent copies on a :class:`~sde_engine.problems.Problem`.
"""
from .adam import adam, adam_update
from .base import Optimizer, OptimizerSpec
from .ema import with_ema
from .momentum import sgd_momentum, sgd_momentum_update
from .registry import OPTIMIZERS, get_spec, make_optimizer
from .rmsprop import rmsprop, rmsprop_update
from .sign import signsgd, signsgd_update, signum, signum_update
from .weight_decay import adamw, rmspropw
from .sgd import sgd, sgd_update

__all__ = ["Optimizer", "OptimizerSpec", "with_ema", "OPTIMIZERS", "get_spec", "make_optimizer",
           "sgd", "sgd_momentum", "signsgd", "signum", "rmsprop", "adam", "rmspropw", "adamw",
           "sgd_update", "sgd_momentum_update", "signsgd_update", "signum_update",
           "rmsprop_update", "adam_update"]

from .adamqlr import AdamQLRResult, adamqlr_run  # noqa: E402  (AdamQLR, SPEC §7; torch form: .adamqlr_torch)
__all__ += ["AdamQLRResult", "adamqlr_run"]
