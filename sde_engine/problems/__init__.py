"""Losses with noisy gradient oracles (SPEC §1); the protocol is in :mod:`.base`."""
from .base import NOISE_FAMILIES, Problem
from .quadratic import Quadratic, quadratic

__all__ = ["NOISE_FAMILIES", "Problem", "Quadratic", "quadratic"]
