"""The one registry of numerical schemes.

Adding a scheme means: write its kernel module (a ``make_step`` factory), add
one :class:`Scheme` entry to :data:`SCHEMES`, and add one row to the table of
schemes and orders in ``tests/test_scheme_orders.py``.
"""
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

from . import euler_maruyama, milstein, weak2


def brownian_draws(sde):
    """One N(0, dt) draw per Brownian dimension and step (the Gaussian schemes)."""
    return sde.noise_dim


@dataclass(frozen=True)
class Scheme:
    """A fixed-step SDE scheme and what it promises.

    Attributes
    ----------
    name : str
        Registry key, e.g. ``"euler_maruyama"``.
    strong_order : float or None
        Strong order for smooth coefficients; None for a scheme whose
        increments are not the Brownian path's (no strong convergence).
    weak_order : float
        Weak order for smooth coefficients.
    noise_types : tuple of str
        Noise structures the kernel supports (``"diagonal"``, ``"general"``).
    make_step : callable
        ``make_step(sde) -> step`` builds the jitted one-step kernel
        ``step(t, dt, x, dW, params, work, x_new)``.
    torchsde_method : str or None
        Name of the matching ``torchsde.sdeint`` method, if any.
    draws_per_step : callable
        ``draws_per_step(sde) -> int``: N(0, dt) draws a step takes from the
        path's stream (``dW`` of that length; the first ``noise_dim`` are the
        Brownian increment).
    levy_driven : bool
        Whether the scheme also integrates SDEs driven by α-stable Lévy noise
        (``SDE(levy_alpha=α)``): its step must use ``dW`` as an increment
        only, with no Brownian moment in its formula.
    """

    name: str
    strong_order: Optional[float]
    weak_order: float
    noise_types: Tuple[str, ...]
    make_step: Callable
    torchsde_method: Optional[str] = None
    description: str = ""
    draws_per_step: Callable = brownian_draws
    levy_driven: bool = False


SCHEMES = {
    "euler_maruyama": Scheme(
        name="euler_maruyama", strong_order=0.5, weak_order=1.0,
        noise_types=("diagonal", "general"), make_step=euler_maruyama.make_step,
        torchsde_method="euler", levy_driven=True,
        description="x + f dt + g dW; with α-stable driving noise, x + f dt + g dL "
                    "(Euler scheme for Lévy-driven SDEs)"),
    "milstein": Scheme(
        name="milstein", strong_order=1.0, weak_order=1.0,
        noise_types=("diagonal",), make_step=milstein.make_step,
        torchsde_method="milstein",
        description="EM + 1/2 g g' (dW^2 - dt); derivative-free RK form without diffusion_dx"),
    "weak2": Scheme(
        name="weak2", strong_order=None, weak_order=2.0,
        noise_types=("diagonal", "general"), make_step=weak2.make_step,
        draws_per_step=weak2.draws_per_step,
        description="Platen's explicit weak order 2.0 scheme (Kloeden & Platen 15.1), "
                    "derivative-free, three-point increments and two-point Levy-area "
                    "surrogates; diagonal noise coordinate-wise"),
}


def get_scheme(name):
    """Look up a scheme by name; unknown names list what the registry has."""
    try:
        return SCHEMES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"`method` must be one of {sorted(SCHEMES)}, got {name!r}") from None
