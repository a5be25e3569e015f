"""Run many independent paths of a per-step kernel: the engine's one parallel loop.

SDE paths (:mod:`solvers.sde_kernel`) and discrete optimizer runs
(``sde_engine.runner``) share this loop; they differ only in the *path kernel*
that advances one path by one step. Paths are grouped in chunks of
:data:`CHUNK_PATHS` (a constant, independent of the thread count); ``prange``
runs over chunks and each chunk advances its paths one after the other. Path
``p`` always uses the random stream ``(seed, path_offset + p)`` and each chunk
writes only its own slots, so results are bit-identical for any number of
threads, and a path's numbers do not depend on ``n_paths``.

Streaming statistics are per-chunk Welford accumulators (mean and M2) of the
observables at the save steps; the caller merges chunks in chunk order
(:func:`merge_chunk_statistics`), which fixes the floating-point reduction
order too. A path whose state becomes non-finite stops; the step at which it
did is recorded and the path contributes to no statistic.

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
from typing import Callable, NamedTuple

import numpy as np
from numba import njit, prange

from .rng import seed_stream

CHUNK_PATHS = 1024


class PathKernel(NamedTuple):
    """The jitted functions that define one kind of path (see the module docstring)."""

    new_work: Callable
    start_path: Callable
    steps_per_block: Callable
    draw_block: Callable
    advance: Callable
    observe: Callable
    record: Callable


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
    def run(x0, n_steps, save_steps, params, setup, seed, path_offset, n_paths,
            save_x, save_aux, x_out, aux_out, obs_mean, obs_m2, obs_count, diverged_step):
        """Advance ``n_paths`` paths, writing into the preallocated outputs.

        x0 : (1 or n_paths, dim); save_steps : (n_save,) sorted step indices;
        x_out : (n_save, n_paths, dim) when ``save_x``; aux_out : (n_save,
        n_paths, n_aux) when ``save_aux`` (what ``record`` writes); obs_mean,
        obs_m2 : (n_chunks, n_save, n_obs) with n_obs the number of values
        ``observe`` writes (0: none); obs_count : (n_chunks,) paths that
        finished finite; diverged_step : (n_paths,) first non-finite step or -1.
        """
        d = x0.shape[1]
        n_save = save_steps.shape[0]
        n_obs = obs_mean.shape[2]
        n_chunks = (n_paths + CHUNK_PATHS - 1) // CHUNK_PATHS
        per_path_x0 = x0.shape[0] > 1
        block_steps = steps_per_block(setup)
        for c in prange(n_chunks):
            x = np.empty(d)
            x_new = np.empty(d)
            work = new_work(d, setup)
            state = np.empty(8, dtype=np.uint64)
            phi = np.empty(max(n_obs, 1))
            path_obs = np.empty((n_save, max(n_obs, 1)))
            count = 0
            first = c * CHUNK_PATHS
            last = min(first + CHUNK_PATHS, n_paths)
            for p in range(first, last):
                seed_stream(seed, path_offset + p, state)
                x[:] = x0[p if per_path_x0 else 0]
                start_path(work, setup)
                k = 0
                bad = -1
                k_save = 0
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
                            # x·0 is 0 for finite x and NaN for NaN/inf: one branch per
                            # step instead of one per coordinate, and no overflow
                            non_finite = 0.0
                            for i in range(d):
                                x[i] = x_new[i]
                                non_finite += x_new[i] * 0.0
                            if non_finite != 0.0:
                                bad = k
                                break
                    if bad >= 0 or k_save == n_save:
                        break
                    if save_x:
                        x_out[k_save, p, :] = x
                    if save_aux:
                        record(work, setup, aux_out[k_save, p])
                    if n_obs > 0:
                        observe(k, x, params, work, setup, phi)
                        path_obs[k_save, :] = phi[:n_obs]
                    k_save += 1
                diverged_step[p] = bad
                if bad >= 0:
                    if save_x:
                        x_out[k_save:, p, :] = np.nan
                    if save_aux:
                        aux_out[k_save:, p, :] = np.nan
                    continue
                count += 1
                for s in range(n_save):
                    for q in range(n_obs):
                        delta = path_obs[s, q] - obs_mean[c, s, q]
                        obs_mean[c, s, q] += delta / count
                        obs_m2[c, s, q] += delta * (path_obs[s, q] - obs_mean[c, s, q])
            obs_count[c] = count

    return run


def run_paths(run, x0, n_steps, save_steps, params, setup, seed, path_offset, n_paths,
              n_observables, *, save_x, n_aux=0):
    """Allocate the outputs, call a compiled ``run`` and merge its statistics.

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
        or None, ``mean`` and ``m2`` (n_save, n_observables) or None,
        ``n_used`` (paths in the statistics), ``diverged_step`` (n_paths,)
        with −1 for paths that stayed finite.
    """
    n_save = len(save_steps)
    dim = x0.shape[1]
    n_chunks = -(-n_paths // CHUNK_PATHS)
    x_out = np.empty((n_save, n_paths if save_x else 0, dim))
    aux_out = np.empty((n_save, n_paths if n_aux else 0, max(n_aux, 1)))
    chunk_mean = np.zeros((n_chunks, n_save, n_observables))
    chunk_m2 = np.zeros((n_chunks, n_save, n_observables))
    chunk_count = np.zeros(n_chunks, dtype=np.int64)
    diverged_step = np.empty(n_paths, dtype=np.int64)
    run(x0, n_steps, save_steps, params, setup, seed, path_offset, n_paths, save_x,
        n_aux > 0, x_out, aux_out, chunk_mean, chunk_m2, chunk_count, diverged_step)
    mean = m2 = None
    n_used = int(np.sum(diverged_step < 0))
    if n_observables:
        mean, m2, n_used = merge_chunk_statistics(chunk_mean, chunk_m2, chunk_count)
    return dict(x=x_out if save_x else None, aux=aux_out if n_aux else None,
                mean=mean, m2=m2, n_used=int(n_used), diverged_step=diverged_step)


@njit(cache=True)
def merge_chunk_statistics(mean, m2, count):
    """Merge per-chunk Welford statistics in chunk order (Chan et al. 1979).

    Parameters
    ----------
    mean, m2 : ndarray, shape (n_chunks, n_save, n_obs)
    count : ndarray of int64, shape (n_chunks,)

    Returns
    -------
    total_mean, total_m2 : ndarray, shape (n_save, n_obs)
    total_count : int
    """
    total_mean = np.zeros(mean.shape[1:])
    total_m2 = np.zeros(mean.shape[1:])
    n = 0
    for c in range(mean.shape[0]):
        nc = count[c]
        if nc == 0:
            continue
        n_new = n + nc
        for s in range(mean.shape[1]):
            for q in range(mean.shape[2]):
                delta = mean[c, s, q] - total_mean[s, q]
                total_mean[s, q] += delta * nc / n_new
                total_m2[s, q] += m2[c, s, q] + delta * delta * n * nc / n_new
        n = n_new
    return total_mean, total_m2, n
