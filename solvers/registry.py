"""The one registry of numerical schemes.

Adding a scheme means: write its kernel module (a ``make_step`` factory), add
one :class:`Scheme` entry to :data:`SCHEMES`, and add one row to the table of
schemes and orders in ``tests/test_scheme_orders.py``.
"""
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

from . import euler_maruyama, milstein


@dataclass(frozen=True)
class Scheme:
    """A fixed-step SDE scheme and what it promises.

    Attributes
    ----------
    name : str
        Registry key, e.g. ``"euler_maruyama"``.
    strong_order, weak_order : float
        Orders of convergence in the step size for smooth coefficients.
    noise_types : tuple of str
        Noise structures the kernel supports (``"diagonal"``, ``"general"``).
    make_step : callable
        ``make_step(sde) -> step`` builds the jitted one-step kernel
        ``step(t, dt, x, dW, params, work, x_new)``.
    torchsde_method : str or None
        Name of the matching ``torchsde.sdeint`` method, if any.
    """

    name: str
    strong_order: float
    weak_order: float
    noise_types: Tuple[str, ...]
    make_step: Callable
    torchsde_method: Optional[str] = None
    description: str = ""


SCHEMES = {
    "euler_maruyama": Scheme(
        name="euler_maruyama", strong_order=0.5, weak_order=1.0,
        noise_types=("diagonal", "general"), make_step=euler_maruyama.make_step,
        torchsde_method="euler",
        description="x + f dt + g dW"),
    "milstein": Scheme(
        name="milstein", strong_order=1.0, weak_order=1.0,
        noise_types=("diagonal",), make_step=milstein.make_step,
        torchsde_method="milstein",
        description="EM + 1/2 g g' (dW^2 - dt); derivative-free RK form without diffusion_dx"),
}


def get_scheme(name):
    """Look up a scheme by name; unknown names list what the registry has."""
    try:
        return SCHEMES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"`method` must be one of {sorted(SCHEMES)}, got {name!r}") from None
