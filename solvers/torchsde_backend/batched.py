"""Run paths in batches on a torch device: chunks, seeds, checkpoints, streamed statistics.

The loop shared by the torch SDE integrator (:mod:`.runner`) and the batched
discrete optimizers of :mod:`sde_engine.torch.discrete`. The caller supplies
``make_advance(generator, batch) -> advance(y, k_from, k_to)`` that moves a
(batch, d) tensor of states from step ``k_from`` to step ``k_to`` drawing from
``generator``; this module handles the rest:

* paths in chunks of ``chunk_paths``; the chunk whose first path has the global
  index p (``path_offset`` + local index) gets a ``torch.Generator`` on the device
  seeded from ``(seed, p)`` (:func:`chunk_seed`). A run is reproducible for the
  same seed, device, dtype, ``path_offset``, ``n_paths`` and ``chunk_paths``;
  a full chunk does not depend on ``n_paths``, and runs with different offsets
  (pieces of one study) draw from different streams;
* states are advanced from checkpoint to checkpoint (the save steps and the last
  step) and only the current state is kept on the device;
* a path is diverged from the first checkpoint at which its state is not
  finite; it then holds NaN in the saved states and enters no statistic;
* observables are reduced per chunk on the device (mean and M2 in float64) and
  merged in chunk order (Chan et al. 1979).
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

DEFAULT_CHUNK_PATHS = 2**20

OBSERVABLE_NAMES = ("state", "square", "moments")


def _obs_state(t, x):
    return x


def _obs_square(t, x):
    return x * x


def _obs_moments(t, x):
    return torch.cat((x, x * x), dim=1)


BUILTIN_OBSERVABLES = dict(zip(OBSERVABLE_NAMES, (_obs_state, _obs_square, _obs_moments)))


@dataclass
class TorchRun:
    """Arrays produced by :func:`run_batched` (NumPy, float64, on the host).

    Attributes
    ----------
    x : ndarray, shape (n_save, n_paths, d), or None
        States at the save steps (non-finite paths hold NaN from their first
        non-finite checkpoint on).
    mean, m2 : ndarray, shape (n_save, n_obs), or None
        Mean and sum of squared deviations of the observables over the paths
        that stayed finite.
    count : int
        Number of paths that stayed finite.
    diverged_step : ndarray of int64, shape (n_paths,)
        First checkpoint step at which the path was non-finite, or -1.
    """

    x: Optional[np.ndarray]
    mean: Optional[np.ndarray]
    m2: Optional[np.ndarray]
    count: int
    diverged_step: np.ndarray


def resolve_device(device):
    """A ``torch.device`` for ``device``; unavailable CUDA is a ``ValueError``."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"`device` must name a torch device such as 'cpu' or 'cuda', "
                         f"got {device!r} ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`device` {device!r} asks for CUDA, but torch.cuda.is_available() is "
                         f"False (torch {torch.__version__}); use device='cpu'")
    return dev


def resolve_dtype(dtype):
    """``torch.float64`` (default) or ``torch.float32``, also given as a string."""
    table = {None: torch.float64, "float64": torch.float64, "float32": torch.float32,
             torch.float64: torch.float64, torch.float32: torch.float32}
    try:
        return table[dtype]
    except (KeyError, TypeError):
        raise ValueError(f"`dtype` must be 'float64' or 'float32', got {dtype!r}") from None


def resolve_observables(observables):
    """A callable ``phi(t, x) -> (batch, n_obs)`` from a callable or a built-in name."""
    if observables is None or callable(observables):
        return observables
    if isinstance(observables, str) and observables in BUILTIN_OBSERVABLES:
        return BUILTIN_OBSERVABLES[observables]
    raise ValueError(f"`observables` must be a torch function phi(t, x) -> (n_paths, "
                     f"n_observables) or one of {OBSERVABLE_NAMES}, got {observables!r}")


def chunk_seed(seed, first_path):
    """A 63-bit generator seed for the chunk starting at global path ``first_path``."""
    state = np.random.SeedSequence((seed, first_path)).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])



def run_batched(x0, n_paths, *, n_steps, save_steps, seed, make_advance, time_of_step,
                observables=None, n_obs=0, save_paths=True, chunk_paths=None, path_offset=0):
    """Advance ``n_paths`` paths in chunks and record them at ``save_steps``.

    Parameters
    ----------
    x0 : tensor, shape (1, d) or (n_paths, d)
        Initial states on the device, in the run's dtype.
    n_paths, n_steps : int
    save_steps : ndarray of int, shape (n_save,)
        Non-decreasing steps in [0, n_steps].
    seed : int
    make_advance : callable
        ``make_advance(generator, batch)`` returns ``advance(y, k_from, k_to)``.
    time_of_step : callable
        ``time_of_step(k)``: the time (float) handed to the observables.
    observables : callable, optional
        ``phi(t, x) -> (batch, n_obs)``; ``n_obs`` its width.
    save_paths : bool
    chunk_paths : int, optional
        Default :data:`DEFAULT_CHUNK_PATHS`.
    path_offset : int
        Global index of path 0 (keys the chunk generators).

    Returns
    -------
    TorchRun
    """
    chunk = DEFAULT_CHUNK_PATHS if chunk_paths is None else chunk_paths
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk <= 0:
        raise ValueError(f"`chunk_paths` must be a positive integer, got {chunk_paths!r}")
    device = x0.device
    d = x0.shape[1]
    save_steps = np.asarray(save_steps, dtype=np.int64)
    checkpoints = np.unique(np.append(save_steps, n_steps))
    where = np.searchsorted(checkpoints, save_steps)
    n_save = len(save_steps)
    x_out = np.empty((n_save, n_paths, d)) if save_paths else None
    diverged_step = np.full(n_paths, -1, dtype=np.int64)
    chunk_stats = []
    for lo in range(0, n_paths, chunk):
        hi = min(lo + chunk, n_paths)
        gen = torch.Generator(device=device)
        gen.manual_seed(chunk_seed(seed, path_offset + lo))
        advance = make_advance(gen, hi - lo)
        y = (x0[lo:hi] if x0.shape[0] > 1 else x0.expand(hi - lo, d)).clone()
        states = []
        bad = torch.zeros(hi - lo, dtype=torch.bool, device=device)
        first_bad = torch.full((hi - lo,), -1, dtype=torch.int64, device=device)
        k_prev = 0
        with torch.no_grad():
            for k in checkpoints:
                if k > k_prev:
                    y = advance(y, int(k_prev), int(k))
                    k_prev = k
                now_bad = ~torch.isfinite(y).all(dim=1)
                first_bad = torch.where(now_bad & ~bad, torch.full_like(first_bad, int(k)),
                                        first_bad)
                bad |= now_bad
                states.append(y)
            kept = [states[i] for i in where]
            bad_np = first_bad.cpu().numpy()
            diverged_step[lo:hi] = bad_np
            if save_paths:
                xs = torch.stack(kept).to("cpu", torch.float64).numpy()
                for p in np.flatnonzero(bad_np >= 0):
                    xs[save_steps >= bad_np[p], p, :] = np.nan
                x_out[:, lo:hi] = xs
            if n_obs:
                ok = ~bad
                vals = torch.stack([observables(time_of_step(int(k)), s[ok])
                                    for k, s in zip(save_steps, kept)]).to(torch.float64)
                count = int(ok.sum())
                mean = vals.mean(dim=1) if count else torch.zeros(n_save, n_obs, dtype=torch.float64)
                m2 = ((vals - mean[:, None, :].to(vals.device)) ** 2).sum(dim=1)
                chunk_stats.append((count, mean.cpu().numpy(), m2.cpu().numpy()))
    mean = m2 = None
    if n_obs:
        count, mean, m2 = merge_statistics(chunk_stats, (n_save, n_obs))
    else:
        count = int(np.sum(diverged_step < 0))
    return TorchRun(x=x_out, mean=mean, m2=m2, count=count, diverged_step=diverged_step)


def merge_statistics(chunks, shape):
    """Merge per-chunk (count, mean, M2) in chunk order (Chan et al. 1979)."""
    n, mean, m2 = 0, np.zeros(shape), np.zeros(shape)
    for nb, mb, m2b in chunks:
        if nb == 0:
            continue
        total = n + nb
        delta = mb - mean
        mean = mean + delta * (nb / total)
        m2 = m2 + m2b + delta * delta * (n * nb / total)
        n = total
    return n, mean, m2
