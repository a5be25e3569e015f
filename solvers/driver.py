"""Integrate many independent paths of an SDE with a fixed-step scheme.

The driver is the only parallel loop in the engine. Paths are grouped in
chunks of :data:`CHUNK_PATHS` (a constant, independent of the thread count);
``prange`` runs over chunks and each chunk integrates its paths one after the
other. Path ``p`` always uses the random stream ``(seed, path_offset + p)`` and
each chunk writes only its own slots, so results are bit-identical for any
number of threads, and a path's numbers do not depend on ``n_paths``.

Streaming statistics are per-chunk Welford accumulators (mean and M2) of the
observables at the save steps; the caller merges chunks in chunk order
(:func:`merge_chunk_statistics`), which fixes the floating-point reduction
order too. A path whose state becomes non-finite stops; the step at which it
did is recorded and the path contributes to no statistic.
"""
import math

import numpy as np
from numba import njit, prange

from .rng import next_normal, seed_stream

CHUNK_PATHS = 1024


def make_driver(step, diagonal, observables, n_observables):
    """Compile the path loop for one scheme step and one observable function.

    Parameters
    ----------
    step : numba dispatcher
        ``step(t, dt, x, dW, params, work, x_new)`` from a scheme's ``make_step``.
    diagonal : bool
        Diagonal noise (diffusion shape (d,)) or general (shape (d, m)).
    observables : numba dispatcher
        ``observables(t, x, params, out)`` writing ``n_observables`` values.
    n_observables : int
        Number of values ``observables`` writes (0 for none).

    Returns
    -------
    run : numba dispatcher
        See the docstring of the inner function.
    """
    n_obs = n_observables

    @njit(parallel=True)
    def run(x0, t0, dt, n_steps, refine, save_steps, params, seed, path_offset,
            n_paths, noise_dim, save_x, save_w, x_out, w_out,
            obs_mean, obs_m2, obs_count, diverged_step):
        """Integrate ``n_paths`` paths, writing into the preallocated outputs.

        x0 : (1 or n_paths, d); save_steps : (n_save,) sorted step indices;
        x_out : (n_save, n_paths, d) when ``save_x``; w_out : (n_save, n_paths,
        m) when ``save_w`` (the Brownian path W); obs_mean, obs_m2 :
        (n_chunks, n_save, n_obs); obs_count : (n_chunks,) paths that finished
        finite; diverged_step : (n_paths,) first non-finite step or -1.
        """
        d = x0.shape[1]
        m = noise_dim
        n_save = save_steps.shape[0]
        n_chunks = (n_paths + CHUNK_PATHS - 1) // CHUNK_PATHS
        sqrt_fine_dt = math.sqrt(dt / refine)
        per_path_x0 = x0.shape[0] > 1
        for c in prange(n_chunks):
            x = np.empty(d)
            x_new = np.empty(d)
            dW = np.empty(m)
            W = np.empty(m)
            f = np.empty(d)
            x_aux = np.empty(d)
            if diagonal:
                g = np.empty(d)
                g_aux = np.empty(d)
            else:
                g = np.empty((d, m))
                g_aux = np.empty((d, m))
            work = (f, g, g_aux, x_aux)
            state = np.empty(4, dtype=np.uint64)
            phi = np.empty(max(n_obs, 1))
            path_obs = np.empty((n_save, max(n_obs, 1)))
            count = 0
            first = c * CHUNK_PATHS
            last = min(first + CHUNK_PATHS, n_paths)
            for p in range(first, last):
                seed_stream(seed, path_offset + p, state)
                x[:] = x0[p if per_path_x0 else 0]
                W[:] = 0.0
                k_save = 0
                next_save = save_steps[0]
                bad = -1
                for k in range(n_steps + 1):
                    if k > 0:
                        # fine-step-major order, so that any dt sharing
                        # brownian_dt sees the same Brownian path
                        for j in range(m):
                            dW[j] = 0.0
                        for _ in range(refine):
                            for j in range(m):
                                dW[j] += next_normal(state)
                        for j in range(m):
                            dW[j] *= sqrt_fine_dt
                        if save_w:
                            for j in range(m):
                                W[j] += dW[j]
                        step(t0 + (k - 1) * dt, dt, x, dW, params, work, x_new)
                        for i in range(d):
                            x[i] = x_new[i]
                            if not math.isfinite(x_new[i]):
                                bad = k
                        if bad >= 0:
                            break
                    while next_save == k:
                        if save_x:
                            x_out[k_save, p, :] = x
                        if save_w:
                            w_out[k_save, p, :] = W
                        if n_obs > 0:
                            observables(t0 + k * dt, x, params, phi)
                            path_obs[k_save, :] = phi[:n_obs]
                        k_save += 1
                        next_save = save_steps[k_save] if k_save < n_save else -1
                diverged_step[p] = bad
                if bad >= 0:
                    if save_x:
                        x_out[k_save:, p, :] = np.nan
                    if save_w:
                        w_out[k_save:, p, :] = np.nan
                    continue
                count += 1
                for s in range(n_save):
                    for q in range(n_obs):
                        delta = path_obs[s, q] - obs_mean[c, s, q]
                        obs_mean[c, s, q] += delta / count
                        obs_m2[c, s, q] += delta * (path_obs[s, q] - obs_mean[c, s, q])
            obs_count[c] = count

    return run


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
