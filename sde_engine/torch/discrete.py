"""Discrete SGD (with or without momentum), RMSprop and Adam batched in torch: runs as the batch dimension.

The torch counterpart of :func:`sde_engine.runner.run_optimizer`, for a GPU
user who wants a whole weak-order study on the device. Each step k = 1..n of
every run is (SPEC §2)::

    g_k = ∇f(θ_{k−1}) + σ S ξ_k                 # quadratic problem, ξ of its noise family
    state_k = update(k, g_k, state_{k−1})        # same equations as the Numba kernels

:func:`torch_update` evaluates exactly the floating-point operations of the
Numba ``update`` kernels (:mod:`sde_engine.optimizers`) in the same order, with the
same β^k (Numba's integer power) and a correctly rounded square root, so on
the same gradient and state (float64) one step gives bit-identical results. The random numbers come from a ``torch.Generator`` per chunk of runs
(:mod:`solvers.torchsde_backend.batched`), so runs are not the Numba runs:
statistics agree, paths do not.

Problems: quadratic problems (:func:`sde_engine.problems.quadratic`, families
``gaussian``, ``rademacher``, ``skewed``) and SVAG-wrapped quadratics
(:func:`sde_engine.optimizers.svag.svag_problem`: g = r1·g1 + r2·g2 from two
independent oracle calls, the second skipped when r2 = 0). Other problems are
refused.
"""
import math

import numpy as np
from numba import njit

from .. import validation as check
from ..optimizers.observables import observable_table
from ..runner import _check_problem_and_optimizer, _initial_states, _record_steps
from ..simulate import DIVERGENCE_POLICIES, apply_divergence_policy, check_saved_size
from ..solution import Solution
from .models import QuadraticTorch

NOISE_FAMILIES = ("gaussian", "rademacher", "skewed")


@njit(cache=True)
def _power(beta, k):
    """β^k exactly as the Numba kernels compute it (Numba's integer-exponent pow
    differs from libm's ``math.pow`` in the last bit for some k)."""
    return math.pow(beta, k)


def _sqrt(x):
    """Correctly rounded √x. torch's CPU sqrt goes through MKL's vector math, which is
    accurate to about 1 ulp but not always correctly rounded; NumPy's is (and so is
    CUDA's), which the bit-for-bit agreement with the Numba kernels needs."""
    import torch
    if x.device.type == "cpu" and x.dtype == torch.float64:
        return torch.from_numpy(np.sqrt(x.contiguous().numpy()))
    return torch.sqrt(x)


def _sgd(k, g, x, hyper):
    return x - hyper[0] * g


def _signsgd(k, g, x, hyper):
    import torch
    return x - hyper[0] * torch.sign(g)


def _signum(k, g, x, hyper):
    import torch
    d = g.shape[1]
    m = hyper[1] * x[:, d:] + (1.0 - hyper[1]) * g
    return torch.cat((x[:, :d] - hyper[0] * torch.sign(m), m), dim=1)


def _sgd_momentum(k, g, x, hyper):
    import torch
    d = g.shape[1]
    b = hyper[1] * x[:, d:] + g
    return torch.cat((x[:, :d] - hyper[0] * b, b), dim=1)


def _rmsprop(k, g, x, hyper):
    import torch
    lr, beta, eps = hyper[0], hyper[1], hyper[2]
    c2 = 1.0 - _power(beta, k) if hyper[3] != 0.0 else 1.0
    d = g.shape[1]
    v = beta * x[:, d:] + (1.0 - beta) * g * g
    theta = x[:, :d] - lr * g / (_sqrt(v / c2) + eps)
    return torch.cat((theta, v), dim=1)


def _adam(k, g, x, hyper):
    import torch
    lr, beta1, beta2, eps = hyper[0], hyper[1], hyper[2], hyper[3]
    if hyper[4] != 0.0:
        c1 = 1.0 - _power(beta1, k)
        c2 = 1.0 - _power(beta2, k)
    else:
        c1 = 1.0
        c2 = 1.0
    d = g.shape[1]
    m = beta1 * x[:, d:2 * d] + (1.0 - beta1) * g
    v = beta2 * x[:, 2 * d:] + (1.0 - beta2) * g * g
    theta = x[:, :d] - lr * (m / c1) / (_sqrt(v / c2) + eps)
    return torch.cat((theta, m, v), dim=1)


def _decoupled(base):
    """The torch form of ``base`` followed by −ηλθ (hyper = [λ, *base hyper])."""
    def update(k, g, x, hyper):
        out = base(k, g, x, hyper[1:])
        d = g.shape[1]
        out[:, :d] -= (hyper[1] * hyper[0]) * x[:, :d]
        return out
    return update


UPDATES = {"sgd": _sgd, "sgd_momentum": _sgd_momentum, "signsgd": _signsgd, "signum": _signum,
           "rmsprop": _rmsprop, "adam": _adam, "rmspropw": _decoupled(_rmsprop),
           "adamw": _decoupled(_adam)}


def torch_update(optimizer, k, g, state):
    """One step of ``optimizer`` on a batch: the torch form of its Numba ``update``.

    Parameters
    ----------
    optimizer : Optimizer
    k : int
        Step number, ≥ 1 (bias corrections use it).
    g : tensor, shape (n, d)
        Gradient samples, one row per run.
    state : tensor, shape (n, state_dim)
        States after step k − 1, layout ``optimizer.blocks``.

    Returns
    -------
    tensor, shape (n, state_dim)
        States after step k.
    """
    try:
        update = UPDATES[optimizer.name]
    except KeyError:
        raise ValueError(f"no torch update for optimizer {optimizer.name!r}; available: "
                         f"{sorted(UPDATES)}") from None
    return update(k, g, state, [float(h) for h in optimizer.hyper])


class QuadraticOracleTorch:
    """g = ∇f(θ) + σ S ξ on a batch of θ (n, d), ξ drawn from a torch generator.

    ``r1, r2``: SVAG mixing weights (g = r1·g1 + r2·g2); (1, 0) for the plain oracle.
    """

    def __init__(self, problem, device, dtype):
        r1, r2 = 1.0, 0.0
        if hasattr(problem, "inner") and hasattr(problem, "r1"):
            r1, r2, problem = problem.r1, problem.r2, problem.inner
        if problem.noise not in NOISE_FAMILIES:
            raise ValueError(f"the torch optimizers sample noise families {NOISE_FAMILIES}; "
                             f"{problem.name!r} has noise {problem.noise!r}")
        self.q = QuadraticTorch(problem, device, dtype)
        self.family, self.sigma, self.r1, self.r2 = problem.noise, problem.noise_scale, r1, r2
        self.dtype, self.device = self.q.H.dtype, self.q.H.device

    def _xi(self, shape, gen):
        import torch
        if self.family == "gaussian":
            return torch.randn(shape, generator=gen, dtype=self.dtype, device=self.device)
        if self.family == "rademacher":
            bits = torch.randint(0, 2, shape, generator=gen, device=self.device)
            return (2 * bits - 1).to(self.dtype)
        e = torch.empty(shape, dtype=self.dtype, device=self.device).exponential_(1.0,
                                                                                  generator=gen)
        return e - 1.0

    def _one(self, theta, gen):
        return self.q.grad(theta) + self.q.noise(self.sigma * self._xi(theta.shape, gen))

    def __call__(self, theta, gen):
        g = self._one(theta, gen)
        if self.r2 != 0.0:
            g = self.r1 * g + self.r2 * self._one(theta, gen)
        return g


def _named_observables(table, oracle):
    """phi(k, x) evaluating an observable table of :mod:`sde_engine.optimizers.observables`."""
    import torch

    def phi(k, x):
        cols = []
        for kind, off, n in table:
            block = x[:, off:off + n]
            if kind == 0:
                cols.append(block)
            elif kind == 1:
                cols.append(block * block)
            elif kind == 2:
                cols.append((block * block).sum(dim=1, keepdim=True))
            else:
                cols.append(oracle.q.loss(block)[:, None])
        return torch.cat(cols, dim=1)
    return phi


def run_optimizer_torch(problem, optimizer, theta0, n_steps, n_runs, *, seed=0, m0=None,
                        v0=None, record_steps=None, observables=None, save_runs=None,
                        on_divergence="raise", run_offset=0, device="cpu", dtype=None,
                        chunk_runs=None):
    """Run ``n_runs`` copies of ``optimizer`` on ``problem`` in torch, batched over runs.

    Same arguments and :class:`Solution` as :func:`sde_engine.runner.run_optimizer`
    except: ``observables`` is a name or list of names of
    :data:`sde_engine.optimizers.observables.OBSERVABLES` or a torch function
    ``phi(k, x) -> (n_runs, n_observables)`` (k the step, x the states
    (n_runs, state_dim)); no ``n_threads`` or ``oracle`` (SVAG: pass an
    SVAG-wrapped problem).

    Extra parameters
    ----------------
    device : str or torch.device
    dtype : {"float64", "float32"} or a NumPy or torch dtype, optional
        Precision on the device (default float64).
    run_offset : int
        Global index of run 0: the chunk starting at global run r draws from
        the generator seeded from (seed, r), so pieces of a study with
        different offsets are independent and each is reproducible.
    chunk_runs : int, optional
        Runs per batch (default 2**20).

    Returns
    -------
    Solution
        ``t`` (n_save,): SDE times k·η^p of the record steps; ``x``
        (n_save, n_runs, state_dim) or None; ``mean``/``var`` or None;
        ``info["steps"]``, ``info["labels"]``, ``info["backend"] == "torch"``.
    """
    from solvers.torchsde_backend import require_torch
    require_torch()
    import torch

    from solvers.torchsde_backend.batched import resolve_device, resolve_dtype, run_batched

    _check_problem_and_optimizer(problem, optimizer)
    if optimizer.name not in UPDATES:
        raise ValueError(f"no torch update for optimizer {optimizer.name!r}; available: "
                         f"{sorted(UPDATES)}")
    n_steps = check.positive_int(n_steps, "n_steps")
    n_runs = check.positive_int(n_runs, "n_runs")
    seed = check.nonnegative_int(seed, "seed")
    run_offset = check.nonnegative_int(run_offset, "run_offset", upper=2**62)
    check.choice(on_divergence, "on_divergence", DIVERGENCE_POLICIES)
    device, dtype = resolve_device(device), resolve_dtype(check.float_dtype(dtype))
    d = problem.dim
    state0 = _initial_states(problem, optimizer, theta0, m0, v0, n_runs)
    steps = _record_steps(record_steps, n_steps)
    oracle = QuadraticOracleTorch(problem, device, dtype)
    x0 = torch.as_tensor(state0, dtype=dtype, device=device)
    phi, labels = None, []
    if callable(observables):
        with torch.no_grad():
            probe = observables(0, x0[:1])
        if not torch.is_tensor(probe) or probe.dim() != 2 or probe.shape[0] != 1:
            raise ValueError(f"`observables` must return a tensor (n_runs, n_observables), got "
                             f"{getattr(probe, 'shape', type(probe).__name__)}")
        phi, labels = observables, [f"observable[{i}]" for i in range(probe.shape[1])]
    elif observables is not None:
        table, labels = observable_table(observables, optimizer, d)
        phi = _named_observables([tuple(int(v) for v in row) for row in table], oracle)
    if save_runs is None:
        save_runs = observables is None
    if save_runs:
        check_saved_size("save_runs", len(steps), n_runs, state0.shape[1])

    update, hyper = UPDATES[optimizer.name], [float(h) for h in optimizer.hyper]

    def make_advance(generator, batch):
        def advance(x, k_from, k_to):
            for k in range(k_from + 1, k_to + 1):
                x = update(k, oracle(x[:, :d], generator), x, hyper)
            return x
        return advance

    run = run_batched(x0, n_runs, n_steps=n_steps, save_steps=steps, seed=seed,
                      make_advance=make_advance, time_of_step=lambda k: k, observables=phi,
                      n_obs=len(labels), save_paths=bool(save_runs), chunk_paths=chunk_runs,
                      path_offset=run_offset)
    tau = optimizer.time_per_step
    report, kept, (x_out,) = apply_divergence_policy(
        run.diverged_step, run_offset, run.diverged_step * tau, on_divergence, (run.x,))
    mean = var = None
    if labels:
        mean, var = run.mean, run.m2 / max(run.count - 1, 1)
    return Solution(
        t=steps * tau, x=x_out, mean=mean, var=var, n_used=run.count, diverged=report,
        kept_paths=kept,
        info=dict(steps=steps, time_per_step=tau, labels=labels, state_layout=optimizer.blocks,
                  optimizer=optimizer.name, hyperparameters=dict(optimizer.hyperparameters),
                  problem=problem.name, noise_scale=problem.noise_scale, dim=d,
                  n_steps=n_steps, n_runs=n_runs, seed=seed, run_offset=run_offset,
                  backend="torch",
                  device=str(device), dtype=str(dtype).replace("torch.", ""),
                  chunk_runs=chunk_runs))
