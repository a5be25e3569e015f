"""The Adam SDE on a torch device against the Numba CPU engine, measured in the same run.

What is timed (work unit: one path advanced by one step, "path-steps"):

* ``torch sde``   the bias-corrected Adam SDE of a d-dimensional diagonal quadratic
  (:func:`adam_model`: σ0 = 1, ε0 = 1e-7, c1 = 10, c2 = 0.1) through
  ``simulate(model, backend="torch", device=...)``: torchsde Euler, diagonal noise
  (the torch form's noise is O(d) per path and step);
* ``numba sde``   the same SDE through the Numba engine on the CPU cores
  (``simulate(model.sde, ...)``). The model's diffusion is the dense (3d, d) matrix
  of general noise, O(d²) per path and step, so at d = 1000 it is run on few paths
  (its throughput does not depend on the number of paths beyond a few chunks);
* ``torch adam`` / ``numba adam``  the discrete Adam runs on the same problem
  (:func:`sde_engine.torch.discrete.run_optimizer_torch` and
  :func:`sde_engine.runner.run_optimizer`), O(d) on both sides.

Each torch size is also split into where the time goes: drawing the Brownian
increments alone, evaluating drift and diffusion alone (the same number of calls
``sdeint`` makes), and the rest (torchsde's per-step Python work and the device
synchronisation in its stepping loop: ``while curr_t < out_t``).
The per-step overhead is measured directly with a batch of one path.

Usage::

    python -m benchmarks.gpu_bench                      # CUDA if available, full sizes
    python -m benchmarks.gpu_bench --device cpu --quick # reduced CPU version
    python -m benchmarks.gpu_bench --dtype float32 --json out.json

Full sizes: d = 10 with 10^5, 10^6, 10^7 paths and d = 1000 with 10^5, 10^6 paths,
100 steps, chunks sized to fit half the free device memory, float32 on the device
(``--dtype float64`` for the engine's precision). The Numba engine runs on 2
threads (``--numba-threads``), the reference machine of the issue's target
(20× at ≥ 10^6 paths). Compile time of the Numba kernels is excluded (one small
warm-up run first). On a machine with a 10-minute limit per command run
``--dims 10`` and ``--dims 1000`` separately.
:func:`bench_rows` returns ``[(name, path-steps per second), ...]`` for the
benchmark table.
"""
import argparse
import json
import time

import numpy as np

import sde_engine as se
from sde_engine.models import adam_sde
from sde_engine.optimizers import adam
from sde_engine.problems import quadratic
from sde_engine.runner import run_optimizer

FULL = {10: (10**5, 10**6, 10**7), 1000: (10**5, 10**6)}
QUICK = {10: (10**3, 10**4, 10**5), 1000: (10**2, 10**3)}
NUMBA_PATHS = {10: 20_000, 1000: 200}
BYTES_PER_STATE_ENTRY = 16      # live temporaries per state entry in an Euler step, estimated


def adam_model(dim):
    """Bias-corrected Adam SDE on f = ½ Σ h_i θ_i², h in [0.5, 2], Σ diagonal in [1, 2]."""
    problem = quadratic(np.linspace(0.5, 2.0, dim), Sigma=np.linspace(1.0, 2.0, dim),
                        noise_scale=10.0)
    return adam_sde(problem, lr=0.1, betas=(0.9, 0.999), eps=1e-6)


def _sync(device):
    import torch
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, device):
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def chunk_for(n_paths, state_dim, device, dtype):
    """Paths per batch so that one batch's temporaries fit in half the free memory."""
    import torch
    size = torch.finfo(getattr(torch, dtype)).bits // 8
    if str(device).startswith("cuda"):
        free = torch.cuda.mem_get_info(torch.device(device))[0] // 2
    else:
        free = 2 * 2**30
    per_path = state_dim * size * BYTES_PER_STATE_ENTRY
    return int(max(1, min(n_paths, free // per_path)))


def time_torch_sde(model, n_paths, n_steps, device, dtype, seed=0):
    """Seconds for ``n_paths`` paths of ``n_steps`` Euler steps on the device."""
    from sde_engine.torch.simulate import simulate_torch
    x0 = model.initial_state(np.ones(model.dim))
    chunk = chunk_for(n_paths, model.sde.dim, device, dtype)

    def run(n, steps):
        simulate_torch(model, x0, model.t_span(steps), model.h, n, method="euler_maruyama",
                       seed=seed, save_at=None, observables=None, n_observables=None,
                       save_paths=False, save_brownian=False, brownian_dt=None,
                       on_divergence="warn", path_offset=0, n_threads=None, device=device,
                       dtype=dtype, chunk_paths=chunk)

    run(min(n_paths, chunk), 2)                            # warm-up (allocator, kernels)
    return _timed(lambda: run(n_paths, n_steps), device), chunk


def time_torch_parts(model, batch, n_steps, device, dtype):
    """Seconds for the Brownian draws alone and for drift + diffusion alone, one batch."""
    import torch
    from sde_engine.torch.models import torch_form
    tdtype = getattr(torch, dtype)
    form = torch_form(model, device, tdtype)
    y = torch.as_tensor(model.initial_state(np.ones(model.dim)), dtype=tdtype,
                        device=device).expand(batch, -1).contiguous()
    gen = torch.Generator(device=device)
    gen.manual_seed(0)
    t = torch.tensor(0.5, dtype=tdtype, device=device)

    def draws():
        for _ in range(n_steps):
            torch.randn(y.shape, generator=gen, dtype=tdtype, device=device)

    def coefficients():
        for _ in range(n_steps):
            form.f(t, y)
            form.g(t, y)

    with torch.no_grad():
        return _timed(draws, device), _timed(coefficients, device)


def time_torch_adam(model, n_runs, n_steps, device, dtype, seed=0):
    """Seconds for ``n_runs`` discrete Adam runs of ``n_steps`` in torch."""
    from sde_engine.torch.discrete import run_optimizer_torch
    opt = _optimizer(model)
    chunk = chunk_for(n_runs, 3 * model.dim, device, dtype)

    def run(n, steps):
        run_optimizer_torch(model.problem, opt, np.ones(model.dim), steps, n, seed=seed,
                            save_runs=False, device=device, dtype=dtype, chunk_runs=chunk,
                            on_divergence="warn")

    run(min(n_runs, chunk), 2)
    return _timed(lambda: run(n_runs, n_steps), device)


def _optimizer(model):
    hp = model.hyperparameters
    return adam(lr=hp["lr"], betas=hp["betas"], eps=hp["eps"])


def time_numba_sde(model, n_paths, n_steps, seed=0):
    x0 = model.initial_state(np.ones(model.dim))
    se.simulate(model.sde, x0, model.t_span(2), model.h, 8, seed=seed, save_paths=False)
    return _timed(lambda: se.simulate(model.sde, x0, model.t_span(n_steps), model.h, n_paths,
                                      seed=seed, save_paths=False, on_divergence="warn"),
                  "cpu")


def time_numba_adam(model, n_runs, n_steps, seed=0):
    opt = _optimizer(model)
    theta0 = np.ones(model.dim)
    run_optimizer(model.problem, opt, theta0, 2, 8, seed=seed)
    return _timed(lambda: run_optimizer(model.problem, opt, theta0, n_steps, n_runs,
                                        seed=seed, save_runs=False, on_divergence="warn"),
                  "cpu")


def run_benchmark(device="cuda", quick=False, dtype="float32", n_steps=None, dims=None,
                  numba_threads=2, log=print):
    """Measure every row; returns a list of dicts (one per dim, n_paths and engine).

    ``numba_threads``: threads of the Numba engine (default 2, the engine's reference
    machine, whatever the host has).
    """
    import numba
    import torch
    numba.set_num_threads(min(numba_threads, numba.config.NUMBA_NUM_THREADS))
    sizes = QUICK if quick else FULL
    n_steps = n_steps or (20 if quick else 100)
    records = []
    for dim in dims or sizes:
        model = adam_model(dim)
        numba_paths = NUMBA_PATHS[dim] // (10 if quick else 1)
        t = time_numba_sde(model, numba_paths, n_steps)
        numba_sde = numba_paths * n_steps / t
        t = time_numba_adam(model, numba_paths * (10 if dim <= 10 else 100), n_steps)
        numba_adam = numba_paths * (10 if dim <= 10 else 100) * n_steps / t
        base = dict(dim=dim, n_steps=n_steps, device=str(device), dtype=dtype,
                    numba_threads=numba.get_num_threads())
        records.append(dict(base, engine="numba sde", n_paths=numba_paths,
                            path_steps_per_s=numba_sde))
        records.append(dict(base, engine="numba adam",
                            n_paths=numba_paths * (10 if dim <= 10 else 100),
                            path_steps_per_s=numba_adam))
        log(f"d={dim}: numba sde {numba_sde:.3g} path-steps/s, numba adam {numba_adam:.3g}")
        t_one = time_torch_sde(model, 1, n_steps, device, dtype)[0]
        records.append(dict(base, engine="torch sde", n_paths=1,
                            path_steps_per_s=n_steps / t_one,
                            overhead_per_step_s=t_one / n_steps))
        log(f"d={dim}: torch sde per-step overhead (1 path) {t_one / n_steps * 1e3:.3g} ms")
        for n in sizes[dim]:
            t_sde, chunk = time_torch_sde(model, n, n_steps, device, dtype)
            t_draw, t_coef = time_torch_parts(model, chunk, n_steps, device, dtype)
            n_chunks = -(-n // chunk)
            t_adam = time_torch_adam(model, n, n_steps, device, dtype)
            rate = n * n_steps / t_sde
            records.append(dict(
                base, engine="torch sde", n_paths=n, chunk_paths=chunk, seconds=t_sde,
                path_steps_per_s=rate, ratio_to_numba=rate / numba_sde,
                share_brownian=t_draw * n_chunks / t_sde,
                share_drift_diffusion=t_coef * n_chunks / t_sde))
            records.append(dict(base, engine="torch adam", n_paths=n, chunk_paths=chunk,
                                seconds=t_adam, path_steps_per_s=n * n_steps / t_adam,
                                ratio_to_numba=n * n_steps / t_adam / numba_adam))
            log(f"d={dim} n={n:.0e}: torch sde {rate:.3g} path-steps/s "
                f"(x{rate / numba_sde:.3g} numba; brownian {t_draw * n_chunks / t_sde:.0%}, "
                f"f+g {t_coef * n_chunks / t_sde:.0%}), torch adam "
                f"{n * n_steps / t_adam:.3g} (x{n * n_steps / t_adam / numba_adam:.3g})")
        del model
        if str(device).startswith("cuda"):
            torch.cuda.empty_cache()
    return records


def bench_rows(device="cuda", quick=False, dtype="float32"):
    """Rows ``(name, path-steps per second)`` for the benchmark table."""
    return [(f"{r['engine']} d={r['dim']} n={r['n_paths']} ({r['device']}, {r['dtype']})",
             r["path_steps_per_s"]) for r in run_benchmark(device, quick, dtype, log=lambda s: None)]


def main(argv=None):
    import torch
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="reduced sizes (CPU check)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--steps", type=int, default=None, help="steps per path")
    parser.add_argument("--dims", type=int, nargs="+", default=None, choices=(10, 1000))
    parser.add_argument("--numba-threads", type=int, default=2,
                        help="threads of the Numba CPU engine (default 2)")
    parser.add_argument("--json", default=None, help="write the records to this file")
    args = parser.parse_args(argv)
    info = dict(torch=torch.__version__, device=args.device,
                name=(torch.cuda.get_device_name(torch.device(args.device))
                      if args.device.startswith("cuda") else "cpu"))
    print(f"gpu_bench: {info}")
    records = run_benchmark(args.device, args.quick, args.dtype, args.steps, args.dims,
                            args.numba_threads)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(info=info, records=records), fh, indent=1)
    return records


if __name__ == "__main__":
    main()
