"""Run many independent paths of a per-step kernel: the engine's one parallel loop.

SDE paths (:mod:`solvers.sde_kernel`) and discrete optimizer runs
(``sde_engine.runner``) share this loop; they differ only in the *path kernel*
that advances one path by one step. Paths are grouped in chunks of
:data:`CHUNK_PATHS` (a constant, independent of the thread count); ``prange``
runs over chunks and each chunk advances its paths one after the other. Path
``p`` always uses the random stream ``(seed, path_offset + p)`` and each chunk
writes only its own slots, so results are bit-identical for any number of
threads, and a path's numbers do not depend on ``n_paths``.

Streaming statistics are per-chunk Welford accumulators (count, mean and M2)
of the observables at each save step; the caller folds chunks into running
totals in chunk order (:func:`merge_chunk_statistics`), which fixes the
floating-point reduction order too. A path whose state becomes non-finite
stops; the step at which it did is recorded. It counts in the statistics of
the save steps before that step and in none after, so each save step has its
own count of paths. An observable that is non-finite on a finite state stops
the path in the same way (recorded with the observable's index): it counts for
the save steps before, not at that save step nor after.

:func:`run_paths` calls the compiled loop on *slices* of whole chunks, each
sized to about :data:`SLICE_SECONDS` of work (measured on the slices before),
so that a KeyboardInterrupt is honoured between slices. Chunks, their
statistics and the order of the merge do not depend on the slices, so neither
does any number. Only diverged paths are kept from each slice: streaming runs
need memory per slice, not per path.

A path kernel is a :class:`PathKernel` of jitted functions (``inline="always"``
where they run every step). ``setup`` is one value (usually a tuple of scalars
and float64 arrays) handed unchanged to every function; ``work`` is whatever
``new_work`` returns (scratch arrays, allocated once per chunk)::

    new_work(dim, setup) -> work
    start_path(work, setup)                           # before step 1 of each path
    steps_per_block(setup) -> int                     # most steps draw_block prepares
    draw_block(n, rng, work, setup)                   # before the next n steps
    advance(k, i, x, rng, params, work, setup, x_new) # step k = 1..n_steps, the i-th
                                                      # of its block: x_{k-1} -> x_new
    observe(k, x, params, work, setup, out)           # observables of the state after step k
    record(work, setup, out)                          # auxiliary record at save steps (e.g. W)

The steps run in blocks so that a kernel can draw the random numbers of a
block in one loop before its steps (the SDE kernel does; a kernel that draws
inside ``advance`` makes ``draw_block`` do nothing). Blocks end at save steps
too, so a kernel's numbers must not depend on where blocks are cut.

``rng`` is the path's :mod:`solvers.rng` stream (uint64, shape (8,): main and
auxiliary stream); it is the only source of randomness a kernel may use.
"""
import time
from typing import Callable, NamedTuple

import numba
import numpy as np
from numba import njit, prange

from .rng import seed_stream

CHUNK_PATHS = 1024
#: Target wall time of one slice of chunks (the latency of a KeyboardInterrupt).
SLICE_SECONDS = 0.2
#: Most chunks per thread in one slice (bounds the per-slice buffers).
MAX_SLICE_CHUNKS_PER_THREAD = 64


class PathKernel(NamedTuple):
    """The jitted functions that define one kind of path (see the module docstring)."""

    new_work: Callable
    start_path: Callable
    steps_per_block: Callable
    draw_block: Callable
    advance: Callable
    observe: Callable
    record: Callable


#: The largest finite float64: |v| <= it is false exactly for NaN and ±inf.
_LARGEST_FLOAT = float(np.finfo(np.float64).max)


@njit(inline="always")
def _is_finite(v):
    """Whether ``v`` is finite, as one comparison.

    The step loop ANDs these comparisons into one flag. Two earlier forms were
    slower on the 10-D GBM of ``python -m benchmarks.breakdown_bench`` (ns per
    path·dim-step and core): adding v·0 over the coordinates, a floating-point
    sum the compiler must keep in order (driver 1.23, engine 4.76 on a Zen 2
    CPU), and counting the failed comparisons, which took about 13 ns per step
    whatever the dimension on a Zen 5 CPU (driver 1.37 against 0.51 with the
    flag, engine 3.39 against 2.71, one thread, side by side).
    """
    return abs(v) <= _LARGEST_FLOAT


def make_driver(kernel):
    """Compile the chunked path loop for one path kernel.

    Parameters
    ----------
    kernel : PathKernel
        What a path does per step, what it observes and records. The number
        of observables is read from the statistics arrays at run time, so one
        compiled loop serves any number.

    Returns
    -------
    run : numba dispatcher
        See the docstring of the inner function.
    """
    new_work, start_path, advance = kernel.new_work, kernel.start_path, kernel.advance
    steps_per_block, draw_block = kernel.steps_per_block, kernel.draw_block
    observe, record = kernel.observe, kernel.record

    @njit(parallel=True)
    def run(x0, n_steps, save_steps, params, setup, seed, path_offset, first_path, end_path,
            save_x, save_aux, x_out, aux_out, obs_mean, obs_m2, obs_count, diverged_step,
            diverged_obs):
        """Advance paths ``first_path .. end_path - 1``, writing into preallocated outputs.

        ``first_path`` is a multiple of CHUNK_PATHS: the slice holds chunks
        ``first_path // CHUNK_PATHS + c`` for c < n_slice = obs_count.shape[0].
        x0 : (1 or n_paths, dim); save_steps : (n_save,) sorted step indices;
        x_out : (n_save, n_paths, dim) when ``save_x``; aux_out : (n_save,
        n_paths, n_aux) when ``save_aux`` (what ``record`` writes); obs_mean,
        obs_m2 : (n_slice, n_save, n_obs) with n_obs the number of values
        ``observe`` writes (0: none); obs_count : (n_slice, n_save) paths in the
        statistics of each chunk and save step; diverged_step : (≥ end_path −
        first_path,) first non-finite step of path first_path + i or −1;
        diverged_obs : same shape, the observable found non-finite on a finite
        state, or −1 (the state itself, or no divergence). All per-slice
        arrays are overwritten.
        """
        d = x0.shape[1]
        n_save = save_steps.shape[0]
        n_obs = obs_mean.shape[2]
        per_path_x0 = x0.shape[0] > 1
        block_steps = steps_per_block(setup)
        for c in prange(obs_count.shape[0]):
            x = np.empty(d)
            x_new = np.empty(d)
            work = new_work(d, setup)
            state = np.empty(8, dtype=np.uint64)
            phi = np.empty(max(n_obs, 1))
            path_obs = np.empty((n_save, max(n_obs, 1)))
            obs_mean[c] = 0.0
            obs_m2[c] = 0.0
            obs_count[c] = 0
            first = first_path + c * CHUNK_PATHS
            last = min(first + CHUNK_PATHS, end_path)
            for p in range(first, last):
                seed_stream(seed, path_offset + p, state)
                x[:] = x0[p if per_path_x0 else 0]
                start_path(work, setup)
                k = 0
                bad = -1
                bad_obs = -1
                k_save = 0
                n_good = 0          # save steps whose observables are finite
                # advance to each save step in turn (then on to n_steps): the hot
                # loop has no save test, which was worth 8% of the SDE throughput
                while True:
                    target = save_steps[k_save] if k_save < n_save else n_steps
                    while k < target and bad < 0:
                        n_block = min(target - k, block_steps)
                        draw_block(n_block, state, work, setup)
                        for b in range(n_block):
                            k += 1
                            advance(k, b, x, state, params, work, setup, x_new)
                            # one branch per step, not per coordinate (see _is_finite)
                            all_finite = True
                            for i in range(d):
                                x[i] = x_new[i]
                                all_finite &= _is_finite(x_new[i])
                            if not all_finite:
                                bad = k
                                break
                    if bad >= 0 or k_save == n_save:
                        break
                    if save_x:
                        x_out[k_save, p, :] = x
                    if save_aux:
                        record(work, setup, aux_out[k_save, p])
                    k_save += 1
                    if n_obs > 0:
                        observe(k, x, params, work, setup, phi)
                        for q in range(n_obs):
                            if phi[q] * 0.0 != 0.0:
                                bad_obs = q
                                break
                        if bad_obs >= 0:
                            bad = k
                            break
                        path_obs[n_good, :] = phi[:n_obs]
                    n_good += 1
                diverged_step[p - first_path] = bad
                diverged_obs[p - first_path] = bad_obs
                if bad >= 0:
                    if save_x:
                        x_out[k_save:, p, :] = np.nan
                    if save_aux:
                        aux_out[k_save:, p, :] = np.nan
                for s in range(n_good):
                    obs_count[c, s] += 1
                    n = obs_count[c, s]
                    for q in range(n_obs):
                        delta = path_obs[s, q] - obs_mean[c, s, q]
                        obs_mean[c, s, q] += delta / n
                        obs_m2[c, s, q] += delta * (path_obs[s, q] - obs_mean[c, s, q])

    return run


def run_paths(run, x0, n_steps, save_steps, params, setup, seed, path_offset, n_paths,
              n_observables, *, save_x, n_aux=0):
    """Allocate the outputs, call a compiled ``run`` slice by slice and merge its statistics.

    Slices are whole chunks, sized from the time the slices before took
    (about :data:`SLICE_SECONDS` each), so Ctrl-C is honoured between them;
    no number depends on the slicing.

    Parameters
    ----------
    run : numba dispatcher
        From :func:`make_driver`.
    x0 : ndarray, shape (1 or n_paths, dim)
        C-contiguous float64 initial states.
    save_steps : ndarray of int64, shape (n_save,)
        Sorted step indices to record.
    n_aux : int
        Length of the auxiliary record per path and save step (0: none).

    Returns
    -------
    dict
        ``x`` (n_save, n_paths, dim) or None, ``aux`` (n_save, n_paths, n_aux)
        or None; ``mean`` and ``m2`` (n_save, n_observables) or None, over
        ``counts`` (n_save,) paths at each save step (``mean`` is NaN where
        the count is 0); ``n_used``: paths that stayed finite to the end;
        ``diverged`` = (paths, steps, observables): local indices of the paths
        that stopped, the step of it, and the observable found non-finite on a
        finite state (−1: the state became non-finite), each of shape
        (n_diverged,) and in path order.
    """
    n_save = len(save_steps)
    dim = x0.shape[1]
    n_chunks = -(-n_paths // CHUNK_PATHS)
    x_out = np.empty((n_save, n_paths if save_x else 0, dim))
    aux_out = np.empty((n_save, n_paths if n_aux else 0, max(n_aux, 1)))
    mean = np.zeros((n_save, n_observables))
    m2 = np.zeros((n_save, n_observables))
    counts = np.zeros(n_save, dtype=np.int64)
    bad = ([], [], [])
    sizer = _SliceSizer(numba.get_num_threads())
    first_chunk = 0
    while first_chunk < n_chunks:
        n_slice = min(sizer.chunks, n_chunks - first_chunk)
        first = first_chunk * CHUNK_PATHS
        end = min(first + n_slice * CHUNK_PATHS, n_paths)
        chunk_mean = np.empty((n_slice, n_save, n_observables))
        chunk_m2 = np.empty((n_slice, n_save, n_observables))
        chunk_count = np.empty((n_slice, n_save), dtype=np.int64)
        step = np.empty(end - first, dtype=np.int64)
        obs = np.empty(end - first, dtype=np.int64)
        started = time.perf_counter()
        run(x0, n_steps, save_steps, params, setup, seed, path_offset, first, end, save_x,
            n_aux > 0, x_out, aux_out, chunk_mean, chunk_m2, chunk_count, step, obs)
        sizer.update(n_slice, time.perf_counter() - started)
        merge_chunk_statistics(chunk_mean, chunk_m2, chunk_count, mean, m2, counts)
        stopped = np.flatnonzero(step >= 0)
        for out, values in zip(bad, (stopped + first, step[stopped], obs[stopped])):
            out.append(values)
        first_chunk += n_slice
    paths, steps, observables = (np.concatenate(b) if b else np.empty(0, dtype=np.int64)
                                 for b in bad)
    mean[counts == 0] = np.nan
    return dict(x=x_out if save_x else None, aux=aux_out if n_aux else None,
                mean=mean if n_observables else None, m2=m2 if n_observables else None,
                counts=counts, n_used=n_paths - len(paths),
                diverged=(paths, steps, observables))


class _SliceSizer:
    """Chunks per slice: one per thread first, then scaled to :data:`SLICE_SECONDS`."""

    def __init__(self, n_threads):
        self.n_threads = n_threads
        self.chunks = n_threads

    def update(self, n_chunks, seconds):
        """Size the next slice from the last one (``n_chunks`` took ``seconds``)."""
        per_thread = n_chunks / self.n_threads * SLICE_SECONDS / max(seconds, 1e-6)
        per_thread = int(min(max(per_thread, 1), MAX_SLICE_CHUNKS_PER_THREAD))
        self.chunks = per_thread * self.n_threads


@njit(cache=True)
def merge_chunk_statistics(mean, m2, count, total_mean, total_m2, total_count):
    """Fold per-chunk Welford statistics into running totals, in chunk order.

    Chan et al. (1979): with n = total_count[s], n_c = count[c, s] and
    δ = mean_c − total_mean, the total becomes mean += δ n_c / (n + n_c),
    M2 += M2_c + δ² n n_c / (n + n_c), n += n_c, for each save step s on its
    own. Folding the chunks of a run in any number of calls, in order, gives
    the same bits as one call.

    Parameters
    ----------
    mean, m2 : ndarray, shape (n_chunks, n_save, n_obs)
    count : ndarray of int64, shape (n_chunks, n_save)
    total_mean, total_m2 : ndarray, shape (n_save, n_obs)
        Updated in place (start from zeros).
    total_count : ndarray of int64, shape (n_save,)
        Updated in place (start from zeros).
    """
    for c in range(mean.shape[0]):
        for s in range(mean.shape[1]):
            nc = count[c, s]
            if nc == 0:
                continue
            n = total_count[s]
            n_new = n + nc
            for q in range(mean.shape[2]):
                delta = mean[c, s, q] - total_mean[s, q]
                total_mean[s, q] += delta * nc / n_new
                total_m2[s, q] += m2[c, s, q] + delta * delta * n * nc / n_new
            total_count[s] = n_new
