"""What every optimizer SDE model shares: the time and state maps (SPEC §3).

An :class:`OptimizerSDE` holds the :class:`sde_engine.SDE` of an optimizer on a
problem and the maps between the discrete run and the SDE:

* time: step k of the algorithm ↔ SDE time ``t = k h`` with h = η for SGD and
  h = η² for RMSprop and Adam (:meth:`OptimizerSDE.time_of_step`);
* state: SGD  x = θ (d); RMSprop  x = (θ, u) (2d); Adam  x = (θ, m, u) (3d),
  stacked in that order, with u = v/σ² (:meth:`OptimizerSDE.initial_state`,
  :meth:`OptimizerSDE.theta`, :meth:`OptimizerSDE.m`, :meth:`OptimizerSDE.v`);
* constants: σ0 = ση, ε0 = εη, c1 = (1−β1)/η², c2 = (1−β2)/η²
  (``constants``; SGD has none of them).

SDE parameter layout: ``sde.params = [model constants (n_head), *problem.params]``;
the kernels hand ``params[n_head:]`` to the problem's dispatchers. The noise is
general with m = d Brownian motions (Σ^{1/2} may be full); the SGD SDE of a
problem with diagonal Σ(θ) can also be built with diagonal noise, which the
Milstein scheme accepts.

Compilation: the drift/diffusion pair of a model is built once per (model,
problem kernels) by a cached factory, and the SDE object is reused with other
parameters (:meth:`sde_engine.SDE.with_params`), so that a new learning rate or a
new problem of the same type reuses the compiled driver.
"""
import functools

import numpy as np

from .. import validation as check
from ..sde import SDE


class OptimizerSDE:
    """The SDE of an optimizer on a problem, with its time and state maps.

    Attributes
    ----------
    sde : SDE
        What :func:`sde_engine.simulate` integrates; dim = d, 2d or 3d, noise
        ``"general"`` with noise_dim = d.
    problem : Problem
    optimizer : {"sgd", "sgd_momentum", "signsgd", "signum", "rmsprop", "adam", ...}
    lr : float
        η.
    h : float
        SDE time per discrete step (η or η²).
    constants : dict
        ``sigma0, eps0, c1, c2`` (those that apply), plus ``bias_correction``.
    hyperparameters : dict
        The torch.optim-style arguments the model was built from.
    """

    def __init__(self, *, sde, problem, optimizer, lr, h, constants, hyperparameters):
        self.sde = sde
        self.problem = problem
        self.optimizer = optimizer
        self.lr = lr
        self.h = h
        self.constants = constants
        self.hyperparameters = hyperparameters

    @property
    def dim(self):
        """d, the dimension of θ."""
        return self.problem.dim

    @property
    def n_blocks(self):
        """Number of d-blocks in the state: 1 (SGD), 2 (RMSprop), 3 (Adam)."""
        return self.sde.dim // self.problem.dim

    def time_of_step(self, k):
        """SDE time of discrete step ``k`` (array or scalar): k·h."""
        k = np.asarray(k)
        if k.dtype.kind not in "iu" or np.any(k < 0):
            raise ValueError(f"`k` must be non-negative integer step counts, got {k!r}")
        return k * self.h if k.ndim else float(k) * self.h

    def t_span(self, n_steps):
        """``(0, n_steps·h)``: the SDE time span of ``n_steps`` discrete steps."""
        return (0.0, check.positive_int(n_steps, "n_steps") * self.h)

    def initial_state(self, theta0, m0=None, v0=None):
        """SDE state at t = 0 from the discrete initial state.

        Parameters
        ----------
        theta0 : array_like, shape (d,) or (n_paths, d)
        m0 : float or array_like of shape (d,) or (n_paths, d), optional
            Adam's first moment (default 0). With bias correction it must be 0.
        v0 : float or array_like of shape (d,) or (n_paths, d), optional
            Second moment of RMSprop/Adam (default 0); mapped to u0 = v0/σ².
            A float applies to every coordinate, as in ``run_optimizer``.

        Returns
        -------
        ndarray, shape (n_blocks·d,) or (n_paths, n_blocks·d)
            (θ), (θ, u) or (θ, m, u) stacked along the last axis.
        """
        d = self.dim
        theta0 = _block(theta0, "theta0", d)
        if self.optimizer in ("sgd", "signsgd"):
            if m0 is not None or v0 is not None:
                label = {"sgd": "SGD", "signsgd": "SignSGD"}[self.optimizer]
                raise ValueError(f"`m0`/`v0` do not apply to the {label} SDE (state x = θ)")
            return theta0
        if self.optimizer == "sgd_momentum":
            if m0 is not None or v0 is not None:
                raise ValueError("`m0`/`v0` do not apply to the momentum SDE (state x = (θ, v), "
                                 "v = √η b starts at 0 as the buffer does)")
            return np.concatenate([theta0, np.zeros_like(theta0)], axis=-1)
        sigma = self.problem.noise_scale
        v0 = np.zeros_like(theta0) if v0 is None else _block(v0, "v0", d, scalar=True)
        if np.any(v0 < 0):
            raise ValueError(f"`v0` must be ≥ 0, got {v0}")
        u0 = v0 / sigma**2
        bias = self.constants["bias_correction"]
        if not bias and self.constants["eps0"] == 0.0 and np.any(u0 == 0.0):
            raise ValueError(
                "`v0` has zero entries while eps=0 without bias correction: the "
                "preconditioner σ0·√u + ε0 is 0 at t=0 and the SDE drift is singular")
        if self.optimizer == "rmsprop":
            if m0 is not None:
                raise ValueError("`m0` does not apply to the RMSprop SDE (state x = (θ, u))")
            return np.concatenate(np.broadcast_arrays(theta0, u0), axis=-1)
        m0 = np.zeros_like(theta0) if m0 is None else _block(m0, "m0", d, scalar=True)
        if bias and np.any(m0 != 0.0):
            raise ValueError(
                f"`m0` must be 0 with bias correction (the drift m/γ1(t) is singular at t=0 "
                f"otherwise), got {m0}")
        return np.concatenate(np.broadcast_arrays(theta0, m0, u0), axis=-1)

    def _slice(self, x, block):
        x = np.asarray(x)
        if x.shape[-1] != self.sde.dim:
            raise ValueError(f"`x` must have last axis {self.sde.dim} (the SDE state), got "
                             f"shape {x.shape}")
        d = self.dim
        return x[..., block * d:(block + 1) * d]

    def theta(self, x):
        """θ from SDE states of shape (..., n_blocks·d); shape (..., d)."""
        return self._slice(x, 0)

    def m(self, x):
        """Adam's m from SDE states; shape (..., d)."""
        if self.optimizer != "adam":
            raise ValueError(f"the {self.optimizer} SDE has no m block")
        return self._slice(x, 1)

    def u(self, x):
        """u from SDE states (RMSprop, Adam); shape (..., d)."""
        if self.optimizer in ("sgd", "sgd_momentum", "signsgd"):
            raise ValueError("the SGD SDE has no u block")
        return self._slice(x, self.n_blocks - 1)

    def v(self, x):
        """v = σ² u, the discrete second moment the SDE state stands for."""
        return self.problem.noise_scale**2 * self.u(x)

    def __repr__(self):
        return (f"OptimizerSDE({self.optimizer}, problem={self.problem.name!r}, "
                f"lr={self.lr:g}, h={self.h:g}, constants={self.constants})")


def _block(value, name, d, scalar=False):
    arr = np.asarray(value, dtype=np.float64)
    if scalar and arr.ndim == 0:
        arr = np.full(d, float(arr))
    if arr.ndim not in (1, 2) or arr.shape[-1] != d:
        raise ValueError(f"`{name}` must have shape ({d},) or (n_paths, {d}), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite, got {arr}")
    return arr


def build_sde(factory, problem, head, n_blocks, name, noise="general", brownian_limit=True):
    """An SDE of dim ``n_blocks·d`` for ``problem`` with params ``[head, *problem.params]``.

    ``brownian_limit``: the model matches the covariance of the gradient
    noise, so a problem whose noise has none (α-stable, α < 2) is refused.

    ``factory(grad, noise_sqrt, noise_diag, n_head)`` returns the (drift,
    diffusion) dispatchers. One template SDE per (factory, problem kernels) is
    kept and cloned with the new parameters and dimensions: the compiled
    kernels and drivers take dimensions from the arrays, so every learning
    rate and every dimension reuses them.
    """
    if brownian_limit:
        problem.require_finite_variance(name)
    template = _template(factory, problem.grad, problem.noise_sqrt, problem.noise_diag,
                         len(head), name, noise)
    sde = template.with_params(np.concatenate([np.asarray(head, dtype=np.float64),
                                               problem.params]))
    sde.dim = n_blocks * problem.dim
    sde.noise_dim = problem.dim
    return sde


@functools.lru_cache(maxsize=None)
def _template(factory, grad, noise_sqrt, noise_diag, n_head, name, noise):
    drift, diffusion = factory(grad, noise_sqrt, noise_diag, n_head)
    return SDE(drift, diffusion, dim=1, noise=noise, noise_dim=1, name=name)
