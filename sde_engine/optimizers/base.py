"""What a discrete optimizer is: a pure (init, update) pair on a flat state array.

Every optimizer of SPEC §2 keeps its state in one float64 vector made of
blocks of length d (the dimension of θ), always θ first::

    SGD      state = (θ,)          shape (d,)
    RMSprop  state = (θ, v)        shape (2d,)
    Adam     state = (θ, m, v)     shape (3d,)

``update(k, g, state, hyper, out)`` is a Numba kernel (``inline="always"``):
given the step number k = 1, 2, ... (bias corrections use it), the gradient
sample g (d,), the state after step k − 1 and the hyperparameter vector
``hyper``, it writes the state after step k into ``out`` and leaves ``state``
untouched (pure). ``init`` (Python, once per run) builds the state at step 0.

Adding an optimizer: write its ``update`` kernel and its constructor (which
validates hyperparameters named as in ``torch.optim``), add one
:class:`OptimizerSpec` to :data:`sde_engine.optimizers.registry.OPTIMIZERS`,
its SDE to :mod:`sde_engine.models`, and one row to the table of
``tests/test_optimizers.py``.
"""
import math
from dataclasses import dataclass
from typing import Callable, Tuple

import numpy as np
from numba import njit

from .. import validation as check


@dataclass(frozen=True)
class OptimizerSpec:
    """The registry entry of one optimizer family.

    Attributes
    ----------
    name : str
        Registry key (``"sgd"``, ``"rmsprop"``, ``"adam"``).
    blocks : tuple of str
        State layout: names of the length-d blocks, θ first.
    update : numba dispatcher
        ``update(k, g, state, hyper, out)``; see the module docstring.
    hyper_names : tuple of str
        What each entry of the ``hyper`` vector holds, in order.
    time_exponent : float
        SDE time per step is lr ** time_exponent (SPEC §3: 1 for SGD, t = kη;
        2 for RMSprop and Adam, t = kη²; 1/2 for SGD with momentum, t = k√η).
    description : str
        The update equations in one line.
    bias_betas : tuple of str
        Names (in ``hyper_names``) of the β whose bias-correction factors
        1 − β^k the update uses when ``hyper`` has ``bias_correction`` set; the
        runner precomputes them once per run (:meth:`Optimizer.hyper_for_run`).
    """

    name: str
    blocks: Tuple[str, ...]
    update: Callable
    hyper_names: Tuple[str, ...]
    time_exponent: float
    description: str = ""
    bias_betas: Tuple[str, ...] = ()


class Optimizer:
    """An optimizer family with its hyperparameters fixed.

    Build one with :func:`~sde_engine.optimizers.sgd`,
    :func:`~sde_engine.optimizers.rmsprop`, :func:`~sde_engine.optimizers.adam`
    or :func:`~sde_engine.optimizers.make_optimizer`; they validate the
    hyperparameters.

    Attributes
    ----------
    spec : OptimizerSpec
    hyperparameters : dict
        As passed, in ``torch.optim`` names (``lr``, ``beta``/``betas``,
        ``eps``, ``bias_correction``).
    hyper : ndarray, shape (n_hyper,)
        The float64 vector the kernel reads (layout ``spec.hyper_names``).
    constructor : callable or None
        The validating constructor that built it (``sgd``, ``rmsprop``,
        ``adam``), called again by :meth:`with_hyperparameters`; None for an
        optimizer built by hand.
    """

    def __init__(self, spec, hyperparameters, hyper, constructor=None):
        self.spec = spec
        self.constructor = constructor
        self.hyperparameters = dict(hyperparameters)
        self.hyper = np.ascontiguousarray(hyper, dtype=np.float64)
        self.hyper.setflags(write=False)

    @property
    def name(self):
        return self.spec.name

    @property
    def blocks(self):
        """State layout, e.g. ``("theta", "m", "v")``."""
        return self.spec.blocks

    @property
    def update(self):
        """The jitted ``update(k, g, state, hyper, out)`` kernel."""
        return self.spec.update

    @property
    def lr(self):
        return float(self.hyperparameters["lr"])

    @property
    def time_per_step(self):
        """SDE time of one step: η for SGD, η² for RMSprop and Adam (SPEC §3), √η with momentum."""
        return self.lr ** self.spec.time_exponent

    def state_dim(self, dim):
        """Length of the state vector for θ of dimension ``dim``."""
        return len(self.blocks) * dim

    def block_slice(self, name, dim):
        """Slice of block ``name`` (``"theta"``, ``"m"``, ``"v"``) in the state vector."""
        if name not in self.blocks:
            raise ValueError(f"{self.name} has no {name!r} in its state; its state is "
                             f"{self.blocks}")
        i = self.blocks.index(name)
        return slice(i * dim, (i + 1) * dim)

    def init(self, theta0, m0=None, v0=None):
        """The state at step 0 (the ``init`` of the pair).

        Parameters
        ----------
        theta0 : array_like, shape (d,) or (n, d)
            Initial parameters, shared or one row per run.
        m0, v0 : float or array_like of shape (d,), optional
            Initial first and second moments (default 0, as ``torch.optim``).
            ``v0`` must be ≥ 0. Only for optimizers that have that block.

        Returns
        -------
        ndarray, shape (state_dim,) or (n, state_dim)
        """
        theta0 = np.asarray(theta0, dtype=np.float64)
        if theta0.ndim not in (1, 2) or theta0.shape[-1] == 0:
            raise ValueError(f"`theta0` must have shape (d,) or (n_runs, d), got {theta0.shape}")
        if not np.all(np.isfinite(theta0)):
            raise ValueError(f"`theta0` must be finite, got {theta0}")
        d = theta0.shape[-1]
        state = np.zeros(theta0.shape[:-1] + (self.state_dim(d),))
        state[..., :d] = theta0
        for name, value in (("m", m0), ("v", v0)):
            if value is None:
                continue
            block = self.block_slice(name, d) if name in self.blocks else None
            if block is None:
                raise ValueError(f"`{name}0` given, but {self.name} has no {name!r} in its state "
                                 f"{self.blocks}")
            arr = np.asarray(value, dtype=np.float64)
            if arr.shape not in ((), (d,)):
                raise ValueError(f"`{name}0` must be a number or have shape ({d},), got "
                                 f"shape {arr.shape}")
            if not np.all(np.isfinite(arr)) or (name == "v" and np.any(arr < 0)):
                raise ValueError(f"`{name}0` must be finite{' and ≥ 0' if name == 'v' else ''}, "
                                 f"got {value!r}")
            state[..., block] = arr
        return state

    def step(self, k, g, state):
        """One update in Python (tests, single runs): the state after step ``k``.

        Parameters
        ----------
        k : int
            Step number, ≥ 1.
        g : array_like, shape (d,)
            Gradient sample.
        state : array_like, shape (state_dim,)

        Returns
        -------
        ndarray, shape (state_dim,)
        """
        k = check.positive_int(k, "k")
        g = np.ascontiguousarray(g, dtype=np.float64)
        state = np.ascontiguousarray(state, dtype=np.float64)
        if g.ndim != 1 or state.shape != (self.state_dim(g.shape[0]),):
            raise ValueError(f"`state` must have shape ({self.state_dim(len(g))},) for a "
                             f"gradient of shape {g.shape} ({self.blocks}), got {state.shape}")
        out = np.empty_like(state)
        self.update(k, g, state, self.hyper, out)
        return out

    def with_hyperparameters(self, **changes):
        """The same optimizer with some hyperparameters replaced (validated again by
        its constructor)."""
        if self.constructor is None:
            raise ValueError(f"{self.name} was built without a constructor, so its "
                             "hyperparameters cannot be replaced; build a new one")
        return self.constructor(**{**self.hyperparameters, **changes})

    def hyper_for_run(self, n_steps):
        """``hyper`` followed by the table of 1 − β^k for k = 1..n_steps.

        The factors depend on k only, so a run of many paths computes them once
        instead of once per path and step (two ``pow`` calls per Adam step cost
        a quarter of its time). They come from the same ``math.pow`` as the
        update's own fallback, so results are bit-identical either way. Without
        bias correction (or bias-correction betas) ``hyper`` is returned as is.
        """
        names = self.spec.hyper_names
        if not self.spec.bias_betas or self.hyper[names.index("bias_correction")] == 0.0:
            return self.hyper
        betas = np.array([self.hyper[names.index(b)] for b in self.spec.bias_betas])
        return np.concatenate([self.hyper, bias_correction_table(betas, n_steps)])

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        return f"{self.name}({args})"

    def __eq__(self, other):
        return (isinstance(other, Optimizer) and other.spec is self.spec
                and np.array_equal(other.hyper, self.hyper))

    def __hash__(self):
        return hash((self.name, self.hyper.tobytes()))


@njit(cache=True)
def bias_correction_table(betas, n_steps):
    """1 − β_j^k for k = 1..n_steps, row-major over (k, j); shape (n_steps·len(betas),)."""
    n = betas.shape[0]
    out = np.empty(n_steps * n)
    for k in range(1, n_steps + 1):
        for j in range(n):
            out[(k - 1) * n + j] = 1.0 - math.pow(betas[j], k)
    return out

