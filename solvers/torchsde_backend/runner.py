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
  step (or the sum of ``refine`` finer ones) from a ``torch.Generator`` on the device.
* **Chunks, seeds, save times** (:mod:`.batched`): paths run in chunks, the
  chunk starting at global path p draws from a generator seeded from ``(seed, p)``; ``sdeint`` is called once
  per interval between consecutive save steps (and up to the last step), so
  only the current state is kept on the device. Divergence is detected at
  these checkpoints: the step reported is the first checkpoint at which the
  path was non-finite, an upper bound on the step where it happened. The
  paths are not the Numba engine's (different generator): compare statistics.
"""
import numpy as np
import torch
import torchsde

from .methods import TORCHSDE_NOISE_TYPES
from .batched import resolve_device, resolve_dtype, resolve_observables, run_batched
from .brownian import GridBrownian


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


def integrate(sde, x0, n_paths, *, t0, dt, n_steps, save_steps, method, seed,
              device="cpu", dtype=None, observables=None, n_observables=None, save_paths=True,
              chunk_paths=None, path_offset=0, refine=1):
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
        Paths per ``sdeint`` batch (default :data:`.batched.DEFAULT_CHUNK_PATHS`).
    path_offset : int
        Global index of path 0: the chunk starting at global path p draws from
        the generator seeded from (seed, p).
    refine : int
        Brownian increments of each step summed from ``refine`` finer pieces
        (see :class:`.brownian.GridBrownian`); not with ``srk``.

    Returns
    -------
    solvers.torchsde_backend.batched.TorchRun
    """
    check_sde(sde, method)
    if refine != 1 and method == "srk":
        raise ValueError("`brownian_dt` (a refined Brownian path) is not available with method "
                         "'srk', whose space-time Lévy area would not be refined with it")
    device = resolve_device(device)
    dtype = resolve_dtype(dtype)
    phi = resolve_observables(observables)
    x0_t = torch.as_tensor(np.ascontiguousarray(x0), dtype=dtype, device=device)
    d = x0_t.shape[1]
    with torch.no_grad():
        noise_dim, n_obs = _probe(sde, t0, x0_t[:2].clone() if x0_t.shape[0] > 1 else
                                  x0_t.expand(2, d).clone(), phi)
    if n_observables is not None and n_observables != n_obs:
        raise ValueError(f"`n_observables` is {n_observables!r} but `observables` returns "
                         f"{n_obs} values per path")
    stepper = _StepTimeSDE(sde, t0, dt)
    options = {"grad_free": True} if method == "milstein" else None

    def make_advance(generator, batch):
        bm = GridBrownian((batch, noise_dim), generator, dtype, device,
                          space_time=(method == "srk"), refine=refine)

        def advance(y, k_from, k_to):
            return torchsde.sdeint(stepper, y, [float(k_from), float(k_to)], bm=bm,
                                   method=method, dt=1.0, options=options)[-1]
        return advance

    return run_batched(x0_t, n_paths, n_steps=n_steps, save_steps=save_steps, seed=seed,
                       make_advance=make_advance, time_of_step=lambda k: t0 + k * dt,
                       observables=phi, n_obs=n_obs, save_paths=save_paths,
                       chunk_paths=chunk_paths, path_offset=path_offset)
