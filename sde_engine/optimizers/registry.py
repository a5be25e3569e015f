"""The one table of discrete optimizers (see :mod:`.base` for how to add one)."""
from .adam import SPEC as ADAM, adam
from .momentum import SPEC as SGD_MOMENTUM, sgd_momentum
from .rmsprop import SPEC as RMSPROP, rmsprop
from .sign import SIGNUM_SPEC as SIGNUM, SPEC as SIGNSGD, signsgd, signum
from .weight_decay import adamw, rmspropw
from .sgd import SPEC as SGD, sgd

# name -> (spec, constructor validating torch.optim-style keyword hyperparameters)
OPTIMIZERS = {
    "sgd": (SGD, sgd),
    "sgd_momentum": (SGD_MOMENTUM, sgd_momentum),
    "signsgd": (SIGNSGD, signsgd),
    "signum": (SIGNUM, signum),
    "rmsprop": (RMSPROP, rmsprop),
    "adam": (ADAM, adam),
    "rmspropw": (rmspropw().spec, rmspropw),
    "adamw": (adamw().spec, adamw),
}


def get_spec(name):
    """The :class:`~.base.OptimizerSpec` of ``name``; unknown names list the table."""
    try:
        return OPTIMIZERS[name][0]
    except (KeyError, TypeError):
        raise ValueError(f"`optimizer` must be one of {sorted(OPTIMIZERS)}, got {name!r}") from None


def make_optimizer(name, **hyperparameters):
    """Build an optimizer by name, e.g. ``make_optimizer("adam", lr=0.01, betas=(0.9, 0.99))``.

    Hyperparameters are keyword arguments named as in ``torch.optim`` (see
    :func:`~.sgd.sgd`, :func:`~.rmsprop.rmsprop`, :func:`~.adam.adam`);
    unknown ones are a ``TypeError``.
    """
    get_spec(name)
    return OPTIMIZERS[name][1](**hyperparameters)
