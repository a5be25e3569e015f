"""Pure maths on arrays: convergence-order fits and exact references."""
from .order import (LogModelFit, ModelComparison, OrderFit, compare_fits, fit_log_model,
                    fit_order, noise_floor_mask)

__all__ = ["OrderFit", "fit_order", "noise_floor_mask", "LogModelFit", "fit_log_model",
           "ModelComparison", "compare_fits"]

from .moments import (MomentReference, exact_moments, sgd_iterate_moments,  # noqa: E402
                      sgd_momentum_iterate_moments)

__all__ += ["MomentReference", "exact_moments", "sgd_iterate_moments",
            "sgd_momentum_iterate_moments"]
