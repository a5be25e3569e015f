"""Pure maths on arrays: convergence-order fits and exact references."""
from .order import OrderFit, fit_order, noise_floor_mask

__all__ = ["OrderFit", "fit_order", "noise_floor_mask"]
