"""General (non-diagonal) noise: the engine per coordinate against its diagonal kernel.

Workload (issue 17, item 3): the 5-D linear SDE with 4 Brownian motions of
Rößler (2010, eq. 7.4), as sdeint's tests use it: dX = A X dt + Σ_k B₀ X dW_k
with A = 0.05 off the diagonal and −1.5 on it, B₀ = 0.01 off and 0.2 on,
X₀ = 1, Euler–Maruyama, dt = 1/n_steps on [0, 1]. Work unit: one
path·dimension·step, so rates compare with the diagonal kernel per coordinate.
Contenders, timed side by side (best of interleaved rounds, compile excluded):

* ``general, loops``    — drift and diffusion written into ``out`` with loops
                          (the drift with :func:`sde_engine.dense.matvec`; no
                          allocation); the diffusion's columns are all B₀X,
                          each row computed once (as the torchsde form does);
* ``general, A @ x``    — the same products written ``out[:] = A @ x``, as one
                          would in NumPy (an allocation and a BLAS call per
                          product and step; the engine warns about it);
* ``diagonal 5-D``      — 5-D geometric Brownian motion, diagonal noise: the
                          diagonal kernel at the same dimension;
* ``torchsde+dt``       — ``torchsde.sdeint(method="euler")``, general noise,
                          float64, 2 threads, a BrownianInterval told dt.

Target: general noise (loops) within 1.5× of the diagonal kernel's rate per
coordinate. Usage::

    python -m benchmarks.general_noise_bench            # 10^4 paths x 1000 steps
    python -m benchmarks.general_noise_bench --quick    # 10^3 paths x 200 steps
"""
import argparse

import numpy as np

import sde_engine as se
from sde_engine.dense import matvec

from .gbm import MU, SIGMA, diffusion as _gbm_diffusion, drift as _gbm_drift
from .timing import best_interleaved

D, M = 5, 4
THREADS = 2
TARGET = 1.5
A = np.full((D, D), 0.05) + np.diag(np.full(D, -1.55))
B0 = np.full((D, D), 0.01) + np.diag(np.full(D, 0.19))


def _drift_loops(t, x, p, out):
    matvec(A, x, out)


def _diffusion_loops(t, x, p, out):
    # every column is B0 x: each row once. D and M are module constants, so the
    # compiler unrolls these loops (out.shape[0] as the bound: 1.74e8 instead of 2.2e8)
    for i in range(D):
        acc = 0.0
        for j in range(D):
            acc += B0[i, j] * x[j]
        for k in range(M):
            out[i, k] = acc


def _drift_at(t, x, p, out):
    out[:] = A @ x


def _diffusion_at(t, x, p, out):
    g = B0 @ x
    for k in range(out.shape[1]):
        out[:, k] = g


def _engine_call(sde, n_paths, n_steps):
    def call(n):
        return se.simulate(sde, np.ones(D), (0.0, 1.0), 1.0 / n_steps, n, seed=1,
                           n_threads=THREADS)

    call(8)                                       # compile
    return lambda: call(n_paths)


def _torchsde_call(n_paths, n_steps):
    import torch
    import torchsde

    a, b0 = torch.tensor(A), torch.tensor(B0)

    class R74(torch.nn.Module):
        noise_type = "general"
        sde_type = "ito"

        def f(self, t, y):
            return y @ a.T

        def g(self, t, y):
            return (y @ b0.T).unsqueeze(-1).expand(-1, D, M)

    sde, dt = R74(), 1.0 / n_steps

    def call(n):
        previous = torch.get_num_threads()
        torch.set_num_threads(THREADS)
        try:
            y0 = torch.ones(n, D, dtype=torch.float64)
            bm = torchsde.BrownianInterval(t0=0.0, t1=1.0, size=(n, M), dtype=torch.float64,
                                           dt=dt)
            with torch.no_grad():
                return torchsde.sdeint(sde, y0, torch.tensor([0.0, 1.0], dtype=torch.float64),
                                       method="euler", dt=dt, bm=bm)
        finally:
            torch.set_num_threads(previous)

    call(8)
    return lambda: call(n_paths)


def measure(n_paths, n_steps, repeats, torchsde=True):
    """Rates in path·dim-steps per second, ``{name: rate}``."""
    import warnings

    from sde_engine.user_functions import AllocationWarning

    gbm = se.SDE(_gbm_drift, _gbm_diffusion, dim=D, params=np.array([MU, SIGMA]))
    loops = se.SDE(_drift_loops, _diffusion_loops, dim=D, noise="general", noise_dim=M)
    at = se.SDE(_drift_at, _diffusion_at, dim=D, noise="general", noise_dim=M)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AllocationWarning)   # measured on purpose
        calls = {"general, loops": _engine_call(loops, n_paths, n_steps),
                 "general, A @ x": _engine_call(at, n_paths, n_steps),
                 "diagonal 5-D": _engine_call(gbm, n_paths, n_steps)}
    if torchsde:
        try:
            calls["torchsde+dt"] = _torchsde_call(n_paths, n_steps)
        except ImportError:
            pass
    seconds = best_interleaved(calls, repeats)
    return {name: n_paths * D * n_steps / t for name, t in seconds.items()}


def table_lines(rates, n_paths, n_steps):
    """The table, then the target line."""
    loops = rates["general, loops"]
    lines = [f"General noise: Rossler (2010) eq. 7.4, {D}-D, {M} noises, Euler-Maruyama, "
             f"{n_paths} paths x {n_steps} steps, {THREADS} threads (path*dim-steps per "
             f"second; ratio = general, loops / this)",
             f"{'method':16s} {'rate':>12s} {'loops/this':>11s}"]
    lines += [f"{name:16s} {rate:12.4g} {loops / rate:11.2f}" for name, rate in rates.items()]
    ratio = rates["diagonal 5-D"] / loops
    lines.append(f"diagonal 5-D / general (loops)  {ratio:5.2f}  target <= {TARGET:g}  "
                 f"{'met' if ratio <= TARGET else 'MISSED'}")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.general_noise_bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^3 paths x 200 steps")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-torchsde", action="store_true")
    args = parser.parse_args(argv)
    n_paths, n_steps = (1_000, 200) if args.quick else (10_000, 1000)
    rates = measure(n_paths, n_steps, args.repeats, torchsde=not args.no_torchsde)
    print("\n".join(table_lines(rates, n_paths, n_steps)))


if __name__ == "__main__":
    main()
