"""The torch forms of the engine: SDEs on ``torchsde`` and discrete optimizers in torch.

* :mod:`.models` — torch forms of the engine's SDEs (:func:`torch_form`,
  :func:`register_torch_form`);
* :mod:`.simulate` — ``simulate(..., backend="torch")``, registered with
  :mod:`sde_engine.backends` on import;
* :mod:`.discrete` — :func:`run_optimizer_torch`, discrete SGD/RMSprop/Adam
  batched in torch.

Nothing here imports torch at module load: the Numba engine imports and runs
without it (inside this package ``import torch`` is the real torch, an
absolute import).
"""
from ..backends import register_backend
from .discrete import run_optimizer_torch
from .models import register_torch_form, torch_form
from .simulate import simulate_torch

register_backend("torch", simulate_torch)

__all__ = ["run_optimizer_torch", "register_torch_form", "simulate_torch", "torch_form"]
