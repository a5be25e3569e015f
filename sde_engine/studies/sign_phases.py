"""The three phases of SignSGD (Compagnoni et al. 2024, arXiv 2411.15958), and Signum's.

For Gaussian noise with diagonal Σ = diag(s²) the SignSGD SDE has drift
−erf(Y), Y = ∂f/(√2 σ s) coordinate-wise (:mod:`sde_engine.models.sign`). The
paper reads three regimes off the size of |Y| (the thresholds 3/2 and 1 of
:data:`PHASE_BOUNDS` as we recall the paper, whose text was not available to
check them; the figure draws the exact erf with both asymptotes, so only the
shading depends on them):

* phase 1, |Y| > 3/2: erf(Y) ≈ sign(∂f) (erf(3/2) = 0.966), the SDE is the
  ODE of sign descent dX = −sign(∇f) dt; each coordinate moves at unit speed,
  so on f = λθ²/2 (d = 1) |θ| falls linearly, θ(t) = θ0 − t, and √f falls
  linearly at rate √(λ/2): f(t) = (√f0 − √(λ/2) t)², in steps f_k =
  λ(θ0 − kη)²/2;
* phase 2, 1 < |Y| < 3/2: erf is replaced by its secant between Y = 1 and
  3/2, erf(Y) ≈ m Y + q sign(Y) (m = 2(erf(3/2) − erf 1) = 0.247,
  q = 3 erf 1 − 2 erf(3/2) = 0.596);
* phase 3, |Y| < 1: erf(Y) ≈ (2/√π) Y, the drift is −√(2/π) ∇f/(σ s): SGD
  with the learning rate divided by σ s, exponential decay of E θ at rate
  k₃ = √(2/π) λ/(σ s) (of E f − f∞ at 2k₃), down to the stationary floor
  of the Ornstein–Uhlenbeck process dX = −k₃X dt + √η dW (its diffusion
  √(1 − erf²) ≈ 1 there): Var X∞ = η/(2k₃), f∞ = λη/(4k₃) = √π η σ s/(4√2).

Signum (momentum β, :func:`sde_engine.models.signum_sde`) sees the ratio
κ∇f/(σ s), κ = √((1 + β)/(1 − β)), so its phases are those of SignSGD at
noise σ s/κ: they start κ times closer to the minimum; its phase-3 floor is
f∞ = λ η V(0)/(4 κ k₃) with V(0) the long-run variance of its signs at the
minimum (13.3 at β = 0.9, against 1), a floor 2.9 times SignSGD's at
β = 0.9 for the same η.

:func:`sign_phases` runs SignSGD and Signum (discrete, many paths) and their
SDEs on one Brownian path each (the coupled estimator, whose discrete and SDE
columns are each plain Monte Carlo means) on f = λθ²/2 from far away and
records E f against t = kη with the phase boundaries of the sign-descent ODE
and the asymptotes; :func:`sign_curves` adds E sign(g) against the ratio r = ∂f/(σ s) and the
variance per step of the sign sequence, and
:func:`sde_engine.plotting.plot_sign_phases` draws the record.

"""
import math
import time

import numpy as np
from scipy import special

from ..coupled import QUANTITIES, coupled_weak_error
from ..models.sign import expected_sign, momentum_noise_factor, sign_long_run_variance
from ..optimizers import signsgd, signum

#: |Y| = |∂f|/(√2 σ s) at the boundaries phase 3 | phase 2 | phase 1 (Compagnoni et al.).
PHASE_BOUNDS = (1.0, 1.5)
#: erf(Y) ≈ m Y + q in phase 2: the secant of erf between Y = 1 and 3/2.
SECANT = (2.0 * (math.erf(1.5) - math.erf(1.0)), 3.0 * math.erf(1.0) - 2.0 * math.erf(1.5))


def column(result, quantity):
    """Mean and Monte Carlo stderr of one of :data:`~sde_engine.coupled.QUANTITIES`
    (e.g. ``"discrete"``, ``"sde_extrapolated"``) of a :class:`CoupledWeakError`;
    each shape (n_save, n_phi)."""
    i = QUANTITIES.index(quantity)
    n = result.counts[:, None].astype(float)
    var = result.m2[:, i] / (n - 1.0)
    return result.mean[:, i], np.sqrt(var / n)


def phase_of(ratio, momentum=0.0):
    """The phase (1, 2 or 3) of a gradient-to-noise ratio r = ∂f/(σ s) (array-wise):
    |Y| = κ|r|/√2 against :data:`PHASE_BOUNDS` (κ = 1 for SignSGD)."""
    y = momentum_noise_factor(momentum) * np.abs(np.asarray(ratio, dtype=float)) / math.sqrt(2.0)
    return np.where(y > PHASE_BOUNDS[1], 1, np.where(y > PHASE_BOUNDS[0], 2, 3))


def sign_flow(theta0, curvature, noise_sd, momentum, t):
    """θ(t) of the noiseless limit dθ = −erf(κλθ/(√2 σs)) dt (η → 0) on f = λθ²/2, d = 1.

    Integrated with RK4 on a fine grid (step ≤ 10⁻³) and read at ``t``.
    """
    t = np.asarray(t, dtype=float)
    kappa = momentum_noise_factor(momentum)
    rate = kappa * curvature / (math.sqrt(2.0) * noise_sd)

    def f(x):
        return -special.erf(rate * x)

    n = max(1, math.ceil(float(t.max()) / 1e-3))
    grid = np.linspace(0.0, float(t.max()), n + 1)
    step = grid[1] - grid[0]
    path = np.empty(n + 1)
    path[0] = x = float(theta0)
    for i in range(n):
        k1 = f(x)
        k2 = f(x + 0.5 * step * k1)
        k3 = f(x + 0.5 * step * k2)
        k4 = f(x + step * k3)
        x += step * (k1 + 2 * k2 + 2 * k3 + k4) / 6.0
        path[i + 1] = x
    return np.interp(t, grid, path)


def phase_predictions(theta0, curvature, noise_sd, lr, momentum=0.0):
    """The asymptotes of the module docstring for f = λθ²/2 (d = 1) from θ0 > 0.

    Returns
    -------
    dict
        ``kappa``; ``boundary_theta``: θ where |Y| = 3/2 and 1 (entering phases
        2 and 3); ``boundary_t``: when the noiseless flow :func:`sign_flow`
        reaches them; ``phase1_speed`` 1 (dθ/dt) and ``phase1_sqrt_loss_rate``
        √(λ/2) (−d√f/dt); ``phase3_rate`` k₃ = √(2/π) κλ/(σs) (E θ ∝ e^{−k₃t});
        ``floor``: f∞ = λ η V(0)/(4 k₃), V(0) = 1 for SignSGD.
    """
    kappa = momentum_noise_factor(momentum)
    bounds = [b * math.sqrt(2.0) * noise_sd / (kappa * curvature) for b in PHASE_BOUNDS[::-1]]
    k3 = math.sqrt(2.0 / math.pi) * kappa * curvature / noise_sd
    lrv0 = float(sign_long_run_variance(0.0, momentum))
    horizon = 2.0 * theta0
    grid = np.linspace(0.0, horizon, 20001)
    path = sign_flow(theta0, curvature, noise_sd, momentum, grid)
    times = [float(np.interp(-b, -path, grid)) for b in bounds]
    return dict(kappa=kappa, boundary_theta=bounds, boundary_t=times, phase1_speed=1.0,
                phase1_sqrt_loss_rate=math.sqrt(curvature / 2.0), phase3_rate=k3,
                floor=curvature * lr * lrv0 / (4.0 * k3), lrv0=lrv0)


def sign_phases(*, theta0=6.0, curvature=1.0, noise_sd=1.0, lr=0.01, momentum=0.9,
                horizon=10.0, n_paths=4096, substeps=2, n_records=100, seed=0,
                n_threads=None):
    """E f(θ_k) of SignSGD and Signum and of their SDEs on f = λθ²/2 from θ0, t = kη ≤ T.

    Parameters
    ----------
    theta0 : float
        Start, far in phase 1 (|Y| = λθ0/(√2 σ) ≫ 3/2).
    curvature, noise_sd : float
        λ and σ (s = 1): g = λθ + σξ.
    lr : float
        η; ``horizon / lr`` must be whole.
    momentum : float
        Signum's β.
    horizon : float
        T.
    n_paths, substeps, n_records, seed, n_threads
        Paths per optimizer, EM sub-steps per step, record times (evenly
        spaced), as in :func:`sde_engine.coupled_weak_error`.

    Returns
    -------
    dict
        ``t``; per optimizer (``signsgd``, ``signum``) the discrete and SDE
        (Richardson-extrapolated) ``loss`` mean and stderr, the ``theta``
        mean and stderr, the noiseless ``flow_loss`` and the
        :func:`phase_predictions`; ``config``, ``wall_s``.
    """
    from ..problems import quadratic

    started = time.perf_counter()
    n_steps = round(horizon / lr)
    if abs(n_steps * lr - horizon) > 1e-9 * horizon:
        raise ValueError(f"`horizon` / `lr` must be whole, got {horizon!r} / {lr!r}")
    record = np.unique(np.linspace(1, n_steps, n_records).round().astype(np.int64))
    problem = quadratic([curvature], [0.0], [1.0], noise_scale=noise_sd)
    out = dict(t=(record * lr).tolist())
    for name, opt, beta in (("signsgd", signsgd(lr=lr), 0.0),
                            ("signum", signum(lr=lr, momentum=momentum), momentum)):
        res = coupled_weak_error(problem, opt, [theta0], n_steps, n_paths, substeps=substeps,
                                 seed=seed, record_steps=record, n_threads=n_threads)
        rows = {}
        for q in ("discrete", "sde_extrapolated"):
            mean, se = column(res, q)
            rows[q] = dict(loss=mean[:, 2].tolist(), loss_stderr=se[:, 2].tolist(),
                           theta=mean[:, 0].tolist(), theta_stderr=se[:, 0].tolist())
        flow = sign_flow(theta0, curvature, noise_sd, beta, record * lr)
        out[name] = dict(discrete=rows["discrete"], sde=rows["sde_extrapolated"],
                         flow_loss=(0.5 * curvature * flow**2).tolist(),
                         predictions=phase_predictions(theta0, curvature, noise_sd, lr, beta))
    out["curves"] = sign_curves(momentum)
    out["config"] = dict(theta0=theta0, curvature=curvature, noise_sd=noise_sd, lr=lr,
                         momentum=momentum, horizon=horizon, n_paths=n_paths,
                         substeps=substeps, seed=seed, phase_bounds=list(PHASE_BOUNDS))
    out["wall_s"] = time.perf_counter() - started
    return out


def sign_curves(momentum, ratios=np.logspace(-2.5, 1.2, 120)):
    """E sign and the variance per unit time of the sign steps against r = ∂f/(σ s).

    Returns
    -------
    dict
        ``ratio``; for SignSGD and Signum (momentum β) ``*_expected_sign``
        (erf(κr/√2)) and ``*_variance`` (1 − erf² and the long-run variance
        V(κr)); ``signum_one_step_variance`` (1 − erf(κr/√2)², what V replaces);
        ``kappa``.
    """
    return dict(ratio=ratios.tolist(), kappa=momentum_noise_factor(momentum),
                signsgd_expected_sign=expected_sign(ratios).tolist(),
                signum_expected_sign=expected_sign(ratios, momentum).tolist(),
                signsgd_variance=sign_long_run_variance(ratios).tolist(),
                signum_variance=sign_long_run_variance(ratios, momentum).tolist(),
                signum_one_step_variance=(1 - expected_sign(ratios, momentum) ** 2).tolist())
