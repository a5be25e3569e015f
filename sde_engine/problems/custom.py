"""A :class:`Problem` from the user's own Numba-compilable functions.

See the "Your own problem" section of :mod:`sde_engine.problems.base` for an
example. Parameter layout of the resulting problem::

    [σ, family code, noise shape, *p]        (p: the user's parameter array)

The user's functions receive ``p`` (a view ``params[3:]``).
"""
import functools

import numpy as np
from numba import njit, types

from .. import validation as check
from ..sde import jit_user_function
from ..user_functions import compile_user_function, float64_1d, float64_2d
from .base import NOISE_FAMILIES, Problem, draw_standardized, noise_family

_HEAD = 3


def custom_problem(name, dim, params, *, loss, grad, noise_sqrt, noise_diag=None,
                   stochastic_grad=None, noise="gaussian", noise_scale=1.0,
                   diagonal_noise=False, df=None, alpha=None):
    """Build a problem from user functions (compiled with ``numba.njit``).

    Parameters
    ----------
    name : str
    dim : int
        d, the dimension of θ.
    params : array_like of float, shape (k,)
        The user's parameters ``p`` handed to every function.
    loss : callable
        ``loss(x, p) -> float``.
    grad : callable
        ``grad(x, p, out)``: out (d,) = ∇f(x).
    noise_sqrt : callable
        ``noise_sqrt(x, p, out)``: out (d, d) = S(x) with S Sᵀ = Σ(x).
    noise_diag : callable, optional
        ``noise_diag(x, p, out)``: out (d,) = diag Σ(x); default: the squared
        row norms of ``noise_sqrt``.
    stochastic_grad : callable, optional
        ``stochastic_grad(x, p, sigma, state, out)``: one oracle call drawing
        from the :mod:`solvers.rng` stream ``state``. Default: g = ∇f + σ S ξ
        with ξ of the family ``noise``.
    noise : {"gaussian", "rademacher", "skewed", "student_t", "stable"} or "custom"
        Family of ξ for the default oracle (:mod:`sde_engine.problems.base`);
        ``"custom"`` (required with your own ``stochastic_grad``) labels a
        user oracle.
    noise_scale : float
        σ > 0.
    diagonal_noise : bool
        Declare that ``noise_sqrt`` is diagonal for every θ (lets the SGD SDE
        use diagonal noise and Milstein); checked at θ = 0.
    df, alpha : float, optional
        ν of ``noise="student_t"``, α of ``noise="stable"`` (each required there).

    Returns
    -------
    Problem
    """
    dim = check.positive_int(dim, "dim")
    sigma = check.positive_float(noise_scale, "noise_scale")
    shape = None
    if stochastic_grad is None:
        family, shape = noise_family(noise, df=df, alpha=alpha)
    else:
        if noise != "custom":
            raise ValueError(f"`noise` must be 'custom' with your own `stochastic_grad`, "
                             f"got {noise!r} (the families {NOISE_FAMILIES} use the default "
                             f"oracle)")
        if df is not None or alpha is not None:
            raise ValueError(f"`df`/`alpha` ({df!r}, {alpha!r}) shape the built-in noise "
                             f"families; your own `stochastic_grad` draws its own noise")
        family = -1
    user = np.asarray(params if params is not None else [], dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(user)):
        raise ValueError(f"`params` must be finite, got {user}")
    for fn, label in ((loss, "loss"), (grad, "grad"), (noise_sqrt, "noise_sqrt")):
        if not callable(fn):
            raise ValueError(f"`{label}` must be a function, got {fn!r}")
    if not isinstance(diagonal_noise, bool):
        raise ValueError(f"`diagonal_noise` must be True or False, got {diagonal_noise!r}")
    s0 = _probe(dim, user, loss, grad, noise_sqrt, noise_diag)
    if diagonal_noise and np.any(s0 - np.diag(np.diag(s0))):
        raise ValueError(f"`diagonal_noise=True` but `noise_sqrt` at θ = 0 is not diagonal: {s0}")
    kernels = _wrap(loss, grad, noise_sqrt, noise_diag, stochastic_grad)
    return Problem(name=name, dim=dim,
                   params=np.concatenate([[sigma, family, shape or 0.0], user]),
                   noise=noise, noise_shape=shape, diagonal_noise=diagonal_noise, **kernels)


def _probe(dim, user, loss, grad, noise_sqrt, noise_diag):
    """Call the user's Python functions once at θ = 0 on outputs of the declared shapes;
    returns S(0).

    Compiled code does not check bounds, so shape errors are caught here, in
    plain Python, before anything is compiled.
    """
    x = np.zeros(dim)
    outputs = [("grad", grad, np.full(dim, np.nan)),
               ("noise_sqrt", noise_sqrt, np.full((dim, dim), np.nan))]
    if noise_diag is not None:
        outputs.append(("noise_diag", noise_diag, np.full(dim, np.nan)))
    for label, fn, out in outputs:
        try:
            getattr(fn, "py_func", fn)(x, user, out)
        except Exception as exc:
            raise ValueError(f"`{label}` failed at θ = 0 writing an output of shape {out.shape} "
                             f"(dim = {dim}): {type(exc).__name__}: {exc}") from exc
        if not np.all(np.isfinite(out)):
            raise ValueError(f"`{label}` left entries of its output (shape {out.shape}) unset or "
                             f"non-finite at θ = 0: {out}")
    try:
        value = float(getattr(loss, "py_func", loss)(x, user))
    except Exception as exc:
        raise ValueError(f"`loss` failed at θ = 0 (dim = {dim}): {type(exc).__name__}: "
                         f"{exc}") from exc
    if not np.isfinite(value):
        raise ValueError(f"`loss` must be finite at θ = 0, got {value}")
    return outputs[1][2]


# Numba types of the arguments the kernels pass: x, p, then the rest.
_ARGTYPES = {"loss": (), "grad": (float64_1d,), "noise_sqrt": (float64_2d,),
             "noise_diag": (float64_1d,),
             "stochastic_grad": (types.float64, types.uint64[::1], float64_1d)}


def _compiled(fn, label):
    """The user's function jitted and type-checked now (milliseconds), so that what
    Numba cannot compile is reported here, by name, rather than from inside some
    later compiled loop."""
    dispatcher = jit_user_function(fn, label)[1]
    compile_user_function(label, dispatcher, (float64_1d, float64_1d) + _ARGTYPES[label])
    return dispatcher


@functools.lru_cache(maxsize=None)
def _wrap(loss, grad, noise_sqrt, noise_diag, stochastic_grad):
    """Kernels of the protocol around user functions; compiled once per function set."""
    user_loss = _compiled(loss, "loss")
    user_grad = _compiled(grad, "grad")
    user_sqrt = _compiled(noise_sqrt, "noise_sqrt")

    @njit
    def loss_k(x, params):
        return user_loss(x, params[_HEAD:])

    @njit(inline="always")
    def grad_k(x, params, out):
        user_grad(x, params[_HEAD:], out)

    @njit(inline="always")
    def sqrt_k(x, params, out):
        user_sqrt(x, params[_HEAD:], out)

    if noise_diag is None:
        @njit(inline="always")
        def diag_k(x, params, out):
            d = x.shape[0]
            s = np.empty((d, d))
            user_sqrt(x, params[_HEAD:], s)
            for i in range(d):
                acc = 0.0
                for j in range(d):
                    acc += s[i, j] * s[i, j]
                out[i] = acc
    else:
        user_diag = _compiled(noise_diag, "noise_diag")

        @njit(inline="always")
        def diag_k(x, params, out):
            user_diag(x, params[_HEAD:], out)

    if stochastic_grad is None:
        @njit(inline="always")
        def oracle_k(x, params, state, out):
            d = x.shape[0]
            s = np.empty((d, d))
            user_grad(x, params[_HEAD:], out)
            user_sqrt(x, params[_HEAD:], s)
            family = int(params[1])
            for j in range(d):
                xi = params[0] * draw_standardized(family, params[2], state)
                for i in range(d):
                    out[i] += s[i, j] * xi
    else:
        user_oracle = _compiled(stochastic_grad, "stochastic_grad")

        @njit(inline="always")
        def oracle_k(x, params, state, out):
            user_oracle(x, params[_HEAD:], params[0], state, out)

    return dict(loss=loss_k, grad=grad_k, stochastic_grad=oracle_k, noise_sqrt=sqrt_k,
                noise_diag=diag_k)
