"""The SDEs of AdamW and RMSpropW (decoupled weight decay; Compagnoni et al. 2024).

One step of the discrete algorithm (:mod:`sde_engine.optimizers.weight_decay`)
is the base step followed by −ηλθ. In the SDE time of RMSprop and Adam,
h = η² per step, that is the drift −λ₀θ with λ₀ = λ/η, added to the θ block
of the base SDE (the decay is not preconditioned):

    dθ = (base drift) dt − λ₀ θ dt + (base diffusion) dW,    the rest unchanged.

λ₀ held fixed as η → 0 (λ ∝ η) gives the weak-order-1 limit in h; so the
square-root rule (η → √κη) takes λ → √κλ (:func:`~sde_engine.models.scaling.sqrt_rule`
with ``weight_decay``). SDE params: ``[λ₀, *base SDE params]`` (the problem's
parameters stay last, where :func:`sde_engine.coupled_weak_error` finds them).
"""
import functools

import numpy as np
from numba import njit

from .. import validation as check
from .adam import adam_sde
from .base import OptimizerSDE
from .rmsprop import rmsprop_sde
from ..sde import SDE


@functools.lru_cache(maxsize=None)
def _template(base_drift, base_diffusion, n_blocks, name):
    @njit(inline="always")
    def drift(t, x, params, out):
        base_drift(t, x, params[1:], out)
        decay = params[0]
        for i in range(x.shape[0] // n_blocks):
            out[i] -= decay * x[i]

    @njit(inline="always")
    def diffusion(t, x, params, out):
        base_diffusion(t, x, params[1:], out)

    return SDE(drift, diffusion, dim=1, noise="general", noise_dim=1, name=name)


class DecoupledDecaySDE(OptimizerSDE):
    """An RMSprop/Adam SDE with the decoupled decay −λ₀θ (state maps: the base's)."""

    def __init__(self, base, name, weight_decay):
        decay = weight_decay / base.lr
        template = _template(base.sde.drift_jit, base.sde.diffusion_jit, base.n_blocks,
                             f"{name}_sde")
        sde = template.with_params(np.concatenate([[decay], base.sde.params]))
        sde.dim, sde.noise_dim = base.sde.dim, base.sde.noise_dim
        super().__init__(sde=sde, problem=base.problem, optimizer=name, lr=base.lr, h=base.h,
                         constants={**base.constants, "weight_decay0": decay},
                         hyperparameters={**base.hyperparameters,
                                          "weight_decay": weight_decay})
        self.base = base

    def initial_state(self, theta0, m0=None, v0=None):
        return self.base.initial_state(theta0, m0=m0, v0=v0)

    def m(self, x):
        return self.base.m(x)

    def u(self, x):
        return self.base.u(x)


def rmspropw_sde(problem, lr, beta=0.99, eps=1e-8, weight_decay=1e-2, bias_correction=False):
    """The RMSpropW SDE: :func:`rmsprop_sde` plus −λ₀θ, λ₀ = weight_decay / lr.

    Returns
    -------
    DecoupledDecaySDE
        ``constants["weight_decay0"] = λ₀``; state (θ, u) as RMSprop's.
    """
    base = rmsprop_sde(problem, lr, beta=beta, eps=eps, bias_correction=bias_correction)
    return DecoupledDecaySDE(base, "rmspropw", check.nonnegative_float(weight_decay, "weight_decay"))


def adamw_sde(problem, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
              bias_correction=True):
    """The AdamW SDE: :func:`adam_sde` plus −λ₀θ, λ₀ = weight_decay / lr.

    Returns
    -------
    DecoupledDecaySDE
        ``constants["weight_decay0"] = λ₀``; state (θ, m, u) as Adam's.
    """
    base = adam_sde(problem, lr, betas=betas, eps=eps, bias_correction=bias_correction)
    return DecoupledDecaySDE(base, "adamw", check.nonnegative_float(weight_decay, "weight_decay"))
