"""SGD against its first- and second-order SDEs: weak errors by the coupled estimator.

For each learning rate η the discrete SGD runs k = T/η steps and is compared,
on one Brownian path per run (:func:`sde_engine.coupled_weak_error`), with

* the SGD SDE, dX = −∇f dt + σ√η Σ^{1/2} dW (weak order 1 in η), and
* the modified SDE of Li, Tai & E, dX = −∇(f + (η/4)‖∇f‖²) dt + σ√η Σ^{1/2} dW
  (weak order 2 in η; ``sgd_sde(..., order=2)``),

each against its Richardson-extrapolated Euler–Maruyama solution (bias O(dt²)
with dt = η/m). The errors of every test function are fitted by
:func:`sde_engine.analysis.fit_order` with their Monte Carlo standard errors.
"""
import time

import numpy as np

from ..analysis import fit_order
from ..coupled import DEFAULT_LABELS, coupled_weak_error
from ..optimizers import sgd

#: The two SDEs compared, by their weak order in η.
SDE_ORDERS = (1, 2)


def sgd_sde_orders(problem, theta0, lrs, *, horizon=1.0, n_paths=8192, substeps=8, seed=0,
                   n_threads=None):
    """Weak errors at T = ``horizon`` of SGD against both SDEs, for each η in ``lrs``.

    Parameters
    ----------
    problem : Problem
        With Gaussian noise (the coupled estimator's condition).
    theta0 : array_like, shape (d,)
    lrs : array_like, shape (n,)
        Learning rates; ``horizon / lr`` must be whole.
    horizon : float
        T = k η.
    n_paths, substeps, seed, n_threads
        As in :func:`sde_engine.coupled_weak_error` (the same paths for both SDEs).

    Returns
    -------
    dict
        ``lrs``, ``labels`` (the test functions θ₁, ‖θ‖², f(θ), θ₁³),
        ``orders[str(p)]`` = {``error``, ``stderr``: (n, n_phi) lists, ``fits``:
        {label: OrderFit as dict}} for p = 1, 2, and ``config``, ``wall_s``.
    """
    lrs = np.asarray(lrs, dtype=float)
    steps = np.rint(horizon / lrs).astype(int)
    if np.any(np.abs(steps * lrs - horizon) > 1e-9 * horizon) or np.any(steps < 1):
        raise ValueError(f"`horizon` / lr must be a whole number of steps for every lr; "
                         f"horizon={horizon!r}, lrs={lrs.tolist()}")
    started = time.perf_counter()
    orders = {}
    for order in SDE_ORDERS:
        rows = [coupled_weak_error(problem, sgd(lr=lr), theta0, int(k), n_paths,
                                   substeps=substeps, seed=seed, n_threads=n_threads,
                                   sde_order=order).error()
                for lr, k in zip(lrs, steps)]
        error = np.array([r[0][-1] for r in rows])
        stderr = np.array([r[1][-1] for r in rows])
        orders[str(order)] = dict(
            error=error.tolist(), stderr=stderr.tolist(),
            fits={label: fit_order(lrs, error[:, q], stderr[:, q]).as_dict()
                  for q, label in enumerate(DEFAULT_LABELS)})
    return dict(lrs=lrs.tolist(), labels=list(DEFAULT_LABELS), orders=orders,
                config=dict(problem=problem.name, dim=problem.dim,
                            noise_scale=problem.noise_scale, theta0=np.asarray(theta0).tolist(),
                            horizon=horizon, n_paths=n_paths, substeps=substeps, seed=seed),
                wall_s=time.perf_counter() - started)
