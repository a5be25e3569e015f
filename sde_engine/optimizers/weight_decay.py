"""Decoupled weight decay (Loshchilov & Hutter 2019): AdamW and RMSpropW.

    θ_k = (1 − ηλ) θ_{k−1} − η · (the Adam or RMSprop step of g_k),

i.e. the base optimizer's update followed by −ηλθ_{k−1}, with the gradient
taken before the decay, as ``torch.optim.AdamW`` does (it multiplies by
1 − ηλ first; the two orders agree to rounding). State: the base's.
``hyper = [λ, *base hyper]``; the base update reads ``hyper[1:]``, so the
runner's bias-correction tables keep their place. SDE time per step: η², the
base's (:mod:`sde_engine.models.weight_decay`).
"""
import functools

from numba import njit

from .. import validation as check
from .adam import adam
from .base import Optimizer, OptimizerSpec
from .rmsprop import rmsprop


@functools.lru_cache(maxsize=None)
def decoupled_decay_spec(base, name):
    """The :class:`OptimizerSpec` ``name`` of ``base`` (a spec) with decoupled decay."""
    base_update = base.update

    @njit(inline="always")
    def update(k, g, state, hyper, out):
        base_update(k, g, state, hyper[1:], out)
        decay = hyper[1] * hyper[0]                 # η λ
        for i in range(g.shape[0]):
            out[i] -= decay * state[i]

    return OptimizerSpec(
        name=name, blocks=base.blocks, update=update,
        hyper_names=("weight_decay",) + base.hyper_names, time_exponent=base.time_exponent,
        description=f"{base.description}; θ ← θ − ηλθ", bias_betas=base.bias_betas)


def _with_decay(base, name, weight_decay, constructor):
    spec = decoupled_decay_spec(base.spec, name)
    return Optimizer(spec, {**base.hyperparameters, "weight_decay": weight_decay},
                     [weight_decay, *base.hyper], constructor=constructor)


def adamw(*, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, bias_correction=True):
    """AdamW as ``torch.optim.AdamW`` (no amsgrad): Adam plus θ ← θ − ηλθ.

    Parameters
    ----------
    lr, betas, eps, bias_correction
        As for :func:`~sde_engine.optimizers.adam`.
    weight_decay : float
        λ ≥ 0 (torch's default 1e-2).

    Returns
    -------
    Optimizer
        State layout ``(θ, m, v)``.
    """
    base = adam(lr=lr, betas=betas, eps=eps, bias_correction=bias_correction)
    return _with_decay(base, "adamw", check.nonnegative_float(weight_decay, "weight_decay"),
                       adamw)


def rmspropw(*, lr=1e-2, beta=0.99, eps=1e-8, weight_decay=1e-2, bias_correction=False):
    """RMSprop with decoupled weight decay (the RMSpropW of Compagnoni et al. 2024;
    ``torch.optim.RMSprop``'s own ``weight_decay`` is the coupled L2 form).

    Parameters
    ----------
    lr, beta, eps, bias_correction
        As for :func:`~sde_engine.optimizers.rmsprop`.
    weight_decay : float
        λ ≥ 0.

    Returns
    -------
    Optimizer
        State layout ``(θ, v)``.
    """
    base = rmsprop(lr=lr, beta=beta, eps=eps, bias_correction=bias_correction)
    return _with_decay(base, "rmspropw",
                       check.nonnegative_float(weight_decay, "weight_decay"), rmspropw)
