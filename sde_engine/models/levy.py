"""The Lévy-driven SGD SDE for α-stable gradient noise, time t = kη.

With g = ∇f + σ S ξ, ξ_j = 2^{−1/2} X_j and X_j ~ S_α independent (the
``"stable"`` family of :mod:`sde_engine.problems.base`, α ∈ (1, 2]), SGD's
noise over the 1/η steps of a unit of time is a sum of i.i.d. α-stable
vectors, which is α-stable with scale (1/η)^{1/α}: the generalised central
limit theorem replaces the Brownian motion of the SGD SDE by the α-stable
Lévy process L (E exp(iuL_t) = exp(−t|u|^α)),

    dX = −∇f(X) dt + η^{1 − 1/α} 2^{−1/2} σ S(X) dL_t,      state x = θ (d),

(the SDE of Şimşekli, Sagun & Gürbüzbalaban, ICML 2019, with its factor
η^{(α−1)/α}, in this normalisation of ξ).
The Euler scheme of this SDE at dt = η is SGD itself in law — its increment
η^{1−1/α} 2^{−1/2} σ S η^{1/α} X = η σ S ξ — so SGD and the SDE differ by the
Euler scheme's weak error only. At α = 2, L = √2 W and the SDE is the SGD SDE
σ√η S dW of :func:`sde_engine.models.sgd_sde`. For α < 2 that Brownian SDE
has no covariance to match; see :mod:`sde_engine.studies.heavy_tails` for
what it gets wrong.

SDE params: ``[η^{1−1/α} 2^{−1/2}, *problem.params]``; ``sde.levy_alpha`` = α.
"""
from .. import validation as check
from .base import OptimizerSDE, build_sde
from .sgd import sgd_kernels


def sgd_levy_sde(problem, lr):
    """The Lévy-driven SGD SDE of a problem with α-stable gradient noise.

    Parameters
    ----------
    problem : Problem
        With ``noise="stable"`` (α = ``problem.noise_shape`` ∈ (1, 2]).
    lr : float
        η > 0.

    Returns
    -------
    OptimizerSDE
        ``.sde`` of dim d, general noise, noise_dim d, driven by α-stable
        noise (``sde.levy_alpha`` = α; :func:`sde_engine.simulate` integrates
        it with ``method="euler_maruyama"``); ``h = lr``;
        ``constants = {"alpha": α}``.
    """
    lr = check.positive_float(lr, "lr")
    if problem.noise != "stable":
        raise ValueError(f"the Lévy-driven SGD SDE needs α-stable gradient noise "
                         f"(noise='stable'); {problem!r} has noise={problem.noise!r}: its SDE "
                         f"is sgd_sde")
    alpha = problem.noise_shape
    sde = build_sde(sgd_kernels, problem, [lr ** (1.0 - 1.0 / alpha) * 2.0 ** -0.5], 1,
                    "sgd_levy_sde", brownian_limit=False)
    sde.levy_alpha = alpha
    return OptimizerSDE(sde=sde, problem=problem, optimizer="sgd", lr=lr, h=lr,
                        constants=dict(alpha=alpha), hyperparameters=dict(lr=lr))
