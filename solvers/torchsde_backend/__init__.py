"""The same SDEs handed to ``torchsde.sdeint`` on a torch device, batched over paths.

torch and torchsde are optional: nothing here imports them at module load, so the
Numba engine imports and runs without them. :func:`require_torch` imports them
on demand and, when they are missing, raises an ``ImportError`` that says how to
install them. The integrator itself lives in :mod:`.runner` (imported by
:func:`integrate` on first use).

Methods (keys accepted by :func:`integrate`, all Itô, fixed step):

=============  ===============  ==========================================
method         torchsde method  noise types
=============  ===============  ==========================================
euler          ``euler``        diagonal, general, additive, scalar
milstein       ``milstein``     diagonal, additive, scalar (derivative-free)
srk            ``srk``          diagonal, additive, scalar
=============  ===============  ==========================================

The engine's scheme registry (:data:`solvers.registry.SCHEMES`) maps its schemes
to these names through ``Scheme.torchsde_method``; ``srk`` has no Numba kernel
and is reachable on the torch backend only.
"""
from .methods import TORCHSDE_NOISE_TYPES  # noqa: F401  (re-exported)

INSTALL_HINT = "pip install 'sde-engine[torch]'"


def require_torch():
    """Import and return ``(torch, torchsde)``.

    Raises
    ------
    ImportError
        When either is missing, with the command that installs them.
    """
    try:
        import torch
        import torchsde
    except ImportError as exc:
        raise ImportError(
            f"the torch backend needs torch and torchsde, which are not installed "
            f"({exc}); install them with: {INSTALL_HINT}") from exc
    return torch, torchsde


def integrate(*args, **kwargs):
    """Run an SDE through ``torchsde.sdeint``; see :func:`.runner.integrate`."""
    require_torch()
    from .runner import integrate as _integrate
    return _integrate(*args, **kwargs)
