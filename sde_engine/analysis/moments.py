"""Exact moments of the SGD, RMSprop and Adam SDEs on a quadratic with constant Σ.

For f(θ) = ½ (θ−θ*)ᵀ H (θ−θ*) and constant Σ = S Sᵀ the SDEs of SPEC §3 are
linear-Gaussian given a deterministic start: u solves du = c2 (diag Σ − u) dt,
which has no noise, so

    u(t) = diag Σ · γ2(t) + u0 e^{−c2 t},     γ2 = 1 − e^{−c2 t},

and the preconditioner F(t) (:mod:`sde_engine.models.preconditioner`) is a
known function of time. (θ, m) then solves a linear SDE with deterministic
coefficients, dX = (A(t) X + a) dt + B(t) dW, whose mean μ and covariance C
solve the ODEs μ' = A μ + a, C' = A C + C Aᵀ + B Bᵀ (SPEC §4). They are
integrated with scipy's Radau method at rtol 1e-10, atol 1e-12.

* SGD with a model EMA, X = (θ, Z): μ' = Aμ + a with A = [[−D, 0], [γI, −γI]], a = (Dθ*, 0),
           D the SGD drift matrix, noise on θ only (:mod:`sde_engine.models.ema`).
* SGD with momentum, X = (θ, v): μ' = Aμ + a, C' = AC + CAᵀ + diag(0, σ²√η Σ), with
           A = [[0, −I], [H, −γI]], a = (0, −Hθ*) (:mod:`sde_engine.models.momentum`;
           ``m_mean``/``m_cov`` hold v's).
* SGD:     μ' = −A(μ − θ*),           C' = −AC − CAᵀ + σ²η Σ,  with A = H (order 1)
           or A = H + (η/2) H² (the second-order SDE: ∇²f ∇f = H² (θ − θ*)).
* RMSprop: μ' = −F H(μ − θ*),          C' = −FHC − CHF + σ0² F Σ F   (F = diag F(t));
           RMSpropW adds −λ₀μ and −2λ₀C (:mod:`sde_engine.models.weight_decay`).
* Adam:    the drift of θ is −(F/γ1) m, singular at t = 0 with bias correction
  (γ1(0) = 0). The ODEs are written in the regular variables
  p = E m/γ1, R = Cov(θ, m)/γ1, Q = Cov(m)/γ1 (γ1 ≡ 1 without bias
  correction), with r = c1/γ1:

      μθ' = −F p,                 p' = r (H(μθ − θ*) − p),
      Cθθ' = −(F Rᵀ + R F),       R' = r (Cθθ H − F Q / c1 − R),
      Q' = c1 (H R + Rᵀ H) − c1 Q + r (σ0² c1 Σ − Q),

  started (bias correction, m0 = 0) from their t → 0 limits p = H(θ0 − θ*),
  Q = σ0² c1 Σ, R = −σ0² F(0) Σ, at t = 1e-14/c1 (the error of that start is
  O(1e-14)). Near t = 0 the rate r ≈ 1/t is singular: integrated in t, Radau
  returned E θ(1) ≈ (−2.5, −8.0) for a case whose true mean is ≈ 0. So the
  bias-corrected system is integrated on the clock s = log(e^{c1 t} − 1), in
  which ds/dt = r: the fast variables relax at unit rate and nothing is singular.

Cost grows like d⁴ per Jacobian (finite differences over d² covariance
entries): meant for d up to a few tens.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy.integrate import solve_ivp

RTOL = 1e-10
ATOL = 1e-12
#: The models whose moments :func:`exact_moments` knows (``OptimizerSDE.optimizer``).
EXACT_MODELS = ("sgd", "sgd_momentum", "sgd_ema", "rmsprop", "rmspropw", "adam")


@dataclass
class MomentReference:
    """Exact mean and covariance of an optimizer SDE's state at given times.

    Attributes
    ----------
    t : ndarray, shape (n,)
        SDE times.
    theta_mean : ndarray, shape (n, d)
    theta_cov : ndarray, shape (n, d, d)
    m_mean, m_cov : ndarray, shapes (n, d) and (n, d, d), or None
        Adam's first moment, or the momentum SDE's velocity v (None for SGD and RMSprop).
    u : ndarray, shape (n, d), or None
        The deterministic u(t) (None for SGD).
    ema_mean, ema_cov : ndarray, shapes (n, d) and (n, d, d), or None
        The EMA block Z of an EMA model (:func:`sde_engine.models.ema_sde`).
    H, theta_star : ndarray
        The quadratic, for :attr:`loss_mean`.
    """

    t: np.ndarray
    theta_mean: np.ndarray
    theta_cov: np.ndarray
    H: np.ndarray
    theta_star: np.ndarray
    m_mean: Optional[np.ndarray] = None
    m_cov: Optional[np.ndarray] = None
    u: Optional[np.ndarray] = None
    ema_mean: Optional[np.ndarray] = None
    ema_cov: Optional[np.ndarray] = None

    @property
    def theta_var(self):
        """Var θ_i, shape (n, d)."""
        return np.diagonal(self.theta_cov, axis1=1, axis2=2)

    @property
    def theta_sq(self):
        """E θ_i², shape (n, d)."""
        return self.theta_mean**2 + self.theta_var

    @property
    def theta_cube(self):
        """E θ_i³ = μ³ + 3 μ Var (θ is Gaussian), shape (n, d)."""
        return self.theta_mean**3 + 3.0 * self.theta_mean * self.theta_var

    @property
    def loss_mean(self):
        """E f(θ) = ½ tr(H C) + ½ (μ−θ*)ᵀ H (μ−θ*), shape (n,)."""
        r = self.theta_mean - self.theta_star
        return 0.5 * (np.einsum("ij,nji->n", self.H, self.theta_cov)
                      + np.einsum("ni,ij,nj->n", r, self.H, r))

    @property
    def state_mean(self):
        """E x for the SDE state (θ), (θ, u) or (θ, m, u); shape (n, n_blocks·d)."""
        return np.concatenate([b for b in (self.theta_mean, self.m_mean, self.u, self.ema_mean)
                               if b is not None], axis=1)

    @property
    def state_sq(self):
        """E x_i² coordinate-wise for the SDE state; shape (n, n_blocks·d)."""
        blocks = [self.theta_sq]
        if self.m_mean is not None:
            blocks.append(self.m_mean**2 + np.diagonal(self.m_cov, axis1=1, axis2=2))
        if self.u is not None:
            blocks.append(self.u**2)
        if self.ema_mean is not None:
            blocks.append(self.ema_mean**2 + np.diagonal(self.ema_cov, axis1=1, axis2=2))
        return np.concatenate(blocks, axis=1)


def exact_moments(model, x0, times):
    """Exact moments of ``model``'s SDE from the deterministic state ``x0``.

    Parameters
    ----------
    model : OptimizerSDE
        From :func:`sde_engine.models.sgd_sde`, ``rmsprop_sde`` or ``adam_sde``
        on a :func:`sde_engine.problems.quadratic` problem (constant Σ).
    x0 : array_like, shape (n_blocks·d,)
        Initial SDE state, e.g. ``model.initial_state(theta0, v0=...)``.
    times : array_like, shape (n,)
        Non-decreasing SDE times ≥ 0 (``model.time_of_step(k)`` for steps k).

    Returns
    -------
    MomentReference
    """
    problem = model.problem
    if model.optimizer not in EXACT_MODELS:
        raise ValueError(f"exact moments are known for the {sorted(EXACT_MODELS)} SDEs, not "
                         f"for {model.optimizer!r} (nonlinear, or not derived here)")
    if not (getattr(problem, "constant_noise", False) and hasattr(problem, "H")):
        raise ValueError(f"exact moments need a quadratic problem with constant Σ, got "
                         f"{problem!r}")
    d = problem.dim
    x0 = np.asarray(x0, dtype=np.float64)
    if x0.shape != (model.sde.dim,):
        raise ValueError(f"`x0` must be one deterministic state of shape ({model.sde.dim},), "
                         f"got {x0.shape}")
    times = np.atleast_1d(np.asarray(times, dtype=np.float64))
    if times.ndim != 1 or not np.all(np.isfinite(times)) or np.any(times < 0) \
            or np.any(np.diff(times) < 0):
        raise ValueError(f"`times` must be a non-decreasing 1-D array of times ≥ 0, got {times}")
    H, theta_star, Sigma = problem.H, problem.theta_star, problem.Sigma
    theta0 = x0[:d]
    ref = dict(t=times, H=H, theta_star=theta_star)
    if model.optimizer == "sgd_ema":
        drift = H if model.constants.get("order", 1) == 1 else H + 0.5 * model.lr * H @ H
        mu, cov = _sgd_ema(drift, theta_star, model.constants["gamma_ema"],
                           problem.noise_scale**2 * model.lr * Sigma, x0, times)
        return MomentReference(theta_mean=mu[:, :d], theta_cov=cov[:, :d, :d],
                               ema_mean=mu[:, d:], ema_cov=cov[:, d:, d:], **ref)
    if model.optimizer == "sgd_momentum":
        mu, cov = _sgd_momentum(H, theta_star, model.constants["gamma"],
                                problem.noise_scale**2 * model.lr**0.5 * Sigma, x0, times)
        return MomentReference(theta_mean=mu[:, :d], theta_cov=cov[:, :d, :d],
                               m_mean=mu[:, d:], m_cov=cov[:, d:, d:], **ref)
    if model.optimizer == "sgd":
        drift = H if model.constants.get("order", 1) == 1 else H + 0.5 * model.lr * H @ H
        mu, cov = _sgd(drift, theta_star, problem.noise_scale**2 * model.lr * Sigma, theta0,
                       times)
        return MomentReference(theta_mean=mu, theta_cov=cov, **ref)
    c = model.constants
    u0 = x0[-d:]
    u = _u_of_t(times, np.diag(Sigma), u0, c["c2"])
    precond = _preconditioner(np.diag(Sigma), u0, c)
    if model.optimizer in ("rmsprop", "rmspropw"):
        mu, cov = _rmsprop(H, theta_star, Sigma, c["sigma0"], precond, theta0, times,
                           c.get("weight_decay0", 0.0))
        return MomentReference(theta_mean=mu, theta_cov=cov, u=u, **ref)
    mu, cov, m_mu, m_cov = _adam(H, theta_star, Sigma, c, precond, theta0, x0[d:2 * d], times)
    return MomentReference(theta_mean=mu, theta_cov=cov, m_mean=m_mu, m_cov=m_cov, u=u, **ref)


def _u_of_t(t, sigma_diag, u0, c2):
    t = np.asarray(t)[..., None]
    gamma2 = -np.expm1(-c2 * t)
    return sigma_diag * gamma2 + u0 * np.exp(-c2 * t)


def _preconditioner(sigma_diag, u0, c):
    """F(t), shape (d,), exactly as the SDE kernel evaluates it, for u = u(t)."""
    sigma0, eps0, c2, bias = c["sigma0"], c["eps0"], c["c2"], c["bias_correction"]

    def factor(t):
        if not bias:
            return 1.0 / (sigma0 * np.sqrt(_u_of_t(t, sigma_diag, u0, c2)) + eps0)
        gamma2 = -np.expm1(-c2 * t)
        if gamma2 > 0.0:
            u_over_gamma2 = sigma_diag + u0 * np.exp(-c2 * t) / gamma2
            return 1.0 / (sigma0 * np.sqrt(u_over_gamma2) + eps0)
        return np.where(u0 > 0.0, 0.0, 1.0 / (sigma0 * np.sqrt(sigma_diag) + eps0))

    return factor


def _solve(rhs, y0, t_start, times, clock=None):
    """Integrate y' = rhs(t, y) from t_start; values at ``times`` (those < t_start get y0).

    ``clock = (s_of_t, t_of_s, dt_ds)`` integrates dy/ds = rhs(t(s), y) dt/ds
    on another time variable s instead (monotone in t).
    """
    out = np.empty((times.size, y0.size))
    later = times > t_start
    out[~later] = y0
    if np.any(later):
        t_eval = np.unique(times[later])
        fun, span, clock_eval = rhs, (t_start, t_eval[-1]), t_eval
        if clock is not None:
            s_of_t, t_of_s, dt_ds = clock

            def fun(s, y):
                t = t_of_s(s)
                return rhs(t, y) * dt_ds(t)

            span, clock_eval = (s_of_t(t_start), s_of_t(t_eval[-1])), s_of_t(t_eval)
        sol = solve_ivp(fun, span, y0, method="Radau", t_eval=clock_eval,
                        rtol=RTOL, atol=ATOL)
        if not sol.success:
            raise RuntimeError(f"moment ODE solver failed: {sol.message}")
        out[later] = sol.y.T[np.searchsorted(t_eval, times[later])]
    return out


def _sgd(A, theta_star, BBt, theta0, times):
    d = A.shape[0]

    def rhs(t, y):
        mu, C = y[:d], y[d:].reshape(d, d)
        AC = A @ C
        return np.concatenate([-A @ (mu - theta_star), (-AC - AC.T + BBt).ravel()])

    y = _solve(rhs, np.concatenate([theta0, np.zeros(d * d)]), 0.0, times)
    return y[:, :d], y[:, d:].reshape(-1, d, d)


def _sgd_momentum(H, theta_star, gamma, BBt, x0, times):
    """Moments of X = (θ, v): A = [[0, −I], [H, −γI]], a = (0, −H θ*), noise on v."""
    d = H.shape[0]
    A = np.block([[np.zeros((d, d)), -np.eye(d)], [H, -gamma * np.eye(d)]])
    noise = np.zeros((2 * d, 2 * d))
    noise[d:, d:] = BBt
    return _linear_gaussian(A, np.concatenate([np.zeros(d), -H @ theta_star]), noise, x0, times)


def _sgd_ema(drift, theta_star, gamma, BBt, x0, times):
    """Moments of X = (θ, Z): A = [[−D, 0], [γI, −γI]], a = (D θ*, 0), noise on θ,
    D the SGD drift matrix."""
    d = drift.shape[0]
    A = np.block([[-drift, np.zeros((d, d))], [gamma * np.eye(d), -gamma * np.eye(d)]])
    noise = np.zeros((2 * d, 2 * d))
    noise[:d, :d] = BBt
    return _linear_gaussian(A, np.concatenate([drift @ theta_star, np.zeros(d)]), noise, x0,
                            times)


def _linear_gaussian(A, a, noise, x0, times):
    """Mean and covariance of dX = (A X + a) dt + B dW from X(0) = x0, B Bᵀ = ``noise``:
    μ' = Aμ + a, C' = AC + CAᵀ + BBᵀ; shapes (n, k) and (n, k, k)."""
    k = A.shape[0]

    def rhs(t, y):
        mu, C = y[:k], y[k:].reshape(k, k)
        AC = A @ C
        return np.concatenate([A @ mu + a, (AC + AC.T + noise).ravel()])

    y = _solve(rhs, np.concatenate([x0, np.zeros(k * k)]), 0.0, times)
    return y[:, :k], y[:, k:].reshape(-1, k, k)


def _rmsprop(H, theta_star, Sigma, sigma0, precond, theta0, times, decay=0.0):
    d = H.shape[0]

    def rhs(t, y):
        F = precond(t)
        mu, C = y[:d], y[d:].reshape(d, d)
        FHC = F[:, None] * (H @ C) + decay * C
        noise = sigma0**2 * F[:, None] * Sigma * F[None, :]
        return np.concatenate([-F * (H @ (mu - theta_star)) - decay * mu,
                               (-FHC - FHC.T + noise).ravel()])

    y = _solve(rhs, np.concatenate([theta0, np.zeros(d * d)]), 0.0, times)
    return y[:, :d], y[:, d:].reshape(-1, d, d)


def _adam(H, theta_star, Sigma, c, precond, theta0, m0, times):
    d = H.shape[0]
    sigma0, c1, bias = c["sigma0"], c["c1"], c["bias_correction"]
    noise = sigma0**2 * c1 * Sigma
    dd = d * d

    def gamma1(t):
        return -np.expm1(-c1 * t) if bias else 1.0

    def rhs(t, y):
        F = precond(t)
        r = c1 / gamma1(t)
        mu, p = y[:d], y[d:2 * d]
        C = y[2 * d:2 * d + dd].reshape(d, d)
        R = y[2 * d + dd:2 * d + 2 * dd].reshape(d, d)
        Q = y[2 * d + 2 * dd:].reshape(d, d)
        FRt = F[:, None] * R.T
        HR = H @ R
        return np.concatenate([
            -F * p,
            r * (H @ (mu - theta_star) - p),
            (-(FRt + FRt.T)).ravel(),
            (r * (C @ H - F[:, None] * Q / c1 - R)).ravel(),
            (c1 * (HR + HR.T) - c1 * Q + r * (noise - Q)).ravel()])

    if bias:
        t_start = 1e-14 / c1
        p0 = H @ (theta0 - theta_star)
        Q0 = noise
        R0 = -precond(0.0)[:, None] * Q0 / c1
        clock = (lambda t: np.log(np.expm1(c1 * t)),      # s(t); ds/dt = c1/γ1 = r
                 lambda s: np.log1p(np.exp(s)) / c1,       # t(s)
                 lambda t: gamma1(t) / c1)                 # dt/ds
    else:
        t_start, p0, Q0, R0, clock = 0.0, m0, np.zeros((d, d)), np.zeros((d, d)), None
    y = _solve(rhs, np.concatenate([theta0, p0, np.zeros(dd), R0.ravel(), Q0.ravel()]),
               t_start, times, clock)
    g1 = np.array([gamma1(t) for t in times])[:, None]
    mu, p = y[:, :d], y[:, d:2 * d]
    C = y[:, 2 * d:2 * d + dd].reshape(-1, d, d)
    Q = y[:, 2 * d + 2 * dd:].reshape(-1, d, d)
    return mu, C, g1 * p, g1[:, :, None] * Q


def sgd_iterate_moments(problem, lr, theta0, n_steps, ema_decay=None):
    """Exact mean and covariance of SGD's iterate θ_k (and of its EMA z_k) on a quadratic.

    θ_k = θ_{k−1} − η (H(θ_{k−1} − θ*) + σ S ξ_k) with ξ_k of zero mean and
    identity covariance (any noise family: only two moments enter), and
    z_k = ρ z_{k−1} + (1 − ρ) θ_k from z_0 = θ_0. The pair is a linear
    recursion, so its first two moments follow exactly.

    Parameters
    ----------
    problem : Quadratic
        Constant Σ (:func:`sde_engine.problems.quadratic`).
    lr : float
    theta0 : array_like, shape (d,)
    n_steps : int
    ema_decay : float, optional
        ρ; without it only θ's moments are returned.

    Returns
    -------
    dict
        ``theta_mean`` (d,), ``theta_cov`` (d, d), and with ``ema_decay``
        ``ema_mean``, ``ema_cov``.
    """
    problem.require_finite_variance("sgd_iterate_moments")
    H, theta_star = problem.H, problem.theta_star
    d = H.shape[0]
    rho = 0.0 if ema_decay is None else ema_decay
    step = np.eye(d) - lr * H
    A = np.block([[step, np.zeros((d, d))], [(1.0 - rho) * step, rho * np.eye(d)]])
    shift = lr * H @ theta_star
    c = np.concatenate([shift, (1.0 - rho) * shift])
    noise = -lr * problem.noise_scale * problem.sqrt_Sigma
    B = np.vstack([noise, (1.0 - rho) * noise])
    theta0 = np.asarray(theta0, dtype=np.float64)
    mean, cov = np.concatenate([theta0, theta0]), np.zeros((2 * d, 2 * d))
    for _ in range(n_steps):
        mean, cov = A @ mean + c, A @ cov @ A.T + B @ B.T
    out = dict(theta_mean=mean[:d], theta_cov=cov[:d, :d])
    if ema_decay is not None:
        out.update(ema_mean=mean[d:], ema_cov=cov[d:, d:])
    return out


def sgd_momentum_iterate_moments(problem, lr, momentum, theta0, n_steps):
    """Exact mean and covariance of θ_k for SGD with momentum on a quadratic.

    b_k = μ b_{k−1} + H(θ_{k−1} − θ*) + σ S ξ_k, θ_k = θ_{k−1} − η b_k, b_0 = 0,
    with ξ_k of zero mean and identity covariance (any noise family): a linear
    recursion in (θ, b).

    Returns
    -------
    dict
        ``theta_mean`` (d,), ``theta_cov`` (d, d).
    """
    H, theta_star = problem.H, problem.theta_star
    d = H.shape[0]
    eye = np.eye(d)
    A = np.block([[eye - lr * H, -lr * momentum * eye], [H, momentum * eye]])
    c = np.concatenate([lr * H @ theta_star, -H @ theta_star])
    noise = problem.noise_scale * problem.sqrt_Sigma
    B = np.vstack([-lr * noise, noise])
    mean = np.concatenate([np.asarray(theta0, dtype=np.float64), np.zeros(d)])
    cov = np.zeros((2 * d, 2 * d))
    for _ in range(n_steps):
        mean, cov = A @ mean + c, A @ cov @ A.T + B @ B.T
    return dict(theta_mean=mean[:d], theta_cov=cov[:d, :d])
