"""SVAG hyperparameter transforms (SPEC §6).

SVAG (Stochastic Variance Amplified Gradient) runs the discrete algorithm on
the mixed gradient g = r1·g1 + r2·g2 of two independent oracle calls, with
r1 + r2 = 1 (the mean is kept) and r1² + r2² = A, so the noise covariance is
multiplied by A. Its parameter ℓ ≥ 1 moves the run along the family of
algorithms that share one SDE; ℓ → ∞ is the SDE.

* SGD form (Li, Malladi & Arora 2021): A = ℓ, r1,2 = (1 ± √(2ℓ−1))/2;
  lr → lr/ℓ; ℓ× more steps (SDE time per step lr/ℓ). Keeps lr·σ².
* Adaptive form for RMSprop/Adam (Malladi et al. 2022): A = ℓ²,
  r1,2 = (1 ± √(2ℓ²−1))/2 (noise std × ℓ); lr → lr/ℓ;
  β → 1 − (1−β)/ℓ² for β, β1, β2; eps → eps·ℓ; ℓ² × more steps (SDE time per
  step lr²/ℓ²). Keeps σ0 = σ·lr, ε0 = eps·lr, c1, c2.

At ℓ = 1: r1 = 1, r2 = 0 and every hyperparameter is unchanged, so SVAG is the
plain algorithm (the runner skips the second oracle call then).
"""
import math
from dataclasses import dataclass

from .. import validation as check
from .scaling import _one_of_beta, _optimizer_name

FORMS = {"sgd": "sgd", "rmsprop": "adaptive", "adam": "adaptive"}


@dataclass(frozen=True)
class SVAGSetting:
    """The transformed run for one ℓ.

    Attributes
    ----------
    ell : float
        ℓ ≥ 1.
    hyper : dict
        Transformed torch.optim-style hyperparameters (same keys as given).
    r1, r2 : float
        Mixing weights, g = r1·g1 + r2·g2.
    step_factor : int
        Steps of the SVAG run per step of the original run (ℓ or ℓ²).
    """

    ell: float
    hyper: dict
    r1: float
    r2: float
    step_factor: int

    @property
    def variance_factor(self):
        """A = r1² + r2²: the factor on the noise covariance."""
        return self.r1 * self.r1 + self.r2 * self.r2


def svag_weights(amplification):
    """r1,2 = (1 ± √(2A−1))/2 with r1 + r2 = 1 and r1² + r2² = A (A ≥ 1)."""
    a = check.positive_float(amplification, "amplification")
    if a < 1.0:
        raise ValueError(f"`amplification` must be >= 1, got {a!r}")
    root = math.sqrt(2.0 * a - 1.0)
    return 0.5 * (1.0 + root), 0.5 * (1.0 - root)


def _ell(ell):
    ell = check.positive_float(ell, "ell")
    if ell < 1.0:
        raise ValueError(f"`ell` must be >= 1, got {ell!r}")
    return ell


def _whole(value, what, ell):
    n = round(value)
    if abs(n - value) > 1e-9 * value:
        raise ValueError(f"`ell` must make {what} a whole number of steps, got ell={ell!r} "
                         f"({what} = {value!r})")
    return int(n)


def svag_sgd(ell, *, lr):
    """SVAG for SGD (SPEC §6, Li et al. 2021): lr/ℓ, ℓ× steps, A = ℓ.

    Parameters
    ----------
    ell : float
        ℓ ≥ 1, an integer (the run takes ℓ× more steps).
    lr : float
        Learning rate η.

    Returns
    -------
    SVAGSetting
    """
    ell = _ell(ell)
    lr = check.positive_float(lr, "lr")
    factor = _whole(ell, "ell", ell)
    r1, r2 = svag_weights(ell)
    return SVAGSetting(ell, {"lr": lr / ell}, r1, r2, factor)


def svag_adaptive(ell, *, lr, betas=None, beta=None, eps=0.0):
    """SVAG for RMSprop/Adam (SPEC §6, Malladi et al. 2022).

    lr → lr/ℓ; β → 1 − (1−β)/ℓ² (every β); eps → eps·ℓ; A = ℓ²; ℓ² × steps.

    Parameters
    ----------
    ell : float
        ℓ ≥ 1 with ℓ² an integer.
    lr : float
        Learning rate η > 0.
    betas : (float, float), optional
        Adam's (β1, β2).
    beta : float, optional
        RMSprop's β. Exactly one of ``betas`` and ``beta``.
    eps : float
        ε ≥ 0.

    Returns
    -------
    SVAGSetting
    """
    ell = _ell(ell)
    lr = check.positive_float(lr, "lr")
    eps = check.eps(eps)
    _one_of_beta(betas, beta)
    sq = ell * ell
    factor = _whole(sq, "ell**2", ell)
    hyper = {"lr": lr / ell}

    def shrink(b):   # 1 − (1 − β) is not always β in floating point: keep ℓ = 1 exact
        return b if factor == 1 else 1.0 - (1.0 - b) / sq

    if betas is not None:
        b1, b2 = check.betas(betas)
        hyper["betas"] = (shrink(b1), shrink(b2))
    else:
        hyper["beta"] = shrink(check.beta(beta, "beta"))
    hyper["eps"] = eps * ell
    r1, r2 = svag_weights(sq)
    return SVAGSetting(ell, hyper, r1, r2, factor)


def svag_transform(optimizer, ell, **hyper):
    """SVAG setting for ``optimizer`` (``"sgd"``, ``"rmsprop"``, ``"adam"``).

    SGD takes ``lr``; RMSprop ``lr, beta, eps``; Adam ``lr, betas, eps``.
    Unknown keywords are a TypeError.
    """
    name = _optimizer_name(optimizer, hyper, tuple(FORMS))
    if name == "sgd":
        return svag_sgd(ell, **hyper)
    return svag_adaptive(ell, **hyper)
