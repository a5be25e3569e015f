"""Integrate a torchsde-style SDE with ``torchsde.sdeint``, batched over paths.

The SDE is any object with ``f(t, y)`` and ``g(t, y)`` (or ``g_prod(t, y, v)``)
on tensors ``y`` of shape (batch, d), and the attributes ``noise_type``
(``"diagonal"``, ``"general"``, ``"additive"``, ``"scalar"``) and
``sde_type = "ito"``, as torchsde defines them: ``g`` returns (batch, d) for
diagonal noise and (batch, d, m) otherwise. The batch dimension is the path.

How the run is laid out
-----------------------
* **Step time.** torchsde advances with ``curr_t + dt`` and would take an extra,
  almost-zero step whenever the floating-point sum falls short of a save time.
  The SDE is therefore integrated in step time s = (t − t0)/dt:
  dX = dt·f(t0 + s dt, X) ds + √dt·g(t0 + s dt, X) dB_s with unit steps, whose
  grid 0, 1, 2, ... is exact. Euler–Maruyama, derivative-free Milstein and SRK
  produce the same iterates as on the original grid (up to rounding).
* **Brownian path.** :class:`.brownian.GridBrownian`, one (batch, m) block per
  step from a ``torch.Generator`` on the device.
* **Chunks and seeds.** Paths are processed in chunks of ``chunk_paths``; chunk
  c draws from a generator seeded from ``(seed, c)``. Results are reproducible
  for the same seed, device, dtype, ``n_paths`` and ``chunk_paths``. They are
  not the Numba engine's paths (different generator): compare statistics.
* **Save times.** ``sdeint`` is called once per interval between consecutive
  save steps (and up to the last step), so only the current state is kept on
  the device. Divergence (a non-finite state) is detected at these checkpoints:
  the step reported is the first checkpoint at which the path was non-finite,
  an upper bound on the step where it happened.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torchsde

from . import TORCHSDE_NOISE_TYPES
from .brownian import GridBrownian

DEFAULT_CHUNK_PATHS = 2**20

OBSERVABLE_NAMES = ("state", "square", "moments")


def _obs_state(t, x):
    return x


def _obs_square(t, x):
    return x * x


def _obs_moments(t, x):
    return torch.cat((x, x * x), dim=1)


BUILTIN_OBSERVABLES = dict(zip(OBSERVABLE_NAMES, (_obs_state, _obs_square, _obs_moments)))
BUILTIN_OBSERVABLES_DOC = {
    "state": "x, n_observables = dim",
    "square": "x**2 coordinate-wise, n_observables = dim",
    "moments": "(x, x**2), n_observables = 2 dim",
}


@dataclass
class TorchRun:
    """Arrays produced by :func:`integrate` (NumPy, float64, on the host).

    Attributes
    ----------
    x : ndarray, shape (n_save, n_paths, d), or None
        States at the save steps (non-finite paths hold NaN from their first
        non-finite checkpoint on).
    mean, m2 : ndarray, shape (n_save, n_obs), or None
        Mean and sum of squared deviations of the observables over the paths
        that stayed finite.
    count : int
        Number of paths that stayed finite.
    diverged_step : ndarray of int64, shape (n_paths,)
        First checkpoint step at which the path was non-finite, or -1.
    """

    x: Optional[np.ndarray]
    mean: Optional[np.ndarray]
    m2: Optional[np.ndarray]
    count: int
    diverged_step: np.ndarray


class _StepTimeSDE:
    """The SDE in step time s = (t − t0)/dt: drift × dt, diffusion × √dt."""

    def __init__(self, sde, t0, dt):
        self.noise_type = sde.noise_type
        self.sde_type = sde.sde_type
        self._sde, self._t0, self._dt, self._sqrt_dt = sde, t0, dt, dt**0.5
        if hasattr(sde, "g"):
            self.g = self._g
        if hasattr(sde, "g_prod"):
            self.g_prod = self._g_prod

    def f(self, s, y):
        return self._sde.f(self._t0 + s * self._dt, y) * self._dt

    def _g(self, s, y):
        return self._sde.g(self._t0 + s * self._dt, y) * self._sqrt_dt

    def _g_prod(self, s, y, v):
        return self._sde.g_prod(self._t0 + s * self._dt, y, v) * self._sqrt_dt


def resolve_device(device):
    """A ``torch.device`` for ``device``; unavailable CUDA is a ``ValueError``."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"`device` must name a torch device such as 'cpu' or 'cuda', "
                         f"got {device!r} ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`device` {device!r} asks for CUDA, but torch.cuda.is_available() is "
                         f"False (torch {torch.__version__}); use device='cpu'")
    return dev


def resolve_dtype(dtype):
    """``torch.float64`` (default) or ``torch.float32``, also given as a string."""
    table = {None: torch.float64, "float64": torch.float64, "float32": torch.float32,
             torch.float64: torch.float64, torch.float32: torch.float32}
    try:
        return table[dtype]
    except (KeyError, TypeError):
        raise ValueError(f"`dtype` must be 'float64' or 'float32', got {dtype!r}") from None


def resolve_observables(observables):
    """A callable ``phi(t, x) -> (batch, n_obs)`` from a callable or a built-in name."""
    if observables is None or callable(observables):
        return observables
    if isinstance(observables, str) and observables in BUILTIN_OBSERVABLES:
        return BUILTIN_OBSERVABLES[observables]
    raise ValueError(f"`observables` must be a torch function phi(t, x) -> (n_paths, "
                     f"n_observables) or one of {OBSERVABLE_NAMES}, got {observables!r}")


def check_sde(sde, method):
    """Refuse, with the reason, what ``sdeint`` with this method cannot run."""
    for attr in ("f", "noise_type", "sde_type"):
        if not hasattr(sde, attr):
            raise ValueError(f"the torch backend needs an SDE with `f(t, y)`, `g(t, y)` (or "
                             f"`g_prod`), `noise_type` and `sde_type` (torchsde style); "
                             f"{sde!r} has no `{attr}`")
    if not (hasattr(sde, "g") or hasattr(sde, "g_prod")):
        raise ValueError(f"the torch SDE {sde!r} has neither `g(t, y)` nor `g_prod(t, y, v)`")
    if sde.sde_type != "ito":
        raise ValueError(f"the engine integrates Itô SDEs; the torch SDE has "
                         f"sde_type={sde.sde_type!r} (use 'ito')")
    if method not in TORCHSDE_NOISE_TYPES:
        raise ValueError(f"`method` must be one of {tuple(TORCHSDE_NOISE_TYPES)} on the torch "
                         f"backend, got {method!r}")
    allowed = TORCHSDE_NOISE_TYPES[method]
    if sde.noise_type not in allowed:
        usable = [m for m, types in TORCHSDE_NOISE_TYPES.items() if sde.noise_type in types]
        raise ValueError(f"torchsde method {method!r} supports {allowed} noise, but the SDE has "
                         f"{sde.noise_type!r} noise; use one of {usable}")
    if sde.noise_type != "diagonal" and not hasattr(sde, "g") and not hasattr(sde, "noise_dim"):
        raise ValueError("a torch SDE that gives only `g_prod` must say its Brownian dimension "
                         "in an attribute `noise_dim`")
    if method != "euler" and not hasattr(sde, "g"):
        raise ValueError(f"torchsde method {method!r} needs the diffusion `g(t, y)`, the SDE "
                         f"gives only `g_prod`; use method 'euler'")


def _probe(sde, t0, y, n_obs_fn):
    """Call f, g and the observables once on a small batch; return (noise_dim, n_obs)."""
    batch, d = y.shape
    t = torch.tensor(t0, dtype=y.dtype, device=y.device)

    def call(label, fn, *args, shapes):
        try:
            out = fn(*args)
        except Exception as exc:
            raise ValueError(f"the torch SDE's `{label}` failed on a batch of shape {tuple(y.shape)} "
                             f"at t={t0}: {type(exc).__name__}: {exc}") from exc
        if not torch.is_tensor(out) or tuple(out.shape[:len(shapes)]) != shapes \
                or out.dim() not in (len(shapes), len(shapes) + 1):
            raise ValueError(f"the torch SDE's `{label}` must return a tensor of shape "
                             f"{shapes + ('...',) if label == 'g' else shapes}, got "
                             f"{getattr(out, 'shape', type(out).__name__)}")
        if not bool(torch.isfinite(out).all()):
            raise ValueError(f"the torch SDE's `{label}` is not finite at t={t0}, x0: {out}")
        return out

    call("f", sde.f, t, y, shapes=(batch, d))
    if hasattr(sde, "g"):
        g = call("g", sde.g, t, y, shapes=(batch, d))
        noise_dim = d if sde.noise_type == "diagonal" else (g.shape[2] if g.dim() == 3 else 1)
        if sde.noise_type == "diagonal" and g.dim() != 2:
            raise ValueError(f"diagonal noise: `g` must return (batch, d) = {(batch, d)}, got "
                             f"{tuple(g.shape)}")
        if sde.noise_type != "diagonal" and g.dim() != 3:
            raise ValueError(f"{sde.noise_type} noise: `g` must return (batch, d, m), got "
                             f"{tuple(g.shape)}")
    else:
        noise_dim = d if sde.noise_type == "diagonal" else int(sde.noise_dim)
        v = torch.zeros(batch, noise_dim, dtype=y.dtype, device=y.device)
        call("g_prod", sde.g_prod, t, y, v, shapes=(batch, d))
    if sde.noise_type == "scalar" and noise_dim != 1:
        raise ValueError(f"scalar noise needs one Brownian channel, `g` has {noise_dim}")
    n_obs = 0
    if n_obs_fn is not None:
        phi = call("observables", n_obs_fn, float(t0), y, shapes=(batch,))
        if phi.dim() != 2:
            raise ValueError(f"`observables` must return (n_paths, n_observables), got "
                             f"{tuple(phi.shape)}")
        n_obs = phi.shape[1]
    return noise_dim, n_obs


def chunk_seed(seed, chunk):
    """A 63-bit generator seed for chunk ``chunk`` of a run with ``seed``."""
    state = np.random.SeedSequence((seed, chunk)).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def integrate(sde, x0, n_paths, *, t0, dt, n_steps, save_steps, method, seed,
              device="cpu", dtype=None, observables=None, n_observables=None, save_paths=True,
              chunk_paths=None):
    """Integrate ``n_paths`` paths of a torchsde-style SDE with ``torchsde.sdeint``.

    Parameters
    ----------
    sde : object
        ``f(t, y)``, ``g(t, y)`` (or ``g_prod(t, y, v)`` and ``noise_dim``),
        ``noise_type``, ``sde_type="ito"``; ``t`` is a 0-d tensor, ``y`` (batch, d).
    x0 : ndarray, shape (1, d) or (n_paths, d)
        Initial state, shared or per path.
    n_paths : int
    t0, dt : float
        Start time and step; step k ends at t0 + k dt.
    n_steps : int
        Steps to take (the run always reaches step ``n_steps``).
    save_steps : ndarray of int, shape (n_save,)
        Non-decreasing step indices in [0, n_steps] at which to record.
    method : {"euler", "milstein", "srk"}
        torchsde method (Milstein in its derivative-free form).
    seed : int
    device : str or torch.device
    dtype : {"float64", "float32"} or torch dtype, optional
        Arithmetic precision on the device (default float64).
    observables : callable or str, optional
        ``phi(t, x) -> (batch, n_obs)`` tensor, or a name of
        :data:`BUILTIN_OBSERVABLES` (``"state"``, ``"square"``, ``"moments"``).
    n_observables : int, optional
        Number of values ``observables`` returns, checked before the run.
    save_paths : bool
        Return every path's states.
    chunk_paths : int, optional
        Paths per ``sdeint`` batch (default :data:`DEFAULT_CHUNK_PATHS`).

    Returns
    -------
    TorchRun
    """
    check_sde(sde, method)
    device = resolve_device(device)
    dtype = resolve_dtype(dtype)
    phi = resolve_observables(observables)
    chunk = DEFAULT_CHUNK_PATHS if chunk_paths is None else int(chunk_paths)
    if chunk <= 0:
        raise ValueError(f"`chunk_paths` must be a positive integer, got {chunk_paths!r}")
    save_steps = np.asarray(save_steps, dtype=np.int64)
    x0_t = torch.as_tensor(np.ascontiguousarray(x0), dtype=dtype, device=device)
    d = x0_t.shape[1]
    with torch.no_grad():
        noise_dim, n_obs = _probe(sde, t0, x0_t[:2].clone() if x0_t.shape[0] > 1 else
                                  x0_t.expand(2, d).clone(), phi)
    if n_observables is not None and n_observables != n_obs:
        raise ValueError(f"`n_observables` is {n_observables!r} but `observables` returns "
                         f"{n_obs} values per path")
    checkpoints = np.unique(np.append(save_steps, n_steps))
    where = np.searchsorted(checkpoints, save_steps)
    stepper = _StepTimeSDE(sde, t0, dt)
    options = {"grad_free": True} if method == "milstein" else None

    n_save = len(save_steps)
    x_out = np.empty((n_save, n_paths, d)) if save_paths else None
    diverged_step = np.full(n_paths, -1, dtype=np.int64)
    chunk_stats = []
    for c, lo in enumerate(range(0, n_paths, chunk)):
        hi = min(lo + chunk, n_paths)
        gen = torch.Generator(device=device)
        gen.manual_seed(chunk_seed(seed, c))
        bm = GridBrownian((hi - lo, noise_dim), gen, dtype, device, space_time=(method == "srk"))
        y = (x0_t[lo:hi] if x0_t.shape[0] > 1 else x0_t.expand(hi - lo, d)).clone()
        states, bad = [], torch.zeros(hi - lo, dtype=torch.bool, device=device)
        first_bad = torch.full((hi - lo,), -1, dtype=torch.int64, device=device)
        k_prev = 0
        with torch.no_grad():
            for k in checkpoints:
                if k > k_prev:
                    y = torchsde.sdeint(stepper, y, [float(k_prev), float(k)], bm=bm,
                                        method=method, dt=1.0, options=options)[-1]
                    k_prev = k
                now_bad = ~torch.isfinite(y).all(dim=1)
                first_bad = torch.where(now_bad & ~bad, torch.full_like(first_bad, int(k)),
                                        first_bad)
                bad |= now_bad
                states.append(y)
            kept = [states[i] for i in where]
            if save_paths:
                xs = torch.stack(kept).to("cpu", torch.float64).numpy()
                bad_np = first_bad.cpu().numpy()
                for p in np.flatnonzero(bad_np >= 0):
                    xs[save_steps >= bad_np[p], p, :] = np.nan
                x_out[:, lo:hi] = xs
            diverged_step[lo:hi] = first_bad.cpu().numpy()
            if n_obs:
                ok = ~bad
                vals = torch.stack([phi(t0 + int(k) * dt, s[ok]) for k, s in zip(save_steps, kept)])
                vals = vals.to(torch.float64)
                count = int(ok.sum())
                mean = vals.mean(dim=1) if count else torch.zeros(n_save, n_obs, dtype=torch.float64)
                m2 = ((vals - mean[:, None, :]) ** 2).sum(dim=1)
                chunk_stats.append((count, mean.cpu().numpy(), m2.cpu().numpy()))
    mean = m2 = None
    if n_obs:
        count, mean, m2 = merge_statistics(chunk_stats, (n_save, n_obs))
    else:
        count = int(np.sum(diverged_step < 0))
    return TorchRun(x=x_out, mean=mean, m2=m2, count=count, diverged_step=diverged_step)


def merge_statistics(chunks, shape):
    """Merge per-chunk (count, mean, M2) in chunk order (Chan et al. 1979)."""
    n, mean, m2 = 0, np.zeros(shape), np.zeros(shape)
    for nb, mb, m2b in chunks:
        if nb == 0:
            continue
        total = n + nb
        delta = mb - mean
        mean = mean + delta * (nb / total)
        m2 = m2 + m2b + delta * delta * (n * nb / total)
        n = total
    return n, mean, m2
