"""The SignSGD SDE (Compagnoni et al. 2024, arXiv 2411.15958) and a Signum SDE, time t = kη.

**SignSGD.** For Gaussian gradient noise g = ∇f + σ S ξ with diagonal
Σ = S Sᵀ = diag(s_i²), coordinate i of sign(g) has mean E sign(g_i) =
erf(∂_i f / (√2 σ s_i)) and variance 1 − erf², independently across
coordinates, so one step θ_k = θ_{k−1} − η sign(g_k) has the first two moments
of a step of

    dX = −erf(∇f(X) / (√2 σ s(X))) dt + √η diag(√(1 − erf²)) dW,

state x = θ (d), noise_dim d, weak order 1 in η (the paper's SignSGD SDE for
Gaussian noise). The drift is the gradient-to-noise ratio r = ∂f/(σ s)
through erf: −√(2/π) r when the noise dominates
(SGD-like, with a learning rate rescaled by 1/(σ s)), −sign(∇f) when the signal
does; where s_i = 0 it is −sign(∂_i f) and the diffusion 0. The paper splits
the dynamics into three phases by |r|/√2 (:mod:`sde_engine.studies.sign_phases`).

**Signum** (signSGD with momentum, :func:`sde_engine.optimizers.signum`):
m_k = β m_{k−1} + (1 − β) g_k, θ_k = θ_{k−1} − η sign(m_k). Compagnoni et al.
give no SDE for it; the one here is derived in this module (averaging over the
fast momentum) and checked by measurement (``tests/test_signum.py``). With β
fixed as η → 0, θ moves by O(η) per step while m relaxes in O(1/(1 − β))
steps, so at a frozen θ the momentum is the stationary AR(1) process

    m = ∇f + (1 − β) Σ_j β^j σ S ξ_{k−j} ~ N(∇f, c² σ² diag(s²)),   c² = (1 − β)/(1 + β),

and sign(m_i) has mean erf(κ r_i/√2), κ = 1/c = √((1 + β)/(1 − β)): the
momentum divides the noise the sign sees by κ. Its signs are correlated in
time (m_k and m_{k+ℓ} have correlation β^ℓ), so the variance per unit time
of Σ_k η sign(m_k) is η times the long-run variance

    V(a) = Σ_{ℓ∈ℤ} Cov(sign m_k, sign m_{k+ℓ})
         = 1 − erf(a/√2)² + (4/π) Σ_{ℓ≥1} ∫_0^{arcsin β^ℓ} exp(−a²/(1 + sin φ)) dφ,   a = κ r,

(Cov of the signs of two N(a, 1) variables with correlation ρ is
(2/π) ∫_0^{arcsin ρ} exp(−a²/(1 + sin φ)) dφ, Sheppard's formula for a = 0),
not 1 − erf², which is only its ℓ = 0 term. The Signum SDE is

    dX = −erf(κ ∇f(X) / (√2 σ s(X))) dt + √η diag(√V(κ r)) dW,      state x = θ (d),

for Gaussian noise with diagonal Σ. At a = 0, V = (2/π) Σ_ℓ arcsin β^|ℓ|
(13.3 at β = 0.9, against 1 for SignSGD): near the minimum Signum moves in
long runs of equal signs. Its weak error is O(η), with a constant that grows
like 1/(1 − β) (the O(1/(1 − β))-step transient from m_0 = 0, where m has
not yet reached its stationary law, and the lag of m behind ∇f(θ)): the
model is for η/(1 − β) small against the distance over which ∇f/(σs) changes
by 1/κ. Measured on f = θ²/2, σ = 1, β = 0.9: the stationary E f/η of the
SDE is 0.66, 0.77, 0.86, 0.89 at η = 0.04, 0.02, 0.01, 0.005 against
0.93 … 0.96 for Signum (the linearised floor is 0.954); at β = 0.5 they
agree within 3% at every η. β = 0 gives the SignSGD SDE. V is tabulated once
per model on a grid of a (cubic Hermite interpolation, relative error
< 10⁻⁷ where V > 10⁻¹²; :func:`sign_long_run_variance` computes it directly).

SDE params: SignSGD ``[√η, *problem.params]``; Signum ``[√η, κ, Δa, n, V (n
values on a = 0, Δa, …), V′ (n), *problem.params]`` (σ is ``problem.params[0]``).
"""
import functools
import math

import numpy as np
from numba import njit

from .. import validation as check
from .base import OptimizerSDE, _block, build_sde
from .sign_tails import expected_sign_table, hermite_table, tabulated_expected_sign


def _sign_kernel_factory(expected_sign, step_variance):
    """(drift, diffusion) factory of a sign method's SDE: drift −E sign, diffusion
    √η √V on the diagonal (params[0] = √η), from ``expected_sign(gradient,
    noise_sd, params)`` = E sign and ``step_variance(gradient, noise_sd, e,
    params)`` = V, the variance per step of the signs (e = E sign)."""

    def factory(grad, noise_sqrt, noise_diag, n_head):
        @njit(inline="always")
        def drift(t, x, params, out):
            p = params[n_head:]
            variance = np.empty(x.shape[0])
            noise_diag(x, p, variance)
            grad(x, p, out)
            for i in range(x.shape[0]):
                out[i] = -expected_sign(out[i], p[0] * math.sqrt(max(variance[i], 0.0)), params)

        @njit(inline="always")
        def diffusion(t, x, params, out):
            p = params[n_head:]
            d = x.shape[0]
            variance = np.empty(d)
            noise_diag(x, p, variance)
            g = np.empty(d)
            grad(x, p, g)
            for i in range(d):
                sd = p[0] * math.sqrt(max(variance[i], 0.0))
                e = expected_sign(g[i], sd, params)
                for j in range(d):
                    out[i, j] = 0.0
                out[i, i] = params[0] * math.sqrt(max(step_variance(g[i], sd, e, params), 0.0))

        return drift, diffusion

    return factory


@njit(inline="always")
def _one_step_variance(gradient, noise_sd, e, params):
    """Independent signs (SignSGD): Var sign(g) = 1 − (E sign)²."""
    return 1.0 - e * e


@njit(inline="always")
def _gaussian_expected_sign(gradient, noise_sd, params):
    return _expected_sign(gradient, noise_sd)


@njit(inline="always")
def _tabulated_expected_sign(gradient, noise_sd, params):
    return tabulated_expected_sign(gradient, noise_sd, params, 1)


#: Gaussian noise (erf), and Student-t or α-stable noise (G tabulated in params[1:]).
_sign_kernels = _sign_kernel_factory(_gaussian_expected_sign, _one_step_variance)
_tail_sign_kernels = _sign_kernel_factory(_tabulated_expected_sign, _one_step_variance)


@njit(inline="always")
def _expected_sign(gradient, noise_sd):
    """E sign(gradient + noise_sd·Z), Z ~ N(0, 1): erf(gradient / (√2 noise_sd)),
    or sign(gradient) when noise_sd = 0."""
    if noise_sd > 0.0:
        return math.erf(gradient / (math.sqrt(2.0) * noise_sd))
    return 1.0 if gradient > 0.0 else (-1.0 if gradient < 0.0 else 0.0)


def signsgd_sde(problem, lr):
    """The SignSGD SDE of ``problem`` at learning rate ``lr`` (step k ↔ t = k·lr).

    Parameters
    ----------
    problem : Problem
        With diagonal Σ(θ) (``problem.diagonal_noise``) and Gaussian noise (the
        erf drift), or Student-t or α-stable noise (drift from the family's
        CDF, :mod:`sde_engine.models.sign_tails`; any α ∈ (1, 2]: sign(g) is
        bounded, so the SDE stays Brownian).
    lr : float
        η > 0.

    Returns
    -------
    OptimizerSDE
        ``.sde`` of dim d, general noise (a diagonal matrix), noise_dim d; ``h = lr``;
        ``constants = {"noise": family, "shape": ν or α}`` for the heavy-tailed
        families. SDE params ``[√η, *problem.params]``, with the G table of
        :func:`~sde_engine.models.sign_tails.expected_sign_table` after √η for
        those.
    """
    lr = check.positive_float(lr, "lr")
    if not problem.diagonal_noise or problem.noise not in ("gaussian", "student_t", "stable"):
        raise ValueError(f"the SignSGD SDE needs Gaussian noise with diagonal Σ(θ) (or "
                         f"Student-t or α-stable noise; its drift is E sign(g), erf(∇f / "
                         f"(√2 σ s)) for Gaussian noise); {problem!r} has "
                         f"noise={problem.noise!r}, diagonal_noise={problem.diagonal_noise}")
    if problem.noise == "gaussian":
        sde = build_sde(_sign_kernels, problem, [lr**0.5], 1, "signsgd_sde")
        constants = {}
    else:
        table = expected_sign_table(problem.noise, problem.noise_shape)
        sde = build_sde(_tail_sign_kernels, problem, np.concatenate([[lr**0.5], table]), 1,
                        "signsgd_sde", brownian_limit=False)
        constants = dict(noise=problem.noise, shape=problem.noise_shape)
    return OptimizerSDE(sde=sde, problem=problem, optimizer="signsgd", lr=lr, h=lr,
                        constants=constants, hyperparameters=dict(lr=lr))


# ---- Signum ------------------------------------------------------------------------------
#: The grid of a = κ r on which V(a) is tabulated: a = 0, Δa, …, A_MAX; beyond it V < 10⁻²².
TABLE_STEP, TABLE_MAX = 0.01, 10.0


def momentum_noise_factor(momentum):
    """κ = √((1 + β)/(1 − β)): the stationary EMA m of the gradient samples has noise
    σ s/κ, so sign(m) sees the gradient-to-noise ratio κ r."""
    momentum = check.beta(momentum, "momentum")
    return math.sqrt((1.0 + momentum) / (1.0 - momentum))


def expected_sign(ratio, momentum=0.0):
    """E sign(m) for Signum with momentum β at gradient-to-noise ratio r = ∂f/(σ s).

    erf(κ r/√2) (κ = :func:`momentum_noise_factor`); β = 0 is SignSGD's
    E sign(g) = erf(r/√2). Minus it is the drift of the SDEs of this module.

    Parameters
    ----------
    ratio : array_like
        r = ∂_i f/(σ s_i).
    momentum : float
        β in [0, 1).

    Returns
    -------
    ndarray
    """
    from scipy import special

    kappa = momentum_noise_factor(momentum)
    return special.erf(kappa * np.asarray(ratio, dtype=float) / math.sqrt(2.0))


def sign_long_run_variance(ratio, momentum=0.0, *, derivative=False):
    """The long-run variance V of the sign sequence sign(m_k) at a frozen θ.

    V = Σ_ℓ Cov(sign m_k, sign m_{k+ℓ}) for the stationary Gaussian AR(1)
    momentum of the module docstring, with standardised mean a = κ r:
    1 − erf(a/√2)² (the ℓ = 0 term, all of it for β = 0) plus
    (4/π) Σ_{ℓ≥1} ∫_0^{arcsin β^ℓ} exp(−a²/(1 + sin φ)) dφ, each integral by
    Gauss–Legendre quadrature (24 nodes while β^ℓ > 0.1, 8 after), lags up to
    where the rest is below 10⁻¹⁵. Cost ∝ 1/(1 − β) (0.1 s at β = 0.99 on
    the 500-point table).

    Parameters
    ----------
    ratio : array_like
        r = ∂f/(σ s); V is even in r.
    momentum : float
        β in [0, 1).
    derivative : bool
        Also return dV/da (a = κ r), for the interpolation table.

    Returns
    -------
    ndarray, or (V, dV/da)
    """
    from scipy import special

    beta = check.beta(momentum, "momentum")
    a = momentum_noise_factor(beta) * np.abs(np.asarray(ratio, dtype=float))
    flat = a.reshape(-1)
    e = special.erf(flat / math.sqrt(2.0))
    value = special.erfc(flat / math.sqrt(2.0)) * (1.0 + e)          # 1 − e², no cancellation
    slope = -2.0 * e * math.sqrt(2.0 / math.pi) * np.exp(-0.5 * flat * flat)
    if beta > 0.0:
        n_lags = max(1, math.ceil(math.log(1e-15 * (1.0 - beta)) / math.log(beta)))
        rho = beta ** np.arange(1, n_lags + 1)
        for lags, nodes in ((rho[rho > 0.1], 24), (rho[rho <= 0.1], 8)):
            x, w = np.polynomial.legendre.leggauss(nodes)
            for chunk in np.array_split(lags, max(1, lags.size // 256)):
                if chunk.size == 0:
                    continue
                half = 0.5 * np.arcsin(chunk)[:, None]
                phi, weight = half * (x + 1.0), half * w          # (lags, nodes)
                inv = 1.0 / (1.0 + np.sin(phi))
                f = np.exp(-(flat * flat)[:, None, None] * inv) * weight
                value += (4.0 / math.pi) * f.sum(axis=(1, 2))
                slope += (4.0 / math.pi) * (-2.0 * flat[:, None, None] * inv * f).sum(axis=(1, 2))
    value = value.reshape(a.shape)
    return (value, slope.reshape(a.shape)) if derivative else value


@njit(inline="always")
def _long_run_variance(a, params, first):
    """V(a) from the table in params[first:] (Δa, n, n values, n slopes); 0 beyond it."""
    step = params[first]
    n = int(params[first + 1])
    if not a < (n - 1) * step:             # beyond the table, or a = ∞ (no noise)
        return 0.0
    return hermite_table(params, step, n, first + 2, a)


@njit(inline="always")
def _signum_expected_sign(gradient, noise_sd, params):
    """E sign(m) = erf(κ ∂f/(√2 σ s)): the stationary momentum's noise is σ s/κ (κ = params[1])."""
    return _expected_sign(gradient, noise_sd / params[1])


@njit(inline="always")
def _signum_variance(gradient, noise_sd, e, params):
    """V(κ|∂f|/(σ s)) from the table in params[2:] (0 without noise)."""
    a = params[1] * abs(gradient) / noise_sd if noise_sd > 0.0 else math.inf
    return _long_run_variance(a, params, 2)


_signum_kernels = _sign_kernel_factory(_signum_expected_sign, _signum_variance)


class SignumSDE(OptimizerSDE):
    """The Signum SDE: state x = θ only (the momentum is averaged out, see the module
    docstring), so the discrete (θ, m) maps to x = θ and m0 must be 0."""

    def initial_state(self, theta0, m0=None, v0=None):
        if v0 is not None:
            raise ValueError("`v0` does not apply to the Signum SDE (state x = θ)")
        if m0 is not None and np.any(np.asarray(m0, dtype=float) != 0.0):
            raise ValueError(f"`m0` must be 0 for the Signum SDE (state x = θ; its drift is "
                             f"that of the stationary momentum, reached from m0 = 0 in "
                             f"O(1/(1 − β)) steps), got {m0!r}")
        return _block(theta0, "theta0", self.dim)

    def u(self, x):
        raise ValueError("the Signum SDE has no u block")


def signum_sde(problem, lr, momentum):
    """The Signum SDE of ``problem`` at learning rate η and momentum β (step k ↔ t = kη).

    dX = −erf(κ∇f/(√2σs)) dt + √η diag(√V(κr)) dW, κ = √((1 + β)/(1 − β)),
    V the long-run variance of the signs (module docstring; derived here, not
    in Compagnoni et al.).

    Parameters
    ----------
    problem : Problem
        With Gaussian noise and diagonal Σ(θ) (``problem.diagonal_noise``).
    lr : float
        η > 0.
    momentum : float
        β in [0, 1); β = 0 is the SignSGD SDE.

    Returns
    -------
    SignumSDE
        ``.sde`` of dim d, general noise (a diagonal matrix), noise_dim d; ``h = lr``;
        ``constants = {"kappa": κ, "lrv0": V(0)}``.
    """
    lr = check.positive_float(lr, "lr")
    momentum = check.beta(momentum, "momentum")
    if not problem.diagonal_noise or problem.noise != "gaussian":
        raise ValueError(f"the Signum SDE needs Gaussian noise with diagonal Σ(θ) (its drift "
                         f"is E sign(m) = erf(κ∇f / (√2 σ s))); {problem!r} has "
                         f"noise={problem.noise!r}, diagonal_noise={problem.diagonal_noise}")
    kappa = momentum_noise_factor(momentum)
    value, slope = _table(momentum)
    head = np.concatenate([[lr**0.5, kappa, TABLE_STEP, value.size], value, slope])
    sde = build_sde(_signum_kernels, problem, head, 1, "signum_sde")
    return SignumSDE(sde=sde, problem=problem, optimizer="signum", lr=lr, h=lr,
                     constants=dict(kappa=kappa, lrv0=float(value[0])),
                     hyperparameters=dict(lr=lr, momentum=momentum))


@functools.lru_cache(maxsize=32)
def _table(momentum):
    """V and dV/da on a = 0, Δa, …, A_MAX (read-only arrays, one per β)."""
    a = np.arange(round(TABLE_MAX / TABLE_STEP) + 1) * TABLE_STEP
    kappa = momentum_noise_factor(momentum)
    value, slope = sign_long_run_variance(a / kappa, momentum, derivative=True)
    value.setflags(write=False)
    slope.setflags(write=False)
    return value, slope
