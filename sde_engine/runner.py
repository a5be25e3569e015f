"""``run_optimizer``: many independent runs of a discrete optimizer on a problem.

Runs go through the same chunked parallel loop as SDE paths
(:mod:`solvers.driver`), so they share its guarantees: run ``i`` draws only
from the random stream ``(seed, run_offset + i)``, whatever the thread count or
``n_runs``; statistics are streamed per chunk and merged in a fixed order;
non-finite runs are stopped and reported as :func:`sde_engine.simulate` does.

One step k (k = 1, ..., n_steps) of one run is::

    g_k = problem.stochastic_grad(θ_{k−1})     # ONE oracle call, from run i's stream
    state_k = optimizer.update(k, g_k, state_{k−1})

The state is the optimizer's flat vector (θ, m, v) (see
:mod:`sde_engine.optimizers.base`). Schemes that mix several oracle calls
(SVAG, :mod:`sde_engine.optimizers.svag`) wrap the problem, so its single
``stochastic_grad`` call draws them one after the other from the same stream.
"""
import numba
import numpy as np
from numba import njit, types

from solvers.driver import PathKernel, make_driver, run_paths

from . import validation as check
from .optimizers.base import Optimizer
from .optimizers.observables import empty_table, make_table_observer, observable_table
from .problems.base import Problem
from .simulate import (DIVERGENCE_POLICIES, check_n_threads, check_saved_size,
                       enforce_divergence_policy, numba_threads, probe_observables,
                       streamed_moments, streamed_report)
from .solution import Solution
from .user_functions import as_dispatcher, float64_1d, user_code_errors


_COMPILED = {}


def run_optimizer(problem, optimizer, theta0, n_steps, n_runs, *, seed=0, m0=None, v0=None,
                  record_steps=None, observables=None, n_observables=None, save_runs=None,
                  on_divergence="raise", run_offset=0, n_threads=None):
    """Run ``n_runs`` independent copies of ``optimizer`` on ``problem`` for ``n_steps`` steps.

    Parameters
    ----------
    problem : Problem
        Loss and gradient oracle (:mod:`sde_engine.problems`); its noise scale
        σ (or batch size) is part of the problem.
    optimizer : Optimizer
        From :func:`~sde_engine.optimizers.sgd`, ``rmsprop``, ``adam`` or
        ``make_optimizer``.
    theta0 : array_like, shape (d,) or (n_runs, d)
        Initial parameters, shared or one row per run.
    n_steps : int
        Number of optimizer steps.
    n_runs : int
        Number of independent runs.
    seed : int
        Run ``i`` uses the random stream ``(seed, run_offset + i)``.
    m0, v0 : float or array_like of shape (d,), optional
        Initial moments (default 0); see :meth:`Optimizer.init`.
    record_steps : array_like of int, optional
        Sorted step indices in [0, n_steps] at which to record; default
        ``(0, n_steps)``.
    observables : str, sequence of str, or callable, optional
        Test functions whose mean and variance over runs are streamed
        (no runs stored). Names: ``"theta"``, ``"theta_sq"``, ``"norm_sq"``,
        ``"loss"``, ``"m"``, ``"v"`` (see
        :mod:`sde_engine.optimizers.observables`; ``Solution.info["labels"]``
        names each column). A callable is
        ``observables(k, x, params, out)`` with ``k`` the step, ``x`` the state
        vector (θ, m, v), ``params`` the *problem's* parameters (so
        ``problem.loss(x[:d], params)`` is available to a jitted function),
        writing ``n_observables`` values.
    n_observables : int
        Length of ``out`` (required with a callable, refused with names).
    save_runs : bool, optional
        Keep every run's state at the record steps (``Solution.x``). Default:
        True unless observables are given.
    on_divergence : {"raise", "warn", "drop"}
        As in :func:`sde_engine.simulate`: raise :class:`DivergenceError`,
        warn and keep NaN states, or drop diverged runs from ``x``. A run
        whose state (or one of its observables) became non-finite at step k
        enters ``mean``/``var`` at the record steps before k only
        (``Solution.counts``); ``Solution.diverged`` lists them (``steps``
        are step indices, ``times`` SDE times). A record step with no finite
        run has NaN statistics and a RuntimeWarning.
    run_offset : int
        Stream index of run 0 (for splitting a study in pieces).
    n_threads : int, optional
        Numba threads for this call; results do not depend on it.

    Returns
    -------
    Solution
        ``t`` (n_save,): SDE times k · η^p of the record steps (p = 1 for SGD,
        2 for RMSprop/Adam, SPEC §3); ``info["steps"]`` (n_save,): the step
        indices k themselves. ``x`` (n_save, n_runs, state_dim) or None;
        ``mean``/``var`` (n_save, n_observables) or None. ``info`` also holds
        ``labels`` (observable columns), ``state_layout`` (e.g.
        ``("theta", "m", "v")``), ``time_per_step``, the optimizer and its
        hyperparameters.
    """
    _check_problem_and_optimizer(problem, optimizer)
    n_steps = check.positive_int(n_steps, "n_steps")
    n_runs = check.positive_int(n_runs, "n_runs")
    seed = check.nonnegative_int(seed, "seed")
    run_offset = check.nonnegative_int(run_offset, "run_offset", upper=2**62)
    d = problem.dim
    state0 = np.ascontiguousarray(_initial_states(problem, optimizer, theta0, m0, v0, n_runs))
    steps = _record_steps(record_steps, n_steps)
    check.choice(on_divergence, "on_divergence", DIVERGENCE_POLICIES)
    n_threads = check_n_threads(n_threads)

    table, user_obs, labels = empty_table(), None, []
    if callable(observables):
        n_user = check.positive_int(n_observables, "n_observables")
        user_obs = observables
        labels = [f"observable[{i}]" for i in range(n_user)]
        probe_observables(observables, n_user, 0, state0[0], problem.params)
    elif observables is not None:
        if n_observables is not None:
            raise ValueError(f"`n_observables` ({n_observables!r}) is only for a callable "
                             f"`observables`; named observables know their length")
        table, labels = observable_table(observables, optimizer, d)
    elif n_observables not in (None, 0):
        raise ValueError(f"`n_observables` given ({n_observables!r}) without `observables`")
    n_obs = len(labels)
    if save_runs is None:
        save_runs = observables is None
    state_dim = state0.shape[1]
    if save_runs:
        check_saved_size("save_runs", len(steps), n_runs, state_dim)

    run = _compiled_runner(problem, optimizer.update, user_obs)
    setup = (optimizer.hyper_for_run(n_steps), d, table)
    suspects = [] if user_obs is None else [("observables", as_dispatcher(user_obs), (
        types.int64, float64_1d, float64_1d, float64_1d))]
    with numba_threads(n_threads), user_code_errors(suspects):
        out = run_paths(run, state0, n_steps, steps, problem.params, setup, seed, run_offset,
                        n_runs, n_obs, save_x=bool(save_runs))
    tau = optimizer.time_per_step
    report = streamed_report(out["diverged"], run_offset, lambda k: k * tau, labels)
    kept, (x_out,) = enforce_divergence_policy(report, run_offset, on_divergence, (out["x"],))
    mean, var = streamed_moments(out, steps * tau, stacklevel=2)
    return Solution(
        t=steps * tau, x=x_out, mean=mean, var=var, n_used=out["n_used"], diverged=report,
        kept_paths=kept, counts=out["counts"],
        info=dict(steps=steps, time_per_step=tau, labels=labels, state_layout=optimizer.blocks,
                  optimizer=optimizer.name, hyperparameters=dict(optimizer.hyperparameters),
                  problem=problem.name, noise_scale=problem.noise_scale, dim=d,
                  n_steps=n_steps, n_runs=n_runs, seed=seed, run_offset=run_offset))


def _check_problem_and_optimizer(problem, optimizer):
    if not isinstance(problem, Problem):
        raise ValueError(f"`problem` must be a sde_engine.problems.Problem, got {problem!r}")
    if not isinstance(optimizer, Optimizer):
        raise ValueError(f"`optimizer` must be an Optimizer (e.g. sde_engine.optimizers.adam("
                         f"lr=...) or make_optimizer(name, ...)), got {optimizer!r}")


def _initial_states(problem, optimizer, theta0, m0, v0, n_runs):
    """States at step 0 from ``theta0`` (d,) or (n_runs, d); shape (1 or n_runs, state_dim)."""
    d = problem.dim
    theta0 = check.numeric_array(theta0, "theta0")
    if theta0.shape not in ((d,), (n_runs, d)):
        raise ValueError(f"`theta0` must have shape ({d},) or (n_runs, {d}) = ({n_runs}, {d}) "
                         f"for {problem.name}, got shape {theta0.shape}")
    state0 = optimizer.init(theta0, m0=m0, v0=v0)
    return state0.reshape(-1, state0.shape[-1])


def _record_steps(record_steps, n_steps):
    if record_steps is None:
        return np.array([0, n_steps], dtype=np.int64)
    arr = np.atleast_1d(np.asarray(record_steps))
    if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iuf":
        raise ValueError(f"`record_steps` must be a non-empty 1-D array of step indices, "
                         f"got {record_steps!r}")
    if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
        raise ValueError(f"`record_steps` must be whole step indices, got {record_steps!r}")
    steps = arr.astype(np.int64)
    if np.any(steps < 0) or np.any(steps > n_steps) or np.any(np.diff(steps) < 0):
        raise ValueError(f"`record_steps` must be non-decreasing steps in [0, n_steps={n_steps}], "
                         f"got {record_steps!r}")
    return np.ascontiguousarray(steps)


def _compiled_runner(problem, update, user_obs):
    key = (problem.kernels, update, user_obs)
    if key not in _COMPILED:
        if user_obs is not None and not isinstance(user_obs, numba.core.registry.CPUDispatcher):
            user_obs = njit(user_obs)
        kernel = _make_kernel(problem.stochastic_grad, update, problem.loss, user_obs)
        _COMPILED[key] = make_driver(kernel)
    return _COMPILED[key]


@njit
def _new_work(n_state, setup):
    return np.empty(setup[1])


@njit(inline="always")
def _nothing(work, setup):
    pass


@njit(inline="always")
def _record_nothing(work, setup, out):
    pass


@njit(inline="always")
def _one_block(setup):
    return 1 << 62        # the gradient noise is drawn inside each step


@njit(inline="always")
def _draw_nothing(n_steps, rng, work, setup):
    pass


def _make_kernel(stochastic_grad, update, loss, user_obs):
    """The :class:`~solvers.driver.PathKernel` of one optimizer run.

    ``setup = (hyper, d, table)``; ``work`` is the gradient sample g (d,).
    """

    @njit(inline="always")
    def advance(k, i, x, rng, params, work, setup, x_new):
        stochastic_grad(x[:setup[1]], params, rng, work)
        update(k, work, x, setup[0], x_new)

    if user_obs is None:
        observe_table = make_table_observer(loss)

        @njit(inline="always")
        def observe(k, x, params, work, setup, out):
            observe_table(setup[2], x, params, out)
    else:
        @njit(inline="always")
        def observe(k, x, params, work, setup, out):
            user_obs(k, x, params, out)

    return PathKernel(_new_work, _nothing, _one_block, _draw_nothing, advance, observe,
                      _record_nothing)
