"""Torch forms of the engine's SDEs, for ``simulate(..., backend="torch")``.

Built-in forms: GBM and Ornstein–Uhlenbeck (:mod:`sde_engine.examples`) and the
SGD, RMSprop and Adam SDEs (:mod:`sde_engine.models`) on a quadratic problem
(:func:`sde_engine.problems.quadratic`; constant Σ, any noise family — the SDE
is the same). For an optimizer SDE pass the model itself (the
:class:`~sde_engine.models.OptimizerSDE` that ``adam_sde(...)`` returns) as
``sde``: its ``.sde`` alone does not say which problem it was built on.

A *torch form* is a torchsde-style object: ``f(t, y)`` and ``g(t, y)`` on
tensors ``y`` of shape (n_paths, d) (the batch dimension is the path),
``noise_type`` and ``sde_type = "ito"``. ``g`` returns (n_paths, d) for
diagonal noise and (n_paths, d, m) for general noise; an object may give
``g_prod(t, y, v)`` (the product g·v, shape (n_paths, d)) and ``noise_dim``
instead of ``g`` to avoid materialising (n_paths, d, m) (Euler only).

The built-in models get theirs here, keyed by the SDE's drift function, so
``sde.with_params(...)`` keeps working: the form is rebuilt from ``sde.params``
at every call. Every form has an attribute ``dim`` (the state dimension).
A user SDE runs on the torch backend in one of two ways:

* pass a torchsde-style object as ``sde`` to :func:`sde_engine.simulate`
  (its dimension is taken from ``x0``);
* register a factory for an engine :class:`~sde_engine.sde.SDE` with
  :func:`register_torch_form` (``factory(sde) -> torch form``).

Nothing here imports torch at module load.
"""
import math

import numpy as np

from .. import examples

_FORMS = {}   # drift python function -> factory(sde) -> torch form


def register_torch_form(drift, factory):
    """Give every SDE whose drift is ``drift`` a torch form ``factory(sde)``.

    Parameters
    ----------
    drift : callable
        The Python drift function of the SDE (``SDE.drift``; for a Numba
        dispatcher its ``py_func``).
    factory : callable
        ``factory(sde, device, dtype)`` returns a torchsde-style object for
        that SDE, built from ``sde.params`` and ``sde.dim``, with attribute
        ``dim``.
    """
    if not callable(factory):
        raise ValueError(f"`factory` must be callable, got {factory!r}")
    _FORMS[getattr(drift, "py_func", drift)] = factory


def is_torch_style(obj):
    """True for a torchsde-style object (f, g or g_prod, noise_type, sde_type)."""
    return (hasattr(obj, "f") and (hasattr(obj, "g") or hasattr(obj, "g_prod"))
            and hasattr(obj, "noise_type") and hasattr(obj, "sde_type"))


def torch_form(sde, device="cpu", dtype=None):
    """The torchsde-style object that runs ``sde`` on the torch backend.

    Parameters
    ----------
    sde : SDE, OptimizerSDE or torchsde-style object
    device : str or torch.device
    dtype : torch dtype, optional
        Of the tensors the form holds (default float64).

    Raises
    ------
    ValueError
        When ``sde`` has no torch form.
    """
    factory = _FORMS.get(getattr(sde, "drift", None))
    if factory is not None:
        return factory(sde, device, dtype)
    if _is_optimizer_sde(sde):
        return optimizer_sde_form(sde, device, dtype)
    if is_torch_style(sde):
        return sde
    if getattr(sde, "name", None) in ("sgd_sde", "rmsprop_sde", "adam_sde"):
        raise ValueError(
            f"the torch backend needs the optimizer model, not its `.sde`: pass the "
            f"OptimizerSDE that {sde.name}(problem, ...) returned as `sde`")
    raise ValueError(
        f"the torch backend cannot run {sde!r}: its drift and diffusion are Numba-style "
        f"functions (t, x, params, out) with no torch form. Pass a torchsde-style object "
        f"(f(t, y), g(t, y) on (n_paths, d) tensors, noise_type, sde_type='ito') as `sde`, "
        f"or register one with sde_engine.register_torch_form(drift, factory)")


class GBMTorch:
    """dX = μ X dt + σ X dW, coordinate-wise (diagonal noise)."""

    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(self, mu, sigma, dim):
        self.mu, self.sigma, self.dim = float(mu), float(sigma), dim

    def f(self, t, y):
        return self.mu * y

    def g(self, t, y):
        return self.sigma * y


class OUTorch:
    """dX = θ (μ − X) dt + σ dW, coordinate-wise (diagonal noise)."""

    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(self, theta, mean, sigma, dim):
        self.theta, self.mean, self.sigma, self.dim = float(theta), float(mean), float(sigma), dim

    def f(self, t, y):
        return self.theta * (self.mean - y)

    def g(self, t, y):
        return y.new_full(y.shape, self.sigma)


register_torch_form(examples._gbm_drift,
                    lambda sde, device, dtype: GBMTorch(*sde.params[:2], sde.dim))
register_torch_form(examples._ou_drift,
                    lambda sde, device, dtype: OUTorch(*sde.params[:3], sde.dim))


# ---- optimizer SDEs on a quadratic (SPEC §3) ---------------------------------------------
def _is_optimizer_sde(obj):
    return all(hasattr(obj, a) for a in ("sde", "problem", "optimizer", "constants"))


class QuadraticTorch:
    """f(θ) = ½ (θ − θ*)ᵀ H (θ − θ*) with constant Σ = S Sᵀ, as tensors on a device.

    Diagonal H and S are kept as vectors (coordinate-wise products); full ones
    as matrices. Shapes: θ (n_paths, d); :meth:`grad` (n_paths, d);
    :meth:`noise` of a (n_paths, d) block of standardized draws ξ gives S ξ
    (n_paths, d); ``diag_sigma`` (d,).
    """

    def __init__(self, problem, device="cpu", dtype=None):
        import torch
        if hasattr(problem, "inner") and hasattr(problem, "r1"):
            problem = problem.inner          # SVAG wrapper: same f and Σ
        if not all(hasattr(problem, a) for a in ("H", "theta_star", "sqrt_Sigma", "Sigma")):
            raise ValueError(
                f"the torch backend has forms for quadratic problems only "
                f"(sde_engine.problems.quadratic), got {getattr(problem, 'name', problem)!r}")
        dtype = dtype or torch.float64
        self.dim = problem.dim
        self.h_diag = _is_diagonal(problem.H)
        self.s_diag = _is_diagonal(problem.sqrt_Sigma)

        def tensor(a):
            return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)

        self.H = tensor(np.diag(problem.H) if self.h_diag else problem.H)
        self.S = tensor(np.diag(problem.sqrt_Sigma) if self.s_diag else problem.sqrt_Sigma)
        self.theta_star = tensor(problem.theta_star)
        self.diag_sigma = tensor(np.diag(problem.Sigma))

    def grad(self, theta):
        """∇f(θ) = H (θ − θ*), row by row; shape (n_paths, d)."""
        r = theta - self.theta_star
        return r * self.H if self.h_diag else r @ self.H.T

    def noise(self, xi):
        """S ξ for each row ξ of ``xi`` (n_paths, d)."""
        return xi * self.S if self.s_diag else xi @ self.S.T

    def loss(self, theta):
        """f(θ) per row, shape (n_paths,)."""
        return 0.5 * ((theta - self.theta_star) * self.grad(theta)).sum(dim=1)


def torch_loss(problem, device="cpu", dtype=None):
    """f as a torch function θ (n, d) -> (n,) for a quadratic problem, e.g. for a torch
    observable of :func:`sde_engine.torch.discrete.run_optimizer_torch`."""
    return QuadraticTorch(problem, device, dtype).loss


def _is_diagonal(a):
    a = np.asarray(a)
    return not np.any(a - np.diag(np.diag(a)))


class _OptimizerSDETorch:
    """Shared parts: diagonal noise when S is diagonal, else general noise given
    as a product ``g_prod`` (no (n_paths, dim, d) tensor; Euler only)."""

    sde_type = "ito"

    def __init__(self, model, device, dtype, n_blocks):
        self.q = QuadraticTorch(model.problem, device, dtype)
        self.d = self.q.dim
        self.dim = n_blocks * self.d
        self.c = dict(model.constants)
        if self.q.s_diag:
            self.noise_type = "diagonal"
            self.g = self._g_diagonal
        else:
            self.noise_type = "general"
            self.noise_dim = self.d
            self.g_prod = self._g_prod

    def _g_diagonal(self, t, y):
        return self._g_block(t, y, self.q.S.expand(y.shape[0], self.d))

    def _g_prod(self, t, y, v):
        return self._g_block(t, y, self.q.noise(v))


class SGDSDETorch(_OptimizerSDETorch):
    """dX = −∇f(X) dt + √η σ S dW (time t = kη), state θ (d)."""

    def __init__(self, model, device="cpu", dtype=None):
        super().__init__(model, device, dtype, 1)
        self.scale = float(np.sqrt(model.lr) * model.problem.noise_scale)

    def f(self, t, y):
        return -self.q.grad(y)

    def _g_block(self, t, y, s):
        return self.scale * s


def _preconditioner(t, u, diag_sigma, sigma0, eps0, c2, bias):
    """Torch form of :func:`sde_engine.models.preconditioner.preconditioner`, same cases.

    Without bias correction 1/(σ0 √u + ε0); with it 1/(σ0 √(u/γ2) + ε0), γ2 = 1 − e^{−c2 t},
    and at γ2 = 0 the small-t limit (1/(σ0 √Σ_ii + ε0) for u = 0, 0 for u > 0).
    u is clipped at 0; a zero denominator gives +inf. ``t`` is a float: the branch on
    γ2 is taken in Python, so a step costs about ten tensor operations.
    """
    import torch
    u = u.clamp_min(0.0)
    if not bias:
        den = sigma0 * u.sqrt() + eps0
    else:
        gamma2 = -math.expm1(-c2 * t)
        if gamma2 > 0.0:
            den = sigma0 * (u / gamma2).sqrt() + eps0
        else:
            limit = sigma0 * diag_sigma.clamp_min(0.0).sqrt() + eps0
            den = torch.where(u > 0, torch.full_like(u, math.inf), limit.expand_as(u))
    if eps0 > 0.0:
        return 1.0 / den
    return torch.where(den > 0, 1.0 / den, torch.full_like(den, math.inf))


class RMSpropSDETorch(_OptimizerSDETorch):
    """dθ = −F(t, u)(∇f dt + σ0 S dW), du = c2 (diag Σ − u) dt; state (θ, u) (2d)."""

    def __init__(self, model, device="cpu", dtype=None):
        super().__init__(model, device, dtype, 2)

    def _factor(self, t, u):
        c = self.c
        return _preconditioner(t, u, self.q.diag_sigma, c["sigma0"], c["eps0"], c["c2"],
                               c["bias_correction"])

    def f(self, t, y):
        import torch
        theta, u = y[:, :self.d], y[:, self.d:]
        return torch.cat((-self._factor(float(t), u) * self.q.grad(theta),
                          self.c["c2"] * (self.q.diag_sigma - u)), dim=1)

    def _g_block(self, t, y, s):
        import torch
        u = y[:, self.d:]
        return torch.cat((-self.c["sigma0"] * self._factor(float(t), u) * s, torch.zeros_like(u)),
                         dim=1)


class AdamSDETorch(_OptimizerSDETorch):
    """dθ = −(m/γ1) F(t, u) dt, dm = c1 (∇f − m) dt + σ0 c1 S dW, du = c2 (diag Σ − u) dt.

    State (θ, m, u) (3d). At γ1 = 0 (t = 0 with bias correction) m/γ1 is replaced
    by its small-t limit ∇f(θ), as in :mod:`sde_engine.models.adam`.
    """

    def __init__(self, model, device="cpu", dtype=None):
        self._g_cache = None
        super().__init__(model, device, dtype, 3)

    def f(self, t, y):
        import torch
        d, c = self.d, self.c
        theta, m, u = y[:, :d], y[:, d:2 * d], y[:, 2 * d:]
        g = self.q.grad(theta)
        t = float(t)
        gamma1 = -math.expm1(-c["c1"] * t) if c["bias_correction"] else 1.0
        m_hat = m / gamma1 if gamma1 > 0.0 else g
        factor = _preconditioner(t, u, self.q.diag_sigma, c["sigma0"], c["eps0"], c["c2"],
                                 c["bias_correction"])
        return torch.cat((-m_hat * factor, c["c1"] * (g - m), c["c2"] * (self.q.diag_sigma - u)),
                         dim=1)

    def _g_block(self, t, y, s):
        import torch
        zero = torch.zeros_like(s)
        return torch.cat((zero, (self.c["sigma0"] * self.c["c1"]) * s, zero), dim=1)

    def _g_diagonal(self, t, y):
        """Constant: built once per batch size and reused."""
        n = y.shape[0]
        if self._g_cache is None or self._g_cache.shape[0] != n:
            self._g_cache = super()._g_diagonal(t, y)
        return self._g_cache


OPTIMIZER_SDE_FORMS = {"sgd": SGDSDETorch, "rmsprop": RMSpropSDETorch, "adam": AdamSDETorch}


def optimizer_sde_form(model, device="cpu", dtype=None):
    """Torch form of an :class:`~sde_engine.models.OptimizerSDE` on a quadratic problem."""
    try:
        cls = OPTIMIZER_SDE_FORMS[model.optimizer]
    except KeyError:
        raise ValueError(f"no torch form for the {model.optimizer!r} SDE; available: "
                         f"{sorted(OPTIMIZER_SDE_FORMS)}") from None
    return cls(model, device, dtype)
