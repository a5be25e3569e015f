"""The SDE of an optimizer with a model EMA of its iterates.

Discrete (:mod:`sde_engine.optimizers.ema`): z_k = ρ z_{k−1} + (1 − ρ) θ_k.
With γ = (1 − ρ)/h (h the SDE time per step of the optimizer) this is a step
of

    dZ = γ (θ − Z) dt,

appended to the optimizer's SDE: state (base state, Z), the same noise. The
EMA adds no noise, and z_k uses θ_k (the new iterate): an O(h²) difference per
step from the Euler step, so the optimizer's weak order 1 carries over. The
scaling rule ρ → ρ^κ (Busbridge et al. 2023) keeps γ to first order when the
optimizer's own rule multiplies h by κ: (1 − ρ^κ)/(κh) = γ (1 + O(γh)).

SDE params: ``[γ, *base SDE params]`` (the problem's parameters stay last).
"""
import functools

import numpy as np
from numba import njit

from .. import validation as check
from ..sde import SDE
from .base import OptimizerSDE


@functools.lru_cache(maxsize=None)
def _template(base_drift, base_diffusion, n_base_blocks, name):
    """An SDE (dims set by the caller) whose functions wrap the base model's."""
    n_blocks = n_base_blocks + 1

    @njit(inline="always")
    def drift(t, x, params, out):
        d = x.shape[0] // n_blocks
        nb = n_base_blocks * d
        base_drift(t, x[:nb], params[1:], out[:nb])
        gamma = params[0]
        for i in range(d):
            out[nb + i] = gamma * (x[i] - x[nb + i])

    @njit(inline="always")
    def diffusion(t, x, params, out):
        d = x.shape[0] // n_blocks
        nb = n_base_blocks * d
        base_diffusion(t, x[:nb], params[1:], out[:nb])
        for i in range(nb, nb + d):
            for j in range(out.shape[1]):
                out[i, j] = 0.0

    return SDE(drift, diffusion, dim=1, noise="general", noise_dim=1, name=name)


class EMAOptimizerSDE(OptimizerSDE):
    """An optimizer's SDE with the EMA block Z (build with :func:`ema_sde`)."""

    def __init__(self, base, sde, ema_decay, gamma):
        super().__init__(sde=sde, problem=base.problem, optimizer=f"{base.optimizer}_ema",
                         lr=base.lr, h=base.h, constants={**base.constants, "gamma_ema": gamma},
                         hyperparameters={**base.hyperparameters, "ema_decay": ema_decay})
        self.base = base

    def initial_state(self, theta0, m0=None, v0=None):
        """The base model's state, then Z = θ0."""
        x = self.base.initial_state(theta0, m0=m0, v0=v0)
        return np.concatenate([x, np.asarray(x)[..., :self.dim]], axis=-1)

    def ema(self, x):
        """Z from SDE states; shape (..., d)."""
        return self._slice(x, self.n_blocks - 1)


def ema_sde(model, ema_decay):
    """``model``'s SDE with the EMA dZ = γ(θ − Z) dt, γ = (1 − ρ)/h, appended.

    Parameters
    ----------
    model : OptimizerSDE
        A general-noise optimizer model (``sgd_sde``, ``rmsprop_sde``, ...).
    ema_decay : float
        ρ in [0, 1) of the discrete EMA.

    Returns
    -------
    EMAOptimizerSDE
        ``.sde`` of dim (n_blocks + 1)·d, the base noise; ``optimizer`` is
        ``"<base>_ema"``; ``constants["gamma_ema"] = γ``.
    """
    rho = check.beta(ema_decay, "ema_decay")
    base = model.sde
    if base.noise != "general":
        raise ValueError(f"`model` must have general noise (its diffusion a matrix), got "
                         f"{base.noise!r}")
    gamma = (1.0 - rho) / model.h
    template = _template(base.drift_jit, base.diffusion_jit, model.n_blocks, f"{base.name}_ema")
    sde = template.with_params(np.concatenate([[gamma], base.params]))
    sde.dim, sde.noise_dim = base.dim + model.dim, base.noise_dim
    return EMAOptimizerSDE(model, sde, rho, gamma)
