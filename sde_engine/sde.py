"""The SDE specification: drift, diffusion and their parameters.

Calling convention (the public contract for user functions)::

    drift(t, x, params, out)         # x, out: (dim,)
    diffusion(t, x, params, out)     # out: (dim,) diagonal noise, (dim, noise_dim) general
    diffusion_dx(t, x, params, out)  # out: (dim,), diagonal of dg/dx (Milstein, optional)

``t`` is a float, ``params`` a float64 array of shape (n_params,). The functions
write into ``out`` and return nothing. They are plain Python functions that the
engine compiles with Numba (``numba.njit``); define them at module level so the
compiled code is reused (a closure recompiles every time it is created). What
Numba cannot compile is reported by name, and ``simulate(..., check_bounds=True)``
runs them bounds-checked (:mod:`sde_engine.user_functions`).
"""
import numbers

import numba
import numpy as np

from .user_functions import bounds_checked, sde_function_types

NOISE_TYPES = ("diagonal", "general")


def as_float_params(params, name="params"):
    """Return ``params`` as a contiguous float64 array of shape (n,).

    Integer, boolean, complex or object arrays are refused rather than silently
    converted, because a wrong dtype usually means a wrong argument.
    """
    if params is None:
        return np.zeros(0)
    arr = np.asarray(params)
    if arr.dtype.kind != "f":
        raise ValueError(
            f"`{name}` must be a float64 array, got dtype {arr.dtype} ({params!r}); "
            f"write floats, e.g. np.array([0.5, 1.0])")
    if arr.ndim > 1:
        raise ValueError(f"`{name}` must be one-dimensional, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr.reshape(-1), dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite, got {arr}")
    return arr


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
    return int(value)


def jit_user_function(fn, name):
    """Compile a user function with Numba (already-jitted dispatchers are kept).

    Returns ``(python_function, jitted_dispatcher)``; the Python version is used
    for the probe call that checks shapes before any compiled work.
    """
    if fn is None:
        return None, None
    if isinstance(fn, numba.core.registry.CPUDispatcher):
        return fn.py_func, fn
    if not callable(fn):
        raise ValueError(f"`{name}` must be a function (t, x, params, out), got {fn!r}")
    return fn, numba.njit(inline="always")(fn)


def as_sde(sde):
    """The :class:`SDE` to integrate: ``sde`` itself, or the ``.sde`` of an optimizer model.

    Raises
    ------
    ValueError
        When ``sde`` is neither.
    """
    if isinstance(sde, SDE):
        return sde
    inner = getattr(sde, "sde", None)
    if isinstance(inner, SDE):        # an OptimizerSDE (sde_engine.models)
        return inner
    raise ValueError(
        f"`sde` must be an SDE (sde_engine.SDE(drift, diffusion, dim)) or an optimizer model "
        f"(e.g. sde_engine.sgd_sde(problem, lr)), got {sde!r}")


class SDE:
    """An Itô SDE  dX = f(t, X) dt + g(t, X) dW  in R^dim (or dL: ``levy_alpha``).

    Parameters
    ----------
    drift : callable
        ``drift(t, x, params, out)`` writes f(t, x), shape (dim,).
    diffusion : callable
        ``diffusion(t, x, params, out)`` writes g(t, x): shape (dim,) when
        ``noise="diagonal"`` (g acts coordinate-wise on dW of shape (dim,)),
        shape (dim, noise_dim) when ``noise="general"``.
    dim : int
        State dimension d.
    noise : {"diagonal", "general"}
        Structure of the diffusion.
    noise_dim : int, optional
        Brownian dimension m. Must equal ``dim`` for diagonal noise; defaults to
        ``dim``.
    params : array_like of float, optional
        Parameters handed to every function, float64 of shape (n_params,).
    diffusion_dx : callable, optional
        ``diffusion_dx(t, x, params, out)`` writes ∂g_i/∂x_i, shape (dim,).
        Used by Milstein; without it Milstein uses a derivative-free form.
    name : str, optional
        Label used in messages and results.
    levy_alpha : float, optional
        Drive the SDE by a symmetric α-stable Lévy process L instead of W,
        α = ``levy_alpha`` ∈ (0, 2]: dX = f dt + g dL with independent
        coordinates, E exp(iuL_t) = exp(−t|u|^α) (so α = 2 gives L = √2 W).
        Only Euler–Maruyama integrates it (the Euler scheme for Lévy-driven
        SDEs, increments dt^{1/α} S_α; :mod:`solvers.heavy_tails`). Default
        None: Brownian motion.
    """

    def __init__(self, drift, diffusion, dim, noise="diagonal", noise_dim=None,
                 params=None, diffusion_dx=None, name=None, levy_alpha=None):
        self.dim = _positive_int(dim, "dim")
        if noise not in NOISE_TYPES:
            raise ValueError(f"`noise` must be one of {NOISE_TYPES}, got {noise!r}")
        self.noise = noise
        if noise_dim is None:
            noise_dim = self.dim
        self.noise_dim = _positive_int(noise_dim, "noise_dim")
        if noise == "diagonal" and self.noise_dim != self.dim:
            raise ValueError(
                f"`noise_dim` must equal `dim` ({self.dim}) for diagonal noise, got {noise_dim}")
        self.params = as_float_params(params)
        self.levy_alpha = None if levy_alpha is None else stability_index(levy_alpha)
        self.drift, self.drift_jit = jit_user_function(drift, "drift")
        self.diffusion, self.diffusion_jit = jit_user_function(diffusion, "diffusion")
        if self.drift is None or self.diffusion is None:
            raise ValueError("`drift` and `diffusion` are both required")
        self.diffusion_dx, self.diffusion_dx_jit = jit_user_function(diffusion_dx, "diffusion_dx")
        self.name = name or getattr(drift, "__name__", "sde")
        self._compiled = {}   # (scheme name, observables, ..., check_bounds) -> compiled driver
        self._bounds_checked = None

    @property
    def diffusion_shape(self):
        """Shape of the array ``diffusion`` writes: (dim,) or (dim, noise_dim)."""
        return (self.dim,) if self.noise == "diagonal" else (self.dim, self.noise_dim)

    def user_functions(self):
        """``(label, dispatcher, argtypes)`` of each function the path loop inlines."""
        found = [("drift", self.drift_jit, sde_function_types(1)),
                 ("diffusion", self.diffusion_jit,
                  sde_function_types(len(self.diffusion_shape)))]
        if self.diffusion_dx_jit is not None:
            found.append(("diffusion_dx", self.diffusion_dx_jit, sde_function_types(1)))
        return found

    def bounds_checked(self):
        """This SDE with its functions compiled bounds-checked (made once, then shared).

        The copy's ``drift_jit``/``diffusion_jit``/``diffusion_dx_jit`` are
        :func:`sde_engine.user_functions.bounds_checked` forms, for the schemes'
        ``make_step``; everything else is this SDE's.
        """
        if self._bounds_checked is None:
            shapes = {"drift": (self.dim,), "diffusion": self.diffusion_shape,
                      "diffusion_dx": (self.dim,)}
            clone = object.__new__(SDE)
            clone.__dict__.update(self.__dict__)
            for label, fn, _ in self.user_functions():
                setattr(clone, f"{label}_jit", bounds_checked(fn, label, shapes[label]))
            self._bounds_checked = clone
        return self._bounds_checked

    def with_params(self, params):
        """A copy of this SDE with other parameters (compiled code is shared)."""
        clone = object.__new__(SDE)
        clone.__dict__.update(self.__dict__)
        clone.params = as_float_params(params)
        return clone

    def probe(self, t, x, params=None):
        """Call the Python drift/diffusion once at (t, x) and check what they write.

        Raises ``ValueError`` naming the function when it fails on an output of
        the declared shape or leaves entries unset or non-finite. This runs in
        plain Python before any compiled work, because compiled code does not
        check bounds.
        """
        params = self.params if params is None else params
        checks = [("drift", self.drift, (self.dim,)),
                  ("diffusion", self.diffusion, self.diffusion_shape)]
        if self.diffusion_dx is not None:
            checks.append(("diffusion_dx", self.diffusion_dx, (self.dim,)))
        for label, fn, shape in checks:
            out = np.full(shape, np.nan)
            try:
                returned = fn(float(t), np.array(x, dtype=np.float64), params, out)
            except Exception as exc:  # report the user's error with the contract
                raise ValueError(
                    f"`{label}` failed when writing an output of shape {shape} "
                    f"({self.noise} noise, dim={self.dim}, noise_dim={self.noise_dim}) "
                    f"at t={t}, x={np.asarray(x)}: {type(exc).__name__}: {exc}") from exc
            if returned is not None and np.all(np.isnan(out)):
                raise ValueError(
                    f"`{label}` returned a value instead of writing into `out`; "
                    f"the convention is {label}(t, x, params, out) -> None")
            if not np.all(np.isfinite(out)):
                raise ValueError(
                    f"`{label}` left entries of its output (shape {shape}) unset or "
                    f"non-finite at t={t}, x={np.asarray(x)}: {out}")

    def __repr__(self):
        levy = "" if self.levy_alpha is None else f", levy_alpha={self.levy_alpha:g}"
        return (f"SDE(name={self.name!r}, dim={self.dim}, noise={self.noise!r}, "
                f"noise_dim={self.noise_dim}{levy}, params={self.params})")


def stability_index(alpha):
    """α ∈ (0, 2] of an α-stable driving noise, as a float; anything else is refused."""
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) \
            or not 0.0 < float(alpha) <= 2.0:
        raise ValueError(f"`levy_alpha` must be a number in (0, 2], got {alpha!r}")
    return float(alpha)
