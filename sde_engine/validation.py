"""Argument checks shared by the public entry points.

Every check raises ``ValueError`` naming the argument and the value received,
before any work is done.
"""
import math
import numbers

import numpy as np

# Relative tolerance for "this time lies on the step grid".
GRID_RTOL = 1e-9


def positive_float(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{name}` must be a positive number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"`{name}` must be positive and finite, got {value!r}")
    return value


def positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
    return int(value)


def nonnegative_int(value, name, upper=2**63 - 1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value <= upper:
        raise ValueError(f"`{name}` must be an integer in [0, {upper}], got {value!r}")
    return int(value)


def time_span(t_span):
    """Validate ``t_span = (t0, t1)`` with finite t0 < t1."""
    try:
        t0, t1 = (float(v) for v in t_span)
    except (TypeError, ValueError):
        raise ValueError(f"`t_span` must be a pair (t0, t1) of numbers, got {t_span!r}") from None
    if not (math.isfinite(t0) and math.isfinite(t1)):
        raise ValueError(f"`t_span` must be finite, got {t_span!r}")
    if t1 <= t0:
        raise ValueError(f"`t_span` must have t0 < t1, got {t_span!r} (reversed or empty)")
    return t0, t1


def steps_on_grid(duration, dt, name="dt"):
    """Number of steps of size ``dt`` in ``duration``; it must be a whole number."""
    n = round(duration / dt)
    if n < 1 or abs(n * dt - duration) > GRID_RTOL * max(duration, dt):
        raise ValueError(
            f"`{name}` must divide the time span {duration!r} into a whole number of "
            f"steps, got {name}={dt!r} ({duration / dt:.6g} steps)")
    return int(n)


def save_steps(save_at, t0, t1, dt, n_steps):
    """Map save times to step indices of the grid t0 + k dt; shape (n_save,)."""
    if save_at is None:
        return np.array([0, n_steps], dtype=np.int64), np.array([t0, t1])
    times = np.atleast_1d(np.asarray(save_at, dtype=np.float64))
    if times.ndim != 1 or times.size == 0:
        raise ValueError(f"`save_at` must be a non-empty 1-D array of times, got {save_at!r}")
    if not np.all(np.isfinite(times)) or np.any(np.diff(times) < 0):
        raise ValueError(f"`save_at` must be finite and non-decreasing, got {times}")
    tol = GRID_RTOL * max(abs(t1 - t0), dt)
    if times[0] < t0 - tol or times[-1] > t1 + tol:
        raise ValueError(f"`save_at` must lie in t_span [{t0}, {t1}], got {times}")
    k = np.rint((times - t0) / dt).astype(np.int64)
    off = np.abs(t0 + k * dt - times) > tol
    if np.any(off):
        raise ValueError(
            f"`save_at` times must lie on the step grid t0 + k*dt (dt={dt}); "
            f"not on it: {times[off][:5]}")
    return k, t0 + k * dt


def numeric_array(value, name):
    """``value`` as a float64 array; strings, objects, booleans and ragged lists are refused.

    Conversion is checked before it happens, so that ``["1.0"]`` is refused
    rather than parsed and ``["x"]`` is named rather than reported by NumPy.
    """
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):       # ragged nesting
        raise ValueError(f"`{name}` must be a numeric array, got {value!r}") from None
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"`{name}` must be a numeric array, got {value!r} (dtype {arr.dtype})")
    return arr.astype(np.float64, copy=False)


def initial_state(x0, dim, n_paths):
    """Validate ``x0``: shape (dim,) for all paths or (n_paths, dim) per path.

    Returns a C-contiguous float64 array of shape (1, dim) or (n_paths, dim).
    """
    arr = numeric_array(x0, "x0")
    if arr.shape == (dim,):
        arr = arr.reshape(1, dim)
    elif arr.shape != (n_paths, dim):
        raise ValueError(
            f"`x0` must have shape ({dim},) or (n_paths, {dim}) = ({n_paths}, {dim}), "
            f"got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`x0` must be finite, got {x0!r}")
    return arr


def choice(value, name, options):
    if value not in options:
        raise ValueError(f"`{name}` must be one of {tuple(options)}, got {value!r}")
    return value


def float_dtype(value, name="dtype"):
    """``"float64"`` (also for None) or ``"float32"``, from a string or a NumPy or torch dtype."""
    if value is None:
        return "float64"
    try:
        text = np.dtype(value).name
    except TypeError:                       # torch.float32 and the like
        text = str(value).removeprefix("torch.")
    if text not in ("float64", "float32"):
        raise ValueError(f"`{name}` must be float64 or float32, got {value!r}")
    return text


# ---- optimizer hyperparameters (SPEC §2–3) ---------------------------------------
def beta(value, name):
    """A decay rate β in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must lie in [0, 1), got {value!r}")
    return float(value)


def betas(value):
    """A pair (β1, β2), each in [0, 1)."""
    try:
        b1, b2 = value
    except (TypeError, ValueError):
        raise ValueError(f"`betas` must be a pair (beta1, beta2), got {value!r}") from None
    return beta(b1, "betas[0]"), beta(b2, "betas[1]")


def nonnegative_float(value, name):
    """A finite real number ≥ 0 (bools refused), as float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a finite number ≥ 0, got {value!r}")
    return float(value)


def eps(value):
    """The denominator offset ε ≥ 0, finite."""
    return nonnegative_float(value, "eps")


def flag(value, name):
    """A boolean switch (Python or NumPy bool)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"`{name}` must be True or False, got {value!r}")
    return bool(value)
