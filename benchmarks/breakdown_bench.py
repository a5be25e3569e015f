"""Where the Euler–Maruyama cycles go: words, normal transform, step, driver.

The workload of ``python -m benchmarks`` (10-D diagonal-noise GBM, 2 threads) run
through the engine's own driver with parts of its path kernel switched off, all
timed side by side (best of interleaved rounds):

* ``engine``         — the SDE kernel as ``simulate`` compiles it;
* ``no normals``     — the same steps on increments that are all zero (drawn once):
                       step (with the user's drift and diffusion) + driver;
* ``driver only``    — no draws and a step that copies x: seeding each path's
                       streams, the block loop, the finiteness check;
* ``words only``     — the driver plus the xoshiro256++ words the normals need
                       (one 64-bit word per normal), no transform;
* ``normals only``   — the driver plus the block normals (words + ziggurat).

Differences of rates give each part's cost in ns per path·dim-step per core,
printed under the table. (The user's arithmetic cannot be told apart from the
step here: a variant whose drift and diffusion write constants ran no faster.)
Usage::

    python -m benchmarks.breakdown_bench            # 10^4 paths x 1000 steps
    python -m benchmarks.breakdown_bench --quick    # 10^3 paths x 200 steps
"""
import argparse

import numpy as np
from numba import njit

import sde_engine as se
from sde_engine.simulate import numba_threads
from solvers import euler_maruyama
from solvers.driver import make_driver, run_paths
from solvers.rng import _xoshiro_step
from solvers.sde_kernel import make_sde_kernel

from .gbm import MU, SIGMA, diffusion as _diffusion, drift as _drift
from .solver_bench import DIM, THREADS
from .timing import best_interleaved


@njit
def _no_observables(t, x, params, out):
    pass


def _kernels():
    """The path kernels of the table, built from the engine's SDE kernel."""
    gbm = se.SDE(_drift, _diffusion, dim=DIM)
    engine = make_sde_kernel(euler_maruyama.make_step(gbm), True, _no_observables)
    new_work, draw_block = engine.new_work, engine.draw_block

    @njit
    def zero_work(d, setup):
        work = new_work(d, setup)
        work[3][:] = 0.0
        return work

    @njit(inline="always")
    def no_draws(n_steps, rng, work, setup):
        pass

    @njit(inline="always")
    def copy_step(k, i, x, rng, params, work, setup, x_new):
        for j in range(x.shape[0]):
            x_new[j] = x[j]

    @njit(inline="always")
    def words_only(n_steps, rng, work, setup):
        # the words the normals need, written where the normals go (no transform)
        words = work[5]
        s0, s1, s2, s3 = rng[0], rng[1], rng[2], rng[3]
        for j in range(n_steps * setup[2] * setup[5]):
            words[j], s0, s1, s2, s3 = _xoshiro_step(s0, s1, s2, s3)
        rng[0], rng[1], rng[2], rng[3] = s0, s1, s2, s3

    return {
        "engine": engine,
        "no normals": engine._replace(new_work=zero_work, draw_block=no_draws),
        "driver only": engine._replace(draw_block=no_draws, advance=copy_step),
        "words only": engine._replace(draw_block=words_only, advance=copy_step),
        "normals only": engine._replace(draw_block=draw_block, advance=copy_step),
    }


def measure(n_paths, n_steps, repeats):
    """Rates in path·dim-steps per second, ``{name: rate}``."""
    x0 = np.ones((1, DIM))
    dt = 1.0 / n_steps
    setup = (0.0, dt, 1, DIM, dt ** 0.5, DIM, 2.0, 0.0)
    params = np.array([MU, SIGMA])
    save = np.array([n_steps], dtype=np.int64)
    calls = {}
    for name, kernel in _kernels().items():
        run = make_driver(kernel)

        def call(n, run=run):
            with numba_threads(THREADS):
                run_paths(run, x0, n_steps, save, params, setup, 1, 0, n, 0, save_x=False)

        call(8)                                   # compile
        calls[name] = lambda call=call: call(n_paths)
    seconds = best_interleaved(calls, repeats)
    return {name: n_paths * DIM * n_steps / t for name, t in seconds.items()}


def _ns(rate):
    """ns per path·dim-step on one core, at ``rate`` on THREADS cores."""
    return THREADS * 1e9 / rate


def table_lines(rates, n_paths, n_steps):
    """The table and the cost of each part (differences of the rows' times)."""
    lines = [f"Breakdown: {DIM}-D GBM, Euler-Maruyama, {n_paths} paths x {n_steps} steps, "
             f"{THREADS} threads",
             f"{'kernel':14s} {'rate':>12s} {'ns/step/core':>13s}"]
    lines += [f"{name:14s} {rate:12.4g} {_ns(rate):13.2f}" for name, rate in rates.items()]
    ns = {name: _ns(rate) for name, rate in rates.items()}
    parts = [
        ("driver (seeding, blocks, finiteness check)", ns["driver only"]),
        ("xoshiro256++ words", ns["words only"] - ns["driver only"]),
        ("ziggurat transform and its bookkeeping", ns["normals only"] - ns["words only"]),
        ("Euler-Maruyama step with the user's drift and diffusion",
         ns["no normals"] - ns["driver only"]),
        ("interaction (engine - normals only - no normals + driver)",
         ns["engine"] - ns["normals only"] - ns["no normals"] + ns["driver only"]),
    ]
    lines.append("")
    lines.append(f"parts of engine's {ns['engine']:.2f} ns per path*dim-step per core:")
    lines += [f"  {label:58s} {value:6.2f} ns" for label, value in parts]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.breakdown_bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^3 paths x 200 steps")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    n_paths, n_steps = (1_000, 200) if args.quick else (10_000, 1000)
    print("\n".join(table_lines(measure(n_paths, n_steps, args.repeats), n_paths, n_steps)))


if __name__ == "__main__":
    main()
