"""Losses with noisy gradient oracles (SPEC §1); the protocol is in :mod:`.base`."""
from .base import NOISE_FAMILIES, Problem
from .custom import custom_problem
from .quadratic import Quadratic, quadratic
from .regression import Regression, linear_regression, logistic_regression, synthetic_regression

__all__ = ["NOISE_FAMILIES", "Problem", "Quadratic", "Regression", "custom_problem",
           "linear_regression", "logistic_regression", "quadratic", "synthetic_regression"]
