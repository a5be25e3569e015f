"""Samples of the multilevel Monte Carlo levels: coupled path pairs in chunks.

Level ℓ of a multilevel estimator of E φ(X_T) (Giles 2008; Acta Numerica 2015)
runs a *fine* path with step h_ℓ = T / (M0 2^ℓ) and, for ℓ ≥ 1, a *coarse*
path with step 2 h_ℓ on the same Brownian path: coarse increment j is the sum
of fine increments 2j − 1 and 2j. A sample is the pair

    P^f_ℓ = φ(X^{h_ℓ}_T),   P^c_ℓ = φ(X^{2h_ℓ}_T)   (P^c_0 = 0),   Y_ℓ = P^f_ℓ − P^c_ℓ,

and E Y_ℓ telescopes: Σ_{ℓ ≤ L} E Y_ℓ = E P^f_L. One
:class:`~solvers.driver.PathKernel` on the engine's path loop
(:mod:`solvers.driver`) advances both: the fine path is the loop's state,
every fine step draws its increment once, and every second fine step also
advances the coarse path (kept in the kernel's work arrays).

* Streams: sample i of level ℓ is the stream ``(seed, stream_offset(ℓ) + i)``,
  whatever the chunking, thread count or number of samples. Its fine path is
  exactly ``simulate(dt=h_ℓ, path_offset=stream_offset(ℓ) + i)`` and its coarse
  path ``simulate(dt=2h_ℓ, brownian_dt=h_ℓ)`` on that stream (the same
  normals, summed in the same order).
* A *unit* of work is ``(level, coupled, offset, n)``: samples [offset,
  offset + n) of a level, reduced to :class:`~.statistics.Moments` of
  :data:`COLUMNS` (no paths kept). ``coupled=False`` runs the fine path alone
  (level 0, and plain Monte Carlo at a level's step).
* :class:`LevelSamples` grows the sample count of each level by handing the
  missing units to an executor (``executor(fn, job, units)``, as the order
  study: in process or :class:`~.distributed.DaskExecutor`), keeps every
  finished chunk in a :class:`~.checkpoints.PointStore`, and merges a level's
  chunks in offset order, so a rerun or a resumed run gives the same numbers.
"""
import hashlib
import inspect
import json
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numba
import numpy as np
from numba import njit

from solvers.driver import PathKernel, make_driver, run_paths
from solvers.rng import STREAMS_VERSION, fill_normal_block
from solvers.sde_kernel import BLOCK_NORMALS

from ..solution import DivergenceError, DivergenceReport
from .checkpoints import PointStore
from .statistics import Moments

#: Observables of a sample, in this order (Moments columns of a unit).
COLUMNS = ("Y", "Pf", "Pc", "Y3", "Y4")
#: Streams of level ℓ start at (ℓ + 1)·LEVEL_OFFSET: disjoint from the paths
#: [0, n) of a plain run and from the order study's references (2^40 + i).
LEVEL_OFFSET = 2**44
MAX_LEVEL = 2**62 // LEVEL_OFFSET - 2


def stream_offset(level):
    """Index of the stream of sample 0 of ``level``."""
    return (level + 1) * LEVEL_OFFSET


def sample_cost(steps0, level, coupled):
    """Steps per sample: M0 2^ℓ fine steps, plus M0 2^(ℓ−1) coarse ones when coupled."""
    fine = steps0 * 2**level
    return fine * 1.5 if coupled and level > 0 else float(fine)


# ---- the coupled path kernel ---------------------------------------------------------
def make_level_kernel(step, phi, diagonal):
    """Path kernel of a (fine, coarse) pair for one scheme ``step`` and test function.

    The driver's state ``x`` (d,) is the fine path; the coarse path lives in
    the kernel's work arrays. ``setup = (t0, dt, m, sqrt_dt, coupled, d,
    phi_dim, phi_params, x0)``: fine step dt, Brownian dimension m, state
    dimension d, ``coupled`` 1 or 0, ``phi(x[:phi_dim], phi_params)``
    evaluated on both paths at the end, and the start x0 (d,) of the coarse
    path. ``diagonal`` (a compile-time constant) gives the diffusion's shape,
    (d,) or (d, m). The normals are drawn unscaled and scaled per step, as
    :mod:`solvers.sde_kernel` does for refined steps, so that both paths agree
    bit for bit with ``simulate``. A non-finite coarse path makes P^c, hence
    the observables, non-finite: the driver stops and reports the sample.
    """

    @njit(inline="always")
    def steps_per_block(setup):
        return max(1, BLOCK_NORMALS // setup[2])

    @njit
    def new_work(d, setup):
        m = setup[2]
        block = steps_per_block(setup) * m
        f = np.empty(d)
        x_aux = np.empty(d)
        if diagonal:
            g = np.empty(d)
            g_aux = np.empty(d)
        else:
            g = np.empty((d, m))
            g_aux = np.empty((d, m))
        return (np.empty(m), np.zeros(m), (f, g, g_aux, x_aux), np.empty(block),
                np.empty(block, dtype=np.int64), np.empty(block, dtype=np.uint64),
                np.empty(d), np.empty(d), np.empty(d))

    @njit(inline="always")
    def start_path(work, setup):
        work[1][:] = 0.0
        work[6][:] = setup[8]

    @njit(inline="always")
    def draw_block(n_steps, rng, work, setup):
        fill_normal_block(rng, work[3], n_steps * setup[2], 1.0, work[4], work[5])

    @njit(inline="always")
    def advance(k, i, x, rng, params, work, setup, x_new):
        # the fine step as in solvers.sde_kernel, on the driver's own arrays:
        # the same step on copies in work arrays ran 2.5x slower
        m = setup[2]
        sqrt_dt = setup[3]
        dW = work[0]
        normals = work[3]
        first = i * m
        for j in range(m):
            dW[j] = normals[first + j] * sqrt_dt
        step(setup[0] + (k - 1) * setup[1], setup[1], x, dW, params, work[2], x_new)
        if setup[4] != 0:
            acc = work[1]
            for j in range(m):
                acc[j] += normals[first + j]
            if k % 2 == 0:
                # the coarse step ends with this fine step: its increment is the sum of two
                for j in range(m):
                    dW[j] = acc[j] * sqrt_dt
                    acc[j] = 0.0
                coarse, coarse_new = work[6], work[7]
                step(setup[0] + (k - 2) * setup[1], 2.0 * setup[1], coarse, dW, params,
                     work[2], coarse_new)
                for j in range(coarse.shape[0]):
                    coarse[j] = coarse_new[j]

    @njit(inline="always")
    def observe(k, x, params, work, setup, out):
        n_phi, phi_params = setup[6], setup[7]
        theta = work[8][:n_phi]
        for j in range(n_phi):
            theta[j] = x[j]
        pf = phi(theta, phi_params)
        pc = 0.0
        if setup[4] != 0:
            coarse = work[6]
            for j in range(n_phi):
                theta[j] = coarse[j]
            pc = phi(theta, phi_params)
        y = pf - pc
        out[0] = y
        out[1] = pf
        out[2] = pc
        out[3] = y * y * y
        out[4] = y * y * y * y

    @njit(inline="always")
    def record(work, setup, out):
        pass

    return PathKernel(new_work, start_path, steps_per_block, draw_block, advance, observe,
                      record)


_DRIVERS = {}


def level_driver(sde, scheme, phi_jit):
    """Compiled path loop of the level kernel; one per (scheme, SDE functions, φ).

    Keyed by the jitted functions rather than the SDE object, so that copies of
    an SDE (``with_params``, or unpickled in a Dask worker) reuse it.
    """
    key = (scheme.name, sde.drift_jit, sde.diffusion_jit, sde.diffusion_dx_jit, sde.noise,
           phi_jit)
    if key not in _DRIVERS:
        kernel = make_level_kernel(scheme.make_step(sde), phi_jit, sde.noise == "diagonal")
        _DRIVERS[key] = make_driver(kernel)
    return _DRIVERS[key]


# ---- the test function -----------------------------------------------------------------
_PHI = {}


def jit_phi(phi):
    """``phi`` as a jitted ``phi(x, params) -> float``.

    ``phi`` takes ``(x)`` or ``(x, params)``; a one-argument function is wrapped.
    One compiled form per function object (define φ at module level to reuse it).
    """
    if phi not in _PHI:
        py = getattr(phi, "py_func", phi)
        jitted = phi if isinstance(phi, numba.core.registry.CPUDispatcher) else njit(py)
        if phi_arity(phi) == 2:
            _PHI[phi] = jitted
        else:
            @njit
            def phi2(x, params):
                return jitted(x)
            _PHI[phi] = phi2
    return _PHI[phi]


def phi_arity(phi):
    """Number of positional arguments of ``phi`` (1 or 2); other signatures are refused."""
    py = getattr(phi, "py_func", phi)
    if not callable(py):
        raise ValueError(f"`phi` must be a function phi(x) or phi(x, params), got {phi!r}")
    try:
        params = inspect.signature(py).parameters.values()
    except (TypeError, ValueError):
        raise ValueError(f"`phi` must be a Python function phi(x) or phi(x, params), "
                         f"got {phi!r}") from None
    n = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
            for p in params)
    if n not in (1, 2):
        raise ValueError(f"`phi` must take (x) or (x, params), got a function of {n} "
                         f"required arguments: {phi!r}")
    return n


def code_identity(fn, depth=2):
    """A stable description of a function's code (for checkpoint fingerprints)."""
    fn = getattr(fn, "py_func", fn)
    code = getattr(fn, "__code__", None)
    if code is None:
        return repr(fn)
    parts = [getattr(fn, "__module__", ""), getattr(fn, "__qualname__", ""),
             hashlib.sha256(code.co_code + repr(code.co_consts).encode()).hexdigest()[:16]]
    if depth > 0:
        for cell in getattr(fn, "__closure__", None) or ():
            try:
                content = cell.cell_contents
            except ValueError:
                continue
            if callable(content):
                parts.append(code_identity(content, depth - 1))
    return "|".join(parts)


# ---- one unit of work ----------------------------------------------------------------
@dataclass(eq=False)
class LevelJob:
    """Everything a unit needs; pickles (for Dask) when the SDE's functions do.

    Attributes
    ----------
    sde : SDE
        A copy without compiled drivers (they are rebuilt where the unit runs).
    phi : callable
        The user's test function, ``phi(x)`` or ``phi(x, params)``.
    phi_dim : int
        φ sees ``x[:phi_dim]`` (θ of an optimizer SDE, the whole state otherwise).
    phi_params : ndarray, shape (n,)
        Its ``params`` argument.
    x0 : ndarray, shape (d,)
    t0, T : float
        Start and end time.
    scheme : Scheme
    steps0 : int
        M0, steps of level 0.
    seed : int
    """

    sde: Any
    phi: Callable
    phi_dim: int
    phi_params: np.ndarray
    x0: np.ndarray
    t0: float
    T: float
    scheme: Any
    steps0: int
    seed: int

    def fingerprint(self):
        """Hash of what a chunk's numbers depend on (and the streams' version)."""
        sde = self.sde
        d = dict(sde=[sde.name, sde.dim, sde.noise, sde.noise_dim, sde.params.tolist(),
                      code_identity(sde.drift), code_identity(sde.diffusion),
                      code_identity(sde.diffusion_dx)],
                 phi=code_identity(self.phi), phi_dim=self.phi_dim,
                 phi_params=hashlib.sha256(self.phi_params.tobytes()).hexdigest(),
                 x0=self.x0.tolist(), t0=self.t0, T=self.T, scheme=self.scheme.name,
                 steps0=self.steps0, seed=self.seed, streams=STREAMS_VERSION)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


class LevelDivergenceError(DivergenceError):
    """Samples of an MLMC level became non-finite (``level``, ``report``: sample indices)."""

    def __init__(self, level, coupled, report):
        self.level = level
        super().__init__(report)
        pair = "coupled pair" if coupled else "path"
        self.args = (f"MLMC level {level} ({pair}, stream offset {stream_offset(level)} + "
                     f"sample): {report.describe()}",)


def level_chunk(job, level, coupled, offset, n):
    """Moments of :data:`COLUMNS` over samples [offset, offset + n) of ``level``.

    Returns
    -------
    moments : Moments
        Shape (5,): Y, P^f, P^c, Y³, Y⁴.
    seconds : float
        Wall time of the unit.
    """
    start = time.perf_counter()
    steps = job.steps0 * 2**level
    dt = job.T / steps
    coupled = bool(coupled) and level > 0
    run = level_driver(job.sde, job.scheme, jit_phi(job.phi))
    x0 = np.ascontiguousarray(job.x0, dtype=np.float64)
    setup = (job.t0, dt, job.sde.noise_dim, math.sqrt(dt), int(coupled), job.sde.dim,
             job.phi_dim, job.phi_params, x0)
    out = run_paths(run, x0[None, :], steps, np.array([steps], dtype=np.int64), job.sde.params, setup,
                    job.seed, stream_offset(level) + offset, n, len(COLUMNS), save_x=False)
    paths, steps_bad, _ = out["diverged"]
    if len(paths):
        raise LevelDivergenceError(level, coupled, DivergenceReport(
            paths=paths + offset, steps=steps_bad, times=job.t0 + steps_bad * dt))
    moments = Moments(int(out["counts"][0]), out["mean"][0], out["m2"][0])
    return moments, time.perf_counter() - start


def _in_process(fn, job, units):
    for unit in units:
        yield unit, fn(job, *unit)


# ---- the samples of every level --------------------------------------------------------
class LevelSamples:
    """The samples drawn so far on each level, grown on request.

    Samples [0, N) of a (level, coupled) pair are the chunks their requests
    created: growing N_old to N_new adds chunks [N_old, …) cut at multiples of
    ``chunk_paths``. The merged moments depend only on the sequence of
    requests, which the (deterministic) algorithm repeats on a rerun, so
    checkpointed chunks are found again.

    Parameters
    ----------
    job : LevelJob
    chunk_paths : int
    executor : callable or None
        ``executor(fn, job, units)`` yielding ``(unit, fn(job, *unit))``.
    checkpoint_dir : str or None
        Folder of the :class:`PointStore` (``checkpoint/`` below it).
    """

    def __init__(self, job, chunk_paths, executor=None, checkpoint_dir=None):
        self.job = job
        self.chunk_paths = chunk_paths
        self.executor = executor or _in_process
        self.store = PointStore(checkpoint_dir)
        self.key = job.fingerprint()
        self.chunks = {}        # (level, coupled) -> {offset: Moments} of samples [0, N)
        self.stored = {}        # (level, coupled) -> {offset: Moments} in the store
        self.count = {}         # (level, coupled) -> samples requested so far
        self.seconds = {}       # (level, coupled) -> wall seconds of units run here
        self.timed = {}         # (level, coupled) -> samples of those units
        self.reused = 0

    def name(self, level, coupled):
        """Checkpoint file of a (level, coupled) pair of this job."""
        return f"mlmc_{self.key}_{'pair' if coupled else 'fine'}_level_{level}"

    def n(self, level, coupled):
        return self.count.get((level, coupled), 0)

    def extend(self, requests):
        """Grow each ``(level, coupled) -> N`` of ``requests`` to N samples (at least)."""
        units = []
        for (level, coupled), n_new in sorted(requests.items()):
            key = (level, coupled)
            if key not in self.chunks:
                self.chunks[key] = {}
                self.stored[key] = self.store.load(self.name(level, coupled), self.key)
            start = self.count.get(key, 0)
            for off, size in _grow_bounds(start, int(n_new), self.chunk_paths):
                old = self.stored[key].get(off)
                if old is not None and old.count == size:
                    self.chunks[key][off] = old
                    self.reused += size
                else:
                    units.append((level, coupled, off, size))
            self.count[key] = max(start, int(n_new))
        for (level, coupled, off, size), (moments, seconds) in self.executor(
                level_chunk, self.job, units):
            key = (level, coupled)
            self.chunks[key][off] = moments
            self.seconds[key] = self.seconds.get(key, 0.0) + seconds
            self.timed[key] = self.timed.get(key, 0) + size
            self.stored[key][off] = moments
            self.store.append(self.name(level, coupled), self.key, off, moments,
                              dict(level=level, coupled=coupled, steps0=self.job.steps0))

    def moments(self, level, coupled):
        """Merged Moments of the level's chunks (offset order), shape (5,)."""
        chunks = self.chunks[(level, coupled)]
        return Moments.merge(chunks[off] for off in sorted(chunks))


def _grow_bounds(start, stop, chunk_paths):
    """Chunks (offset, size) covering [start, stop), cut at multiples of chunk_paths."""
    bounds = []
    off = start
    while off < stop:
        end = min(stop, (off // chunk_paths + 1) * chunk_paths)
        bounds.append((off, end - off))
        off = end
    return bounds
