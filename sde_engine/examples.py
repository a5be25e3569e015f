"""Built-in SDEs with exact solutions: geometric Brownian motion and Ornstein–Uhlenbeck.

Both act coordinate-wise on a state of any dimension with diagonal noise, so
they serve one-step checks, order studies, the demo and user experiments.
"""
import numpy as np

from .sde import SDE


def _gbm_drift(t, x, params, out):
    for i in range(x.shape[0]):        # loops, not out[:] = ... * x: no array per call
        out[i] = params[0] * x[i]


def _gbm_diffusion(t, x, params, out):
    for i in range(x.shape[0]):
        out[i] = params[1] * x[i]


def _gbm_diffusion_dx(t, x, params, out):
    out[:] = params[1]


def gbm(mu=0.5, sigma=0.8, dim=1):
    """Geometric Brownian motion  dX = μ X dt + σ X dW  (coordinate-wise).

    Exact solution on the driving Brownian path W:
    X_t = X_0 exp((μ − σ²/2) t + σ W_t) — see :func:`gbm_exact`.
    """
    return SDE(_gbm_drift, _gbm_diffusion, dim=dim, noise="diagonal",
               params=np.array([mu, sigma], dtype=float),
               diffusion_dx=_gbm_diffusion_dx, name="gbm")


def gbm_exact(x0, t, W, mu=0.5, sigma=0.8):
    """Exact GBM state from the Brownian value W_t (any broadcastable shapes)."""
    return np.asarray(x0) * np.exp((mu - 0.5 * sigma**2) * _bt(t, W) + sigma * np.asarray(W))


def _bt(t, W):
    """Broadcast save times t (n_save,) against W (n_save, n_paths, m)."""
    t = np.asarray(t, dtype=float)
    return t.reshape(t.shape + (1,) * (np.ndim(W) - t.ndim)) if t.ndim else t


def gbm_moments(x0, t, mu=0.5, sigma=0.8):
    """E X_t and E X_t² of GBM started at x0: x0 e^{μt}, x0² e^{(2μ+σ²)t}."""
    t = np.asarray(t, dtype=float)
    return x0 * np.exp(mu * t), x0**2 * np.exp((2 * mu + sigma**2) * t)


def _ou_drift(t, x, params, out):
    for i in range(x.shape[0]):
        out[i] = params[0] * (params[1] - x[i])


def _ou_diffusion(t, x, params, out):
    out[:] = params[2]


def _ou_diffusion_dx(t, x, params, out):
    out[:] = 0.0


def ornstein_uhlenbeck(theta=1.0, mean=0.0, sigma=0.5, dim=1):
    """Ornstein–Uhlenbeck  dX = θ (μ − X) dt + σ dW  (coordinate-wise)."""
    return SDE(_ou_drift, _ou_diffusion, dim=dim, noise="diagonal",
               params=np.array([theta, mean, sigma], dtype=float),
               diffusion_dx=_ou_diffusion_dx, name="ornstein_uhlenbeck")


def ou_moments(x0, t, theta=1.0, mean=0.0, sigma=0.5):
    """Exact mean and variance of OU at time t from a deterministic x0."""
    t = np.asarray(t, dtype=float)
    decay = np.exp(-theta * t)
    return mean + (x0 - mean) * decay, sigma**2 / (2 * theta) * (1 - decay**2)
