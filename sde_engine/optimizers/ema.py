"""Model EMA: an exponential moving average of any optimizer's iterates.

    z_k = ρ z_{k−1} + (1 − ρ) θ_k,     z_0 = θ_0,

kept as one more block ``"ema"`` of the state, after the optimizer's own
(``with_ema(optimizer, ρ)``). Under a batch-size change B → κB, the EMA
scaling rule of Busbridge et al. (NeurIPS 2023) is ρ → ρ^κ, applied together
with the optimizer's own rule (:func:`sde_engine.models.scaling.ema_rule`).
Its SDE is the optimizer's SDE with dZ = γ (θ − Z) dt, γ = (1 − ρ)/h
(:func:`sde_engine.models.ema.ema_sde`).
"""
import functools

import numpy as np
from numba import njit

from .. import validation as check
from .base import Optimizer, OptimizerSpec


@functools.lru_cache(maxsize=None)
def ema_spec(base):
    """The :class:`OptimizerSpec` of ``base`` (a spec) with an EMA block.

    ``hyper = [ρ, *base hyper]``: the base update reads ``hyper[1:]``, so the
    bias-correction tables the runner appends still follow the base's own
    entries.
    """
    base_update = base.update
    n_base = len(base.blocks)

    @njit(inline="always")
    def update(k, g, state, hyper, out):
        d = g.shape[0]
        n = n_base * d
        base_update(k, g, state[:n], hyper[1:], out[:n])
        rho = hyper[0]
        for i in range(d):
            out[n + i] = rho * state[n + i] + (1.0 - rho) * out[i]

    return OptimizerSpec(
        name=f"{base.name}_ema", blocks=base.blocks + ("ema",), update=update,
        hyper_names=("ema_decay",) + base.hyper_names, time_exponent=base.time_exponent,
        description=f"{base.description}; z ← ρ z + (1 − ρ) θ", bias_betas=base.bias_betas)


class EMAOptimizer(Optimizer):
    """An optimizer with an EMA of its iterates (build with :func:`with_ema`)."""

    def __init__(self, base, ema_decay):
        super().__init__(ema_spec(base.spec), {**base.hyperparameters, "ema_decay": ema_decay},
                         np.concatenate([[ema_decay], base.hyper]),
                         constructor=functools.partial(_rebuild, base.constructor))
        self.base = base

    def init(self, theta0, m0=None, v0=None):
        """The base optimizer's state at step 0, then z_0 = θ_0."""
        state = super().init(theta0, m0=m0, v0=v0)
        d = np.shape(theta0)[-1]
        state[..., self.block_slice("ema", d)] = state[..., :d]
        return state


def _rebuild(base_constructor, ema_decay, **hyperparameters):
    return with_ema(base_constructor(**hyperparameters), ema_decay)


def with_ema(optimizer, ema_decay):
    """``optimizer`` with a model EMA z_k = ρ z_{k−1} + (1 − ρ) θ_k of its iterates.

    Parameters
    ----------
    optimizer : Optimizer
        Any optimizer of the registry (not one that already has an EMA).
    ema_decay : float
        ρ in [0, 1).

    Returns
    -------
    EMAOptimizer
        Name ``<base>_ema``, state blocks ``(*base blocks, "ema")``, observables
        ``"ema"`` and ``"ema_sq"`` for z and z².
    """
    if not isinstance(optimizer, Optimizer) or "ema" in optimizer.blocks:
        raise ValueError(f"`optimizer` must be an Optimizer without an EMA, got {optimizer!r}")
    if optimizer.constructor is None:
        raise ValueError(f"`optimizer` {optimizer!r} was built without a constructor")
    return EMAOptimizer(optimizer, check.beta(ema_decay, "ema_decay"))
