"""Streamed Monte Carlo statistics of study points.

The unit of work of every study is a *chunk*: a block of paths
``[path_offset, path_offset + n)`` whose per-path values are reduced at once
to (count, mean, M2) — Welford's running sums, never the paths themselves.
Chunks are merged in a fixed order (chunk index), so the result is bit-identical
however the chunks were computed (in process, in another order, on other
machines), as long as the split into chunks is the same.
"""
from dataclasses import dataclass

import numpy as np

from solvers.driver import merge_chunk_statistics


@dataclass
class Moments:
    """Count, mean and sum of squared deviations (M2) of values of any shape.

    Attributes
    ----------
    count : int
        Number of finite samples.
    mean : ndarray, shape S
        Sample mean.
    m2 : ndarray, shape S
        Σ (value − mean)² over the samples.
    """

    count: int
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def of(cls, values):
        """Moments over axis 0 of ``values`` (shape (n, *S))."""
        values = np.asarray(values, dtype=float)
        n = values.shape[0]
        if n == 0:
            shape = values.shape[1:]
            return cls(0, np.zeros(shape), np.zeros(shape))
        mean = values.mean(axis=0)
        return cls(int(n), mean, ((values - mean) ** 2).sum(axis=0))

    @classmethod
    def from_mean_var(cls, mean, var, count):
        """From a mean and an unbiased variance over ``count`` samples.

        With fewer than two samples M2 is 0 (``var`` is then NaN and not read).
        """
        mean = np.asarray(mean, dtype=float)
        var = np.asarray(var, dtype=float)
        m2 = var * (count - 1) if count >= 2 else np.zeros_like(var)
        return cls(int(count), mean.copy(), m2)

    @classmethod
    def merge(cls, chunks):
        """Merge chunk moments in the order given (Chan et al.; fixed order).

        The mean of no sample (every count 0) is NaN.
        """
        chunks = list(chunks)
        if not chunks:
            raise ValueError("`chunks` must hold at least one Moments")
        shape = np.shape(chunks[0].mean)
        means = np.stack([np.reshape(c.mean, -1) for c in chunks])[:, None, :]
        m2s = np.stack([np.reshape(c.m2, -1) for c in chunks])[:, None, :]
        counts = np.array([[c.count] for c in chunks], dtype=np.int64)
        mean, m2 = np.zeros((1, means.shape[2])), np.zeros((1, means.shape[2]))
        n = np.zeros(1, dtype=np.int64)
        merge_chunk_statistics(np.ascontiguousarray(means), np.ascontiguousarray(m2s), counts,
                               mean, m2, n)
        if n[0] == 0:
            mean[:] = np.nan
        return cls(int(n[0]), mean.reshape(shape), m2.reshape(shape))

    @property
    def var(self):
        """Unbiased sample variance; NaN with fewer than two samples."""
        if self.count < 2:
            return np.full(np.shape(self.m2), np.nan)
        return self.m2 / (self.count - 1)

    @property
    def stderr(self):
        """Monte Carlo standard error of the mean; NaN with fewer than two samples."""
        return np.sqrt(self.var / max(self.count, 1))

    def as_dict(self):
        return dict(count=self.count, mean=np.asarray(self.mean).tolist(),
                    m2=np.asarray(self.m2).tolist())

    @classmethod
    def from_dict(cls, d):
        return cls(int(d["count"]), np.asarray(d["mean"], dtype=float),
                   np.asarray(d["m2"], dtype=float))


def chunk_bounds(n_paths, chunk_paths):
    """Split paths 0..n_paths-1 into consecutive chunks: list of (offset, size)."""
    return [(start, min(chunk_paths, n_paths - start))
            for start in range(0, n_paths, chunk_paths)]
