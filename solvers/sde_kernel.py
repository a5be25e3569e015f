"""The SDE path kernel: one step of a fixed-step scheme on Brownian increments.

Plugs a scheme's ``step`` into the generic loop of :mod:`solvers.driver`.
``setup = (t0, dt, refine, noise_dim, sqrt_fine_dt, n_draws, alpha,
levy_scale)``: step k runs
from t0 + (k−1) dt to t0 + k dt on the increment ΔW made of ``refine`` fine
increments of size dt/refine, summed in order (fine-step-major), so that runs
with different dt and the same fine size see the same Brownian path.
ΔW has ``n_draws`` ≥ noise_dim entries: the first noise_dim drive the SDE,
the others are extra N(0, dt) variables a scheme may ask for
(:attr:`solvers.registry.Scheme.draws_per_step`), e.g. to build discrete
increments; for Euler–Maruyama n_draws = noise_dim.
The fine increments are the path's block normal sequence
(:func:`solvers.rng.fill_normal_block`) in order, drawn for up to
:data:`BLOCK_NORMALS` of them at a time before the steps that use them.
``record`` writes W (shape (noise_dim,)) when ``save_w``: the sum of the
first noise_dim entries of ΔW as the step left them (a scheme with discrete
increments writes them there, so W is the walk it was driven by);
``observe`` calls the user's ``observables(t, x, params, out)`` at
t = t0 + k dt.

α-stable driving noise (``stable=True``, :mod:`solvers.heavy_tails`): the
step's increment is ΔL_j = dt^{1/α} X_j (``levy_scale`` = dt^{1/α}) with
X_j ~ S_α made from the pair of block normals (j, noise_dim + j) of the step
(n_draws = 2 noise_dim, drawn unscaled), so the scheme's ``dW`` (length
noise_dim) holds ΔL and ``record`` writes the Lévy path L. Refinement does
not apply (``alpha`` and ``levy_scale`` are unused otherwise).
"""
import numpy as np
from numba import njit

from .driver import PathKernel, make_driver
from .heavy_tails import stable_from_normals
from .rng import fill_normal_block

#: Normals drawn per block (rounded down to whole steps, at least one step).
BLOCK_NORMALS = 1024


def make_sde_kernel(step, diagonal, observables, refined=False, save_w=False, stable=False):
    """Path kernel for a scheme step ``step(t, dt, x, dW, params, work, x_new)``.

    Parameters
    ----------
    step : numba dispatcher
        From a scheme's ``make_step``; its ``work`` is ``(f, g, g_aux, x_aux)``.
    diagonal : bool
        Diagonal noise (diffusion shape (d,)) or general (shape (d, m)).
    observables : numba dispatcher
        ``observables(t, x, params, out)``.
    refined : bool
        Whether ΔW is summed from ``refine`` > 1 fine increments.
    save_w : bool
        Whether the Brownian path is accumulated for ``record``.
    stable : bool
        Whether the driving noise is α-stable (module docstring) rather than
        Brownian; not with ``refined``.
        These three are compile-time constants rather than ``setup`` entries:
        branching on them every step cost about 7% of the Euler–Maruyama
        throughput.

    Returns
    -------
    PathKernel
    """

    @njit(inline="always")
    def steps_per_block(setup):
        return max(1, BLOCK_NORMALS // (setup[2] * setup[5]))

    @njit
    def new_work(d, setup):
        m, n = setup[3], setup[5]
        dW = np.empty(m if stable else n)
        W = np.empty(m)
        f = np.empty(d)
        x_aux = np.empty(d)
        if diagonal:
            g = np.empty(d)
            g_aux = np.empty(d)
        else:
            g = np.empty((d, m))
            g_aux = np.empty((d, m))
        block = steps_per_block(setup) * setup[2] * n
        return (dW, W, (f, g, g_aux, x_aux), np.empty(block),
                np.empty(block, dtype=np.int64), np.empty(block, dtype=np.uint64))

    @njit(inline="always")
    def draw_block(n_steps, rng, work, setup):
        # unrefined Brownian increments are drawn scaled; fine ones are summed
        # first, and α-stable ones are made from unit normals
        scale = 1.0 if refined or stable else setup[4]
        fill_normal_block(rng, work[3], n_steps * setup[2] * setup[5], scale, work[4], work[5])

    @njit(inline="always")
    def start_path(work, setup):
        work[1][:] = 0.0

    @njit(inline="always")
    def advance(k, i, x, rng, params, work, setup, x_new):
        # Index `work` for the arrays this step uses instead of unpacking it:
        # every array unpacked here costs a reference-count update per step
        # (6% of the Euler–Maruyama throughput). Scalars cost nothing.
        t0, dt, refine, m, sqrt_fine_dt, n, alpha, levy_scale = setup
        dW = work[0]
        normals = work[3]
        if stable:
            first = i * n
            for j in range(m):
                dW[j] = levy_scale * stable_from_normals(alpha, normals[first + j],
                                                         normals[first + m + j])
        elif not refined:
            # i * n, not i * refine * n with refine = 1: the run-time factor
            # cost 12% of the Euler–Maruyama throughput
            first = i * n
            for j in range(n):
                dW[j] = normals[first + j]
        else:
            first = i * refine * n
            for j in range(n):
                dW[j] = 0.0
            for r in range(refine):
                for j in range(n):
                    dW[j] += normals[first + r * n + j]
            for j in range(n):
                dW[j] *= sqrt_fine_dt
        step(t0 + (k - 1) * dt, dt, x, dW, params, work[2], x_new)
        if save_w:
            W = work[1]
            for j in range(m):
                W[j] += dW[j]

    @njit(inline="always")
    def observe(k, x, params, work, setup, out):
        observables(setup[0] + k * setup[1], x, params, out)

    @njit(inline="always")
    def record(work, setup, out):
        out[:] = work[1]

    return PathKernel(new_work, start_path, steps_per_block, draw_block, advance, observe,
                      record)


def make_sde_driver(step, diagonal, observables, refined=False, save_w=False, stable=False):
    """Compiled path loop (:func:`solvers.driver.make_driver`) for one SDE scheme step."""
    return make_driver(make_sde_kernel(step, diagonal, observables, refined, save_w, stable))
