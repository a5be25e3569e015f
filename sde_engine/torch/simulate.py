"""The torch backend of :func:`sde_engine.simulate` (``backend="torch"``).

:func:`sde_engine.simulate` looks the backend up in :mod:`sde_engine.backends`,
where :mod:`sde_engine.torch` registers :func:`simulate_torch`. This module
validates what is specific to torch, finds the SDE's torch form
(:mod:`sde_engine.torch.models`), runs it through ``torchsde.sdeint``
(:mod:`solvers.torchsde_backend`) and packs the same :class:`Solution` as the
Numba backend.

What differs from the Numba backend
-----------------------------------
* Paths are batched on the device; the random numbers come from a
  ``torch.Generator`` per chunk of paths, keyed by (seed, global index of the
  chunk's first path), so a seed gives the same result for the same device,
  dtype, ``path_offset``, ``n_paths`` and ``chunk_paths`` — but not the Numba
  paths: the two backends agree in distribution (statistics), not path by path.
  Pieces of a study run with different ``path_offset`` draw from different
  streams; ``brownian_dt`` couples runs with different ``dt`` on one Brownian
  path as on the Numba backend (not with ``srk``).
* ``observables`` is a torch function ``phi(t, x) -> (n_paths, n_observables)``
  (``t`` a float, ``x`` a tensor (n_paths, dim)) or a built-in name:
  ``"state"`` (x, dim values), ``"square"`` (x², dim values), ``"moments"``
  ((x, x²), 2·dim values). ``n_observables`` may be omitted.
* Divergence is detected at the save steps (and the last step): the reported
  step is the first of those at which the path was non-finite.
* Refused (``ValueError``): ``save_brownian`` and ``n_threads`` (Numba-only),
  Numba-style observables, and SDEs without a torch form. ``method`` is a registry scheme with a ``torchsde_method``
  (``"euler_maruyama"`` → euler, ``"milstein"`` → derivative-free milstein) or
  ``"srk"`` (torchsde's stochastic Runge–Kutta, torch backend only).
"""
import inspect

import numpy as np

from solvers.registry import SCHEMES

from .. import validation as check
from ..simulate import DIVERGENCE_POLICIES, apply_divergence_policy, check_saved_size
from ..solution import Solution
from .models import torch_form

# Methods that exist on the torch backend only (engine name -> torchsde method).
TORCH_ONLY_METHODS = {"srk": "srk"}


def torch_methods():
    """Engine method names the torch backend accepts, mapped to torchsde methods."""
    table = {name: s.torchsde_method for name, s in SCHEMES.items() if s.torchsde_method}
    table.update(TORCH_ONLY_METHODS)
    return table


def torchsde_method(method):
    """The torchsde method for engine method ``method`` (``ValueError`` if none)."""
    table = torch_methods()
    if method not in table:
        raise ValueError(f"`method` must be one of {sorted(table)} on the torch backend, "
                         f"got {method!r}")
    return table[method]


def _check_observables(observables):
    if observables is None or isinstance(observables, str):
        return
    if not callable(observables):
        raise ValueError(f"`observables` must be a torch function phi(t, x) or a built-in name, "
                         f"got {observables!r}")
    fn = getattr(observables, "py_func", observables)
    try:
        n_args = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return
    if fn is not observables or n_args == 4:
        raise ValueError(
            "on the torch backend `observables` is a torch function phi(t, x) -> (n_paths, "
            "n_observables) or one of 'state', 'square', 'moments'; got a Numba-style function "
            f"{getattr(fn, '__name__', fn)!r} (t, x, params, out)")


def simulate_torch(sde, x0, t_span, dt, n_paths, *, method, seed, save_at, observables,
                   n_observables, save_paths, save_brownian, brownian_dt, on_divergence,
                   path_offset, n_threads, device, dtype=None, chunk_paths=None):
    """Run :func:`sde_engine.simulate` on the torch backend; same arguments and result.

    Extra parameters
    ----------------
    device : str or torch.device, optional
        ``"cpu"`` (default) or ``"cuda"``/``"cuda:N"``.
    dtype : {"float64", "float32"} or a NumPy or torch dtype, optional
        Precision on the device (default float64, as the Numba engine).
    chunk_paths : int, optional
        Paths per ``sdeint`` batch (default 2**20); bounds device memory.

    Returns
    -------
    Solution
        ``t`` (n_save,), ``x`` (n_save, n_paths, dim) or None, ``mean``/``var``
        (n_save, n_observables) or None; ``info["backend"] == "torch"``.
    """
    from solvers import torchsde_backend

    for name, value, default in (("save_brownian", save_brownian, False),
                                 ("n_threads", n_threads, None)):
        if value != default:
            raise ValueError(f"`{name}` is not available on the torch backend (got {value!r}); "
                             f"use backend='numba' for it")
    inner = getattr(sde, "sde", sde)
    if getattr(inner, "levy_alpha", None) is not None:
        raise ValueError(f"the torch backend integrates Brownian SDEs (torchsde); this one is "
                         f"driven by α-stable noise (levy_alpha={inner.levy_alpha:g}): use "
                         f"backend='numba'")
    ts_method = torchsde_method(method)
    torchsde_backend.require_torch()
    from solvers.torchsde_backend.batched import resolve_device, resolve_dtype
    device, dtype = resolve_device(device or "cpu"), resolve_dtype(check.float_dtype(dtype))
    form = torch_form(sde, device, dtype)
    dt = check.positive_float(dt, "dt")
    n_paths = check.positive_int(n_paths, "n_paths")
    seed = check.nonnegative_int(seed, "seed")
    t0, t1 = check.time_span(t_span)
    n_steps = check.steps_on_grid(t1 - t0, dt)
    path_offset = check.nonnegative_int(path_offset, "path_offset", upper=2**62)
    refine = 1
    if brownian_dt is not None:
        brownian_dt = check.positive_float(brownian_dt, "brownian_dt")
        refine = check.steps_on_grid(dt, brownian_dt, name="brownian_dt")
    steps, times = check.save_steps(save_at, t0, t1, dt, n_steps)
    dim = getattr(form, "dim", None)
    if dim is None:
        dim = int(np.shape(x0)[-1]) if np.ndim(x0) else 0
    x0 = check.initial_state(x0, dim, n_paths)
    check.choice(on_divergence, "on_divergence", DIVERGENCE_POLICIES)
    _check_observables(observables)
    if observables is None and n_observables not in (None, 0):
        raise ValueError(f"`n_observables` given ({n_observables!r}) without `observables`")
    if save_paths is None:
        save_paths = observables is None
    if save_paths:
        check_saved_size("save_paths", len(steps), n_paths, dim)

    run = torchsde_backend.integrate(
        form, x0, n_paths, t0=t0, dt=dt, n_steps=n_steps, save_steps=steps, method=ts_method,
        seed=seed, device=device, dtype=dtype, observables=observables,
        n_observables=n_observables, save_paths=bool(save_paths), chunk_paths=chunk_paths,
        path_offset=path_offset, refine=refine)
    mean = var = None
    if observables is not None:
        mean, var = run.mean, run.m2 / max(run.count - 1, 1)
    report, kept, (x_out,) = apply_divergence_policy(
        run.diverged_step, path_offset, t0 + run.diverged_step * dt, on_divergence, (run.x,),
        stacklevel=4)
    return Solution(
        t=times, x=x_out, mean=mean, var=var, n_used=run.count, diverged=report,
        kept_paths=kept,
        info=dict(method=method, dt=dt, n_steps=n_steps, seed=seed, n_paths=n_paths,
                  path_offset=path_offset, brownian_dt=dt / refine, backend="torch",
                  device=str(device), torchsde_method=ts_method,
                  dtype=str(dtype).replace("torch.", ""), chunk_paths=chunk_paths,
                  divergence_detected_at="save steps"))
