"""The Adam SDE (SPEC §3), time t = kη², state x = (θ, m, u) of size 3d, u = v/σ²:

    dθ = −(√γ2/γ1) P⁻¹ m dt      = −(m/γ1) · F(t, u) dt,
    dm = c1 ( ∇f(θ) − m ) dt + σ0 c1 Σ(θ)^{1/2} dW,
    du = c2 ( diag Σ(θ) − u ) dt,

P = σ0 √u + ε0 √γ2, γi = 1 − e^{−ci t}; F as in
:mod:`sde_engine.models.preconditioner`. Without bias correction γ1 = γ2 = 1.
σ0 = ση, ε0 = εη, c1 = (1−β1)/η², c2 = (1−β2)/η².

The t = 0 singularity (bias correction, m0 = u0 = 0): γ1(0) = 0 is never
divided by. The drift at t = 0 uses the small-t limits m/γ1 → ∇f(θ0) and
u/γ2 → diag Σ(θ0) (the SDE starts at t = 0 with m0 = 0 and u0 = 0); for
t > 0 the exact coefficients are evaluated. The singular part of the drift
behaves like t^{-1/2} (the noise in m/γ1) and is integrable; m0 ≠ 0 with bias
correction is refused because the drift then grows like 1/t.

SDE params: ``[σ0, ε0, c1, c2, bias_correction, *problem.params]``.
"""
import math

from numba import njit

from .. import validation as check
from .base import OptimizerSDE, build_sde
from .preconditioner import preconditioner


def _adam_kernels(grad, noise_sqrt, noise_diag, n_head):
    @njit(inline="always")
    def drift(t, x, params, out):
        d = x.shape[0] // 3
        pp = params[n_head:]
        theta = x[:d]
        grad(theta, pp, out[d:2 * d])
        noise_diag(theta, pp, out[2 * d:])
        sigma0, eps0, c1, c2 = params[0], params[1], params[2], params[3]
        bias = params[4] != 0.0
        gamma1 = -math.expm1(-c1 * t) if bias else 1.0
        for i in range(d):
            g = out[d + i]
            m = x[d + i]
            u = x[2 * d + i]
            s_ii = out[2 * d + i]
            m_hat = m / gamma1 if gamma1 > 0.0 else g
            out[i] = -m_hat * preconditioner(t, u, s_ii, sigma0, eps0, c2, bias)
            out[d + i] = c1 * (g - m)
            out[2 * d + i] = c2 * (s_ii - u)

    @njit(inline="always")
    def diffusion(t, x, params, out):
        d = x.shape[0] // 3
        noise_sqrt(x[:d], params[n_head:], out[d:2 * d])
        scale = params[0] * params[2]                  # σ0 c1
        m = out.shape[1]
        for i in range(d):
            for j in range(m):
                out[i, j] = 0.0
                out[d + i, j] *= scale
                out[2 * d + i, j] = 0.0

    return drift, diffusion


def adam_sde(problem, lr, betas=(0.9, 0.999), eps=1e-8, bias_correction=True):
    """The Adam SDE of ``problem`` (Adam step k ↔ t = k·lr²).

    Parameters
    ----------
    problem : Problem
    lr : float
        η > 0.
    betas : (float, float)
        (β1, β2), each in [0, 1); c1 = (1−β1)/η², c2 = (1−β2)/η².
    eps : float
        ε ≥ 0, outside the square root as in torch.optim; ε0 = εη.
    bias_correction : bool
        Bias-corrected SDE (torch's Adam) or not; see the module docstring for
        the t = 0 treatment.

    Returns
    -------
    OptimizerSDE
        ``.sde`` of dim 3d, state (θ, m, u), general noise (noise_dim d); h = lr².
    """
    lr = check.positive_float(lr, "lr")
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"`betas` must be a pair (beta1, beta2), got {betas!r}") from None
    beta1 = check.beta(beta1, "betas[0]")
    beta2 = check.beta(beta2, "betas[1]")
    eps = check.eps(eps)
    bias = check.flag(bias_correction, "bias_correction")
    sigma0, eps0 = problem.noise_scale * lr, eps * lr
    c1, c2 = (1.0 - beta1) / lr**2, (1.0 - beta2) / lr**2
    sde = build_sde(_adam_kernels, problem, [sigma0, eps0, c1, c2, float(bias)], 3, "adam_sde")
    return OptimizerSDE(
        sde=sde, problem=problem, optimizer="adam", lr=lr, h=lr**2,
        constants=dict(sigma0=sigma0, eps0=eps0, c1=c1, c2=c2, bias_correction=bias),
        hyperparameters=dict(lr=lr, betas=(beta1, beta2), eps=eps, bias_correction=bias))
