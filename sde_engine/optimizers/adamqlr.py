"""AdamQLR on the engine's problems: many independent runs in one Numba loop (SPEC §7).

One step on a problem with loss f, oracle g and curvature product C v, step
counter k = 1, 2, ... (the same equations as :mod:`.adamqlr_torch`)::

    f0 = f(θ) ;  g = oracle(θ)                   (∇f(θ) when ``noisy=False``)
    m ← β1 m + (1−β1) g ;  v ← β2 v + (1−β2) g²
    d = (m / (1−β1^k)) / (sqrt(v / (1−β2^k)) + ε)
    A = dᵀCd + λ dᵀd ;  b = gᵀd ;  α = b / A  (α = 0 if A = 0)
    α ← clip(α, −c, c)                           (c = ``lr_clipping``, default 0.1)
    θ ← θ − α d
    f1 = f(θ) ;  ρ = (f1 − f0) / (½ α² A − α b)
    λ ← ω_dec λ if ρ > 3/4 ;  λ ← ω_inc λ if ρ < 1/4 ;  λ ← max(λ, λ_min) ;  NaN ρ keeps λ.

Learning-rate clipping (the authors' ``lr_clipping``; their untuned
``AdamQLR_NoHPO`` configuration uses c = 0.1, SPEC §7) bounds the magnitude:
|α| ≤ c with the sign kept, so a negative α (gᵀd < 0, or A < 0 with Hessian
curvature: a step along +d) is clipped to ≥ −c. ρ, the damping update and the
recorded α all use the clipped α. ``lr_clipping=None`` turns it off.

Noise model. On the engine's problems the gradient noise is the problem's oracle
g = ∇f + σ z (SPEC §1); f0, f1 and C are the exact (full) loss and curvature at
θ. So the randomness enters AdamQLR only through g — through m, v, d, b and
hence α — which is the controlled-noise setting in which the SDE view is posed.
(In minibatch training, f0, f1 and C are themselves minibatch quantities; the
torch optimizer does that.)

Curvature products ``(x, params, v, out)`` are exact: a problem's own ``hvp`` /
``gnvp`` attributes (Rosenbrock), else those of :mod:`.adamqlr_curvature`
(quadratics, linear and logistic regression).

Runs. :func:`adamqlr_run` integrates ``n_paths`` independent runs with a
``prange`` over runs; run ``i`` draws from the stream ``(seed, i)`` of
:mod:`solvers.rng`, so its numbers do not depend on the thread count or on
``n_paths``. (It is a loop of its own, not the discrete-optimizer runner, because
each step needs the loss twice and a curvature product, which that runner's
(init, update) kernels do not receive.)
"""
import math
import numbers
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from solvers.rng import seed_stream

from .. import validation as check
from .adamqlr_curvature import product_for

CURVATURES = ("gauss_newton", "hessian")
LR_CLIPPING = 0.1   # the authors' untuned configuration (AdamQLR_NoHPO), SPEC §7
# hyperparameter vector layout for the kernel
_B1, _B2, _EPS, _LAM0, _DEC, _INC, _CLIP, _LMIN = range(8)
# per-step record layout
FIELDS = ("loss", "loss_new", "alpha", "damping", "rho", "gtd", "dcd")
_F0, _F1, _ALPHA, _LAM, _RHO, _GTD, _DCD = range(len(FIELDS))


def check_hyperparameters(betas, eps, damping, omega_dec, omega_inc, lr_clipping, damping_min):
    """Validate AdamQLR's hyperparameters; returns a dict of floats (``lr_clipping`` = inf
    when None)."""
    try:
        b1, b2 = (float(b) for b in betas)
    except (TypeError, ValueError):
        raise ValueError(f"`betas` must be a pair of numbers in [0, 1), got {betas!r}") from None
    if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
        raise ValueError(f"`betas` must lie in [0, 1), got {betas!r}")
    eps = check.positive_float(eps, "eps")
    damping = check.positive_float(damping, "damping")
    omega_dec = check.positive_float(omega_dec, "omega_dec")
    omega_inc = check.positive_float(omega_inc, "omega_inc")
    if not omega_dec < 1.0 < omega_inc:
        raise ValueError(f"need `omega_dec` < 1 < `omega_inc`, got omega_dec={omega_dec!r}, "
                         f"omega_inc={omega_inc!r}")
    lr_clipping = (math.inf if lr_clipping is None
                   else check.positive_float(lr_clipping, "lr_clipping"))
    if isinstance(damping_min, bool) or not isinstance(damping_min, numbers.Real) \
            or not 0.0 <= damping_min < math.inf:
        raise ValueError(f"`damping_min` must be a finite number >= 0, got {damping_min!r}")
    return dict(betas=(b1, b2), eps=eps, damping=damping, omega_dec=omega_dec,
                omega_inc=omega_inc, lr_clipping=lr_clipping, damping_min=float(damping_min))


@njit(inline="always")
def qlr_alpha(gtd, dcd, dtd, damping, lr_clipping):
    """(α, A): α = b/A with A = dᵀCd + λ dᵀd, then clip(α, −c, c) with c = ``lr_clipping``
    (inf: none); α = 0 when A = 0."""
    a = dcd + damping * dtd
    if a == 0.0:
        return 0.0, a
    alpha = gtd / a
    if abs(alpha) > lr_clipping:
        alpha = math.copysign(lr_clipping, alpha)
    return alpha, a


@njit(inline="always")
def qlr_rho(f0, f1, alpha, a, gtd):
    """Reduction ratio ρ = (f1 − f0) / (½α²A − α b); NaN when the denominator is 0."""
    pred = 0.5 * alpha * alpha * a - alpha * gtd
    if pred == 0.0:
        return math.nan
    return (f1 - f0) / pred


@njit(inline="always")
def qlr_damping(damping, rho, omega_dec, omega_inc, damping_min):
    """ρ > 3/4 → ω_dec λ; ρ < 1/4 → ω_inc λ; then λ ≥ λ_min. A NaN ρ returns λ unchanged."""
    if rho != rho:
        return damping
    if rho > 0.75:
        damping = omega_dec * damping
    elif rho < 0.25:
        damping = omega_inc * damping
    return max(damping, damping_min)


@njit(parallel=True)
def _adamqlr_paths(loss, grad, stochastic_grad, curvature_vp, noisy, params, x0, n_steps,
                   seed, hyper, x_out, record, save_path, path_out):
    """x0 (n_paths, d); x_out (n_paths, d); record (n_paths, n_steps, len(FIELDS));
    path_out (n_paths, n_steps + 1, d) filled when ``save_path``."""
    n_paths, d = x_out.shape
    b1 = hyper[_B1]
    b2 = hyper[_B2]
    eps = hyper[_EPS]
    for p in prange(n_paths):
        state = np.empty(4, dtype=np.uint64)
        seed_stream(seed, p, state)
        x = x0[p].copy()
        m = np.zeros(d)
        v = np.zeros(d)
        g = np.empty(d)
        dv = np.empty(d)
        cd = np.empty(d)
        lam = hyper[_LAM0]
        if save_path:
            path_out[p, 0, :] = x
        for k in range(1, n_steps + 1):
            f0 = loss(x, params)
            if noisy:
                stochastic_grad(x, params, state, g)
            else:
                grad(x, params, g)
            c1 = 1.0 - b1 ** k
            c2 = 1.0 - b2 ** k
            for i in range(d):
                m[i] = b1 * m[i] + (1.0 - b1) * g[i]
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i]
                dv[i] = (m[i] / c1) / (math.sqrt(v[i] / c2) + eps)
            curvature_vp(x, params, dv, cd)
            gtd = 0.0
            dcd = 0.0
            dtd = 0.0
            for i in range(d):
                gtd += g[i] * dv[i]
                dcd += dv[i] * cd[i]
                dtd += dv[i] * dv[i]
            alpha, a = qlr_alpha(gtd, dcd, dtd, lam, hyper[_CLIP])
            for i in range(d):
                x[i] -= alpha * dv[i]
            f1 = loss(x, params)
            rho = qlr_rho(f0, f1, alpha, a, gtd)
            rec = record[p, k - 1]
            rec[_F0] = f0
            rec[_F1] = f1
            rec[_ALPHA] = alpha
            rec[_LAM] = lam
            rec[_RHO] = rho
            rec[_GTD] = gtd
            rec[_DCD] = dcd
            lam = qlr_damping(lam, rho, hyper[_DEC], hyper[_INC], hyper[_LMIN])
            if save_path:
                path_out[p, k, :] = x
        x_out[p, :] = x


def curvature_product(problem, kind):
    """The exact curvature product ``(x, params, v, out)`` of ``kind`` for ``problem``.

    A problem's own ``hvp``/``gnvp`` attribute, else the products of
    :mod:`.adamqlr_curvature` (quadratics, linear and logistic regression).
    """
    check.choice(kind, "curvature", CURVATURES)
    product = product_for(problem, kind)
    if product is None:
        raise ValueError(f"`curvature`={kind!r} has no exact product for problem {problem!r}; "
                         "give it a `hvp`/`gnvp` attribute (kernel (x, params, v, out))")
    return product


@dataclass
class AdamQLRResult:
    """Output of :func:`adamqlr_run`.

    Attributes
    ----------
    x : ndarray, shape (n_paths, d)
        Final iterates.
    loss : ndarray, shape (n_paths, n_steps + 1)
        f(θ_k), k = 0..n_steps.
    alpha, damping, rho, gtd, dcd : ndarray, shape (n_paths, n_steps)
        Per step k = 1..n_steps: α, λ used by the step, ρ, gᵀd, dᵀCd.
    path : ndarray, shape (n_paths, n_steps + 1, d), or None
        θ_k, k = 0..n_steps, when the run was asked to ``save_path``.
    """
    x: np.ndarray
    loss: np.ndarray
    alpha: np.ndarray
    damping: np.ndarray
    rho: np.ndarray
    gtd: np.ndarray
    dcd: np.ndarray
    path: np.ndarray = None


def adamqlr_run(problem, x0, n_steps, *, n_paths=1, seed=0, noisy=True, curvature="gauss_newton",
                betas=(0.9, 0.999), eps=1e-8, damping=1e-3, omega_dec=0.5, omega_inc=2.0,
                lr_clipping=LR_CLIPPING, damping_min=1e-8, save_path=False):
    """Run AdamQLR ``n_paths`` times independently on ``problem`` (equations: module docstring).

    Parameters
    ----------
    problem : Problem
        Any problem with an exact curvature product of kind ``curvature``.
    x0 : array_like, shape (d,) or (n_paths, d)
    n_steps : int
    n_paths : int
        Independent runs; run i uses the random stream (seed, i).
    seed : int
    noisy : bool
        True: g from the oracle ``stochastic_grad`` (σ = ``problem.noise_scale``);
        False: the exact gradient (all runs then coincide).
    curvature : {"gauss_newton", "hessian"}
        Default Gauss–Newton, the untuned setting of SPEC §7 (the two coincide on
        quadratics, least squares and logistic regression).
    betas, eps, damping, omega_dec, omega_inc, lr_clipping, damping_min
        As :class:`~sde_engine.optimizers.adamqlr_torch.AdamQLR`; ``damping`` is λ0,
        ``lr_clipping`` the bound c of |α| (default 0.1, None for none).
    save_path : bool
        Keep every iterate (memory n_paths·(n_steps+1)·d floats).

    Returns
    -------
    AdamQLRResult
    """
    n_steps = check.positive_int(n_steps, "n_steps")
    n_paths = check.positive_int(n_paths, "n_paths")
    seed = check.nonnegative_int(seed, "seed")
    for flag, name in ((noisy, "noisy"), (save_path, "save_path")):
        if not isinstance(flag, bool):
            raise ValueError(f"`{name}` must be True or False, got {flag!r}")
    hp = check_hyperparameters(betas, eps, damping, omega_dec, omega_inc, lr_clipping,
                               damping_min)
    product = curvature_product(problem, curvature)
    x0 = np.ascontiguousarray(np.broadcast_to(
        check.initial_state(x0, problem.dim, n_paths), (n_paths, problem.dim)))
    hyper = np.array([hp["betas"][0], hp["betas"][1], hp["eps"], hp["damping"],
                      hp["omega_dec"], hp["omega_inc"], hp["lr_clipping"], hp["damping_min"]])
    x_out = np.empty((n_paths, problem.dim))
    record = np.empty((n_paths, n_steps, len(FIELDS)))
    path = np.empty((n_paths, n_steps + 1, problem.dim) if save_path else (0, 0, 0))
    _adamqlr_paths(problem.loss, problem.grad, problem.stochastic_grad, product, noisy,
                   problem.params, x0, n_steps, seed, hyper, x_out, record, save_path, path)
    loss = np.concatenate([record[:, :, _F0], record[:, -1:, _F1]], axis=1)
    return AdamQLRResult(x=x_out, loss=loss, alpha=record[:, :, _ALPHA].copy(),
                         damping=record[:, :, _LAM].copy(), rho=record[:, :, _RHO].copy(),
                         gtd=record[:, :, _GTD].copy(), dcd=record[:, :, _DCD].copy(),
                         path=path if save_path else None)
