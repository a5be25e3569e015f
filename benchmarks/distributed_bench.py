"""Throughput of a weak-order study point in process and on local Dask clusters.

    python -m benchmarks.distributed_bench [--paths 10000000] [--workers 1,2] [--repeats 2]

One RMSprop point (Gaussian quadratic, d = 1, η = 0.1, T = 2: 200 steps per
run) is run with ``paths`` runs split in chunks of ``chunk_paths``:

* in process (:class:`~sde_engine.studies.weak_order.InProcess`, all cores
  through Numba's threads);
* on a ``LocalCluster`` of N worker processes for each N of ``--workers``
  (one Dask thread each, the cores divided among them as Numba threads).

Compilation is excluded everywhere: each side first compiles the kernels (on
every worker, through ``client.run``), and cluster start-up is reported
separately. The clusters stay up and the modes are timed in turn, ``--repeats``
rounds of (in process, 1 worker, 2 workers, ...): the speed of this shared
machine drifts by up to 40% within minutes (the same in-process run took 69 s
and 100 s a quarter of an hour apart), so only interleaved timings compare.
The overhead of the distribution is best t_cluster / best t_in_process − 1 at
equal cores; the issue's target is under 15% at 10^7 paths. Every run is
checked to give the first in-process run's numbers bit for bit.
"""
import argparse
import os
import time

from sde_engine.studies.distributed import DaskExecutor, evaluate_unit
from sde_engine.studies.order_config import build_config
from sde_engine.studies.weak_order import discrete_chunk, run_order_study

CONFIG = dict(algorithm="rmsprop", c2=1.0, u0=[0.5], sigma0=1.0, eps0=0.1, horizon=2.0,
              lrs=[0.1], seed=0, tests=["theta1", "theta_sq", "loss"])


def _timed_study(cfg, executor=None):
    start = time.perf_counter()
    result = run_order_study(cfg, None, plot=False, progress=False, executor=executor)
    return time.perf_counter() - start, result.record


def _discrete(record):
    return {t: (p["discrete"].tolist(), p["discrete_stderr"].tolist())
            for t, p in record["points"].items()}


def _start_cluster(n, warm, lr):
    """A started DaskExecutor of ``n`` local workers with compiled kernels, and its start-up time."""
    start = time.perf_counter()
    ex = DaskExecutor(workers=n).start()
    ex.client.run(evaluate_unit, discrete_chunk, warm, (lr, 0, 1024), ex.numba_threads)
    return ex, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.distributed_bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=10_000_000)
    parser.add_argument("--chunk-paths", type=int, default=262_144)
    parser.add_argument("--workers", default="1,2", help="comma-separated cluster sizes")
    parser.add_argument("--repeats", type=int, default=2,
                        help="rounds of interleaved timings; the best of each mode is compared")
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args(argv)
    cfg = build_config({**CONFIG, "paths": args.paths, "chunk_paths": args.chunk_paths})
    warm = build_config({**CONFIG, "paths": 1024, "chunk_paths": 1024})
    lr = cfg.lrs[0]
    work = cfg.paths * cfg.n_steps(lr)
    sizes = [int(x) for x in args.workers.split(",") if x.strip()]
    print(f"{cfg.algorithm}, lr {lr:g}, {cfg.n_steps(lr)} steps, {cfg.paths} paths in "
          f"{-(-cfg.paths // cfg.chunk_paths)} chunks of {cfg.chunk_paths}; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")

    _timed_study(warm)                                   # compile in process
    modes = {"in process": (None, 0.0)}
    for n in sizes:
        modes[f"dask {n} worker(s)"] = _start_cluster(n, warm, lr)
    times = {mode: [] for mode in modes}
    identical = {mode: True for mode in modes}
    ref = None
    try:
        for _ in range(args.repeats):
            for mode, (ex, _) in modes.items():
                t, rec = _timed_study(cfg, ex)
                ref = ref or _discrete(rec)
                times[mode].append(t)
                identical[mode] &= _discrete(rec) == ref
    finally:
        for ex, _ in modes.values():
            if ex is not None:
                ex.close()
    best_in = min(times["in process"])
    rows = []
    print(f"{'mode':<16} {'start-up s':>10} {'best s':>8} {'path-steps/s':>13} {'overhead':>9}"
          f"  identical  all wall times (s)")
    for mode, (ex, startup) in modes.items():
        best = min(times[mode])
        rows.append(dict(mode=mode, workers=ex.n_local if ex else 1, startup_s=startup,
                         wall_s=best, all_wall_s=times[mode], path_steps_per_s=work / best,
                         overhead=best / best_in - 1, identical=identical[mode]))
        print(f"{mode:<16} {startup:10.1f} {best:8.2f} {work / best:13.3e} "
              f"{best / best_in - 1:8.1%}  {str(identical[mode]):9s}  "
              f"{', '.join(f'{t:.1f}' for t in times[mode])}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if args.json:
        from sde_engine.studies.results import write_json

        write_json(args.json, dict(config=cfg.as_dict(), path_steps=work,
                                   cores=os.cpu_count(), rows=rows))
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
