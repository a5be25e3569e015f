"""Pure maths on arrays: convergence-order fits and exact references."""
from .order import OrderFit, fit_order, noise_floor_mask

__all__ = ["OrderFit", "fit_order", "noise_floor_mask"]

from .moments import MomentReference, exact_moments  # noqa: E402  (issue 3)

__all__ += ["MomentReference", "exact_moments"]
