"""Run the chunks of a study on a Dask cluster, with the numbers of an in-process run.

A study (:func:`sde_engine.studies.weak_order.run_order_study`) hands its
missing units of work — ``(point, chunk)`` argument tuples — to an *executor*
and merges what comes back in chunk order. :class:`DaskExecutor` is the
executor that sends the units to the workers of a ``dask.distributed`` cluster:

* a unit is a pure function of (config, point, chunk): chunk c of a point draws
  only from the streams (seed, path) of its own paths (``path_offset``), so it
  returns the same streamed moments (count, mean, M2 per test function and
  save time) on any worker, on any retry;
* the study reduces the chunks in chunk-index order, never in completion order,
  so the result is bit-identical to the in-process study with the same seed,
  whatever the number of workers;
* a worker that dies takes its running units with it; the scheduler runs them
  again elsewhere (same streams, same numbers). Each unit is checkpointed by the
  study, in the client, as its future completes, so a study whose client or
  cluster was stopped resumes by computing only the units that are missing;
* at most a few units per worker thread are in flight (:data:`IN_FLIGHT_PER_THREAD`),
  so a study of 10^10 paths does not put 10^5 tasks on the scheduler at once,
  and workers that join later get work as soon as a unit completes.

Dask is imported only when an executor is started; the core engine never
imports it (``pip install 'sde-engine[distributed]'``).

Workers should run one thread each (``dask worker --nthreads 1``): Numba's
default threading layer does not accept parallel kernels launched from several
threads of one process at once. A unit uses ``numba_threads`` Numba threads.
"""
import os

from .. import validation as check
from .units import point_label, tag_failure

INSTALL_HINT = "pip install 'sde-engine[distributed]'"
IN_FLIGHT_PER_THREAD = 2


def require_distributed():
    """Import and return ``dask.distributed``; an ImportError says how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(f"running a study on a Dask cluster needs dask.distributed, which is "
                          f"not installed ({exc}); install it with: {INSTALL_HINT}") from exc
    return distributed


def evaluate_unit(fn, cfg, unit, n_threads):
    """Worker side of one unit: ``fn(cfg, *unit)`` with ``n_threads`` Numba threads.

    ``n_threads`` is capped at the worker's own limit (``NUMBA_NUM_THREADS``,
    which Numba refuses to exceed); the thread count never changes the numbers.
    """
    from ..simulate import numba_threads
    from .units import evaluate

    if n_threads is not None:
        n_threads = min(n_threads, thread_limit())
    with numba_threads(n_threads):
        return evaluate(fn, cfg, unit)


def thread_limit():
    """The most Numba threads this process may use (``NUMBA_NUM_THREADS``, else the cores)."""
    import numba

    return max(1, int(numba.config.NUMBA_NUM_THREADS))


def _cpu_count():
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:      # not on Linux
        cores = os.cpu_count() or 1
    return min(cores, thread_limit())


class DaskExecutor:
    """Evaluate a study's units on a ``dask.distributed`` cluster.

    Exactly one of ``scheduler``, ``workers`` or ``client`` says which cluster.
    Use it as a context manager (it then closes what it opened) and pass it as
    ``executor=`` to :func:`~sde_engine.studies.weak_order.run_order_study`, or
    call :func:`run_order_study_distributed`.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler, e.g. ``"tcp://10.0.0.5:8786"``.
    workers : int, optional
        Start a local cluster of this many worker processes, one thread each,
        without a dashboard (closed on exit).
    client : distributed.Client, optional
        An existing client (left open on exit).
    numba_threads : int, optional
        Numba threads per unit, capped on each worker at its
        ``NUMBA_NUM_THREADS``. Default: the machine's cores (at most
        ``NUMBA_NUM_THREADS``) divided among the local workers with ``workers``,
        Numba's own setting otherwise.
    timeout : float
        Seconds to wait for the scheduler when connecting.

    Attributes
    ----------
    workers : int
        The most workers connected to the scheduler while units ran (the
        study records it in its result file).
    """

    def __init__(self, *, scheduler=None, workers=None, client=None, numba_threads=None,
                 timeout=30.0):
        given = [name for name, v in (("scheduler", scheduler), ("workers", workers),
                                      ("client", client)) if v is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of `scheduler`, `workers` or `client`, "
                             f"got {given or 'none'}")
        if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
            raise ValueError(f"`scheduler` must be an address such as 'tcp://HOST:8786', "
                             f"got {scheduler!r}")
        if workers is not None:
            workers = check.positive_int(workers, "workers")
        if numba_threads is not None:
            numba_threads = check.positive_int(numba_threads, "numba_threads")
        elif workers is not None:
            numba_threads = max(1, _cpu_count() // workers)
        self.scheduler = scheduler
        self.n_local = workers
        self.numba_threads = numba_threads
        self.timeout = check.positive_float(timeout, "timeout")
        self.client = client
        self._owned = []
        self.workers = 0

    # ---- lifecycle ------------------------------------------------------------------
    def start(self):
        """Connect to the scheduler or start the local cluster (done once)."""
        if self.client is not None:
            return self
        distributed = require_distributed()
        if self.n_local is not None:
            cluster = distributed.LocalCluster(n_workers=self.n_local, threads_per_worker=1,
                                               processes=True, dashboard_address=None)
            self._owned.append(cluster)
            self.client = distributed.Client(cluster)
        else:
            try:
                self.client = distributed.Client(self.scheduler, timeout=self.timeout)
            except OSError as exc:
                raise ConnectionError(f"cannot reach the Dask scheduler at {self.scheduler!r} "
                                      f"within {self.timeout:g} s: {exc}") from None
        self._owned.insert(0, self.client)
        return self

    def close(self):
        """Close the client and the local cluster if this executor opened them."""
        while self._owned:
            self._owned.pop(0).close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # ---- the executor protocol ------------------------------------------------------
    def __call__(self, fn, cfg, units):
        """Yield ``(unit, fn(cfg, *unit))`` for every unit, in completion order.

        ``fn`` and ``cfg`` must pickle (module-level functions and frozen
        configs do). A failed unit raises here; the units still in flight
        are then cancelled.
        """
        distributed = require_distributed()
        client = self.start().client
        todo = iter(list(units))
        in_flight = {}
        done = distributed.as_completed()

        def top_up():
            nthreads = client.nthreads()
            self.workers = max(self.workers, len(nthreads))
            limit = max(IN_FLIGHT_PER_THREAD * sum(nthreads.values()), IN_FLIGHT_PER_THREAD)
            while len(in_flight) < limit:
                unit = next(todo, None)
                if unit is None:
                    return
                future = client.submit(evaluate_unit, fn, cfg, unit, self.numba_threads,
                                       pure=False)
                in_flight[future] = unit
                done.add(future)

        try:
            top_up()
            for future in done:
                unit = in_flight.pop(future)
                try:
                    result = future.result()
                except FloatingPointError as exc:
                    raise tag_failure(exc, point_label(unit))
                future.release()
                top_up()
                yield unit, result
        finally:
            if in_flight:
                client.cancel(list(in_flight))


def run_order_study_distributed(cfg, out_dir=None, *, scheduler=None, workers=None,
                                client=None, numba_threads=None, **study_kwargs):
    """:func:`~sde_engine.studies.weak_order.run_order_study` on a Dask cluster.

    Parameters
    ----------
    cfg, out_dir, **study_kwargs
        As for ``run_order_study`` (``max_points``, ``progress``, ``plot``, ...).
    scheduler, workers, client, numba_threads
        The cluster, as for :class:`DaskExecutor` (exactly one of the first three).

    Returns
    -------
    OrderResult
        Bit-identical numbers to the in-process study; ``record["workers"]``
        is the number of Dask workers.
    """
    from .weak_order import run_order_study

    executor = DaskExecutor(scheduler=scheduler, workers=workers, client=client,
                            numba_threads=numba_threads)
    with executor:
        return run_order_study(cfg, out_dir, executor=executor, **study_kwargs)
