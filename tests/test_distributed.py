"""Weak-order studies on a Dask cluster give the in-process numbers bit for bit.

The quick tests use a LocalCluster of 2 worker processes (loopback, no
dashboard) and a synthetic chunk evaluator (NumPy, seeded by the chunk) so that
workers compile nothing; they check the executor's contract: same result as in
process, a worker that dies mid-run changes nothing, an interrupted run resumes
computing only the missing chunks. The slow tests run the real engine
(Numba compiles once per worker process, minutes on a loaded machine).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sde_engine.cli import main
from sde_engine.studies import Moments
from sde_engine.studies.order_config import build_config
from sde_engine.studies.results import to_jsonable
from sde_engine.studies.weak_order import (PointStore, discrete_chunk, fingerprint, point_name,
                                           run_order_study)

distributed = pytest.importorskip("distributed")
from sde_engine.studies.distributed import DaskExecutor, run_order_study_distributed  # noqa: E402

pytestmark = pytest.mark.distributed

SMALL = dict(algorithm="rmsprop", c2=1.0, u0=[0.5], horizon=2.0, lrs=[0.4, 0.2, 0.1],
             paths=3000, chunk_paths=500, seed=7, tests=["theta1", "theta_sq", "loss"])
N_UNITS = 3 * 6


def synthetic_chunk(cfg, lr, path_offset, n_paths):
    """Moments of 0.3 η² + noise, the noise seeded by (seed, offset, η): a pure function."""
    rng = np.random.default_rng([cfg.seed, path_offset, int(round(lr * 1e9))])
    return Moments.of(0.3 * lr**2 + 0.05 * rng.normal(size=(n_paths, len(cfg.tests))))


def zero_reference(cfg, lr):
    n = len(cfg.tests)
    return np.zeros(n), np.zeros(n), np.zeros(n)


class DieOnce:
    """Evaluator whose worker process dies (os._exit) the first time it meets ``unit``."""

    def __init__(self, evaluator, unit, marker):
        self.evaluator, self.unit, self.marker = evaluator, unit, marker

    def __call__(self, cfg, lr, path_offset, n_paths):
        if (lr, path_offset) == self.unit and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)
        return self.evaluator(cfg, lr, path_offset, n_paths)


class FailAt:
    """Evaluator that raises at ``unit``: an interrupted run."""

    def __init__(self, unit):
        self.unit = unit

    def __call__(self, cfg, lr, path_offset, n_paths):
        if (lr, path_offset) == self.unit:
            raise RuntimeError("simulated interruption")
        return synthetic_chunk(cfg, lr, path_offset, n_paths)


class Recording:
    """Executor wrapper that remembers the units it was given."""

    def __init__(self, inner):
        self.inner, self.units = inner, []

    @property
    def workers(self):
        return self.inner.workers

    def __call__(self, fn, cfg, units):
        self.units.extend(units)
        return self.inner(fn, cfg, units)


def assert_same_numbers(a, b):
    assert a["tests"] == b["tests"]
    for test in a["tests"]:
        for key, value in a["points"][test].items():
            np.testing.assert_array_equal(b["points"][test][key], value, err_msg=f"{test} {key}")
        assert json.dumps(to_jsonable(a["fits"][test])) == json.dumps(to_jsonable(b["fits"][test]))


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def _study(cfg, out=None, evaluator=synthetic_chunk, executor=None):
    return run_order_study(cfg, out, evaluator=evaluator, reference=zero_reference,
                           progress=False, plot=False, executor=executor)


# ---- without a cluster ---------------------------------------------------------------
def test_core_and_cli_never_import_dask():
    code = ("import sys, sde_engine, sde_engine.cli, sde_engine.studies.weak_order as w; "
            "sde_engine.cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_completion_order_does_not_change_the_result():
    class Reversed:
        workers = 1

        def __call__(self, fn, cfg, units):
            for unit in reversed(units):
                yield unit, fn(cfg, *unit)

    cfg = build_config(SMALL)
    assert_same_numbers(_study(cfg).record, _study(cfg, executor=Reversed()).record)


@pytest.mark.parametrize("kwargs, words", [
    ({}, "give exactly one of `scheduler`, `workers` or `client`"),
    ({"workers": 2, "scheduler": "tcp://127.0.0.1:8786"}, "give exactly one of"),
    ({"workers": 0}, "`workers` must be a positive integer, got 0"),
    ({"workers": 1.5}, "`workers` must be a positive integer, got 1.5"),
    ({"scheduler": " "}, "`scheduler` must be an address such as 'tcp://HOST:8786', got ' '"),
    ({"workers": 2, "numba_threads": 0}, "`numba_threads` must be a positive integer, got 0"),
])
def test_bad_executor_arguments_are_refused_before_any_work(kwargs, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(".", r"\.")):
        DaskExecutor(**kwargs)


def test_unreachable_scheduler_is_one_clear_error():
    with pytest.raises(ConnectionError, match="cannot reach the Dask scheduler at "
                                              "'tcp://127.0.0.1:1' within 2 s"):
        DaskExecutor(scheduler="tcp://127.0.0.1:1", timeout=2).start()


@pytest.mark.parametrize("flags, words", [
    (["--workers", "0"], "--workers must be ≥ 1, got 0"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"], "not allowed with argument"),
])
def test_cli_refuses_bad_cluster_flags_with_exit_2_and_writes_nothing(tmp_path, capsys, flags,
                                                                       words):
    out = tmp_path / "out"
    argv = ["order", "--out", str(out), "--algorithm", "rmsprop", "--c2", "1", "--u0", "0.5",
            "--horizon", "1", "--lrs", "0.4", "--paths", "100"] + flags
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sde-engine: error:") and words in err and "\n" not in err
    assert not out.exists()


# ---- on a local cluster of 2 worker processes ------------------------------------------
def test_two_workers_give_the_in_process_numbers_bit_for_bit(client, tmp_path):
    cfg = build_config(SMALL)
    here = _study(cfg)
    executor = Recording(DaskExecutor(client=client, numba_threads=1))
    there = _study(cfg, str(tmp_path / "run"), executor=executor)
    assert_same_numbers(here.record, there.record)
    assert len(executor.units) == N_UNITS
    saved = json.loads((tmp_path / "run" / "order.json").read_text())
    assert (saved["workers"], saved["paths"], saved["chunks"]) == (2, 3000, 6)
    assert saved["wall_s"] > 0
    for test in cfg.tests:      # JSON keeps every bit
        assert saved["points"][test]["discrete"] == here.record["points"][test]["discrete"].tolist()


def test_interrupted_cluster_run_resumes_with_only_the_missing_chunks(client, tmp_path):
    cfg = build_config(SMALL)
    out = str(tmp_path / "run")
    # units go out 2 per worker thread: (0.2, 0) is submitted only after 3 have come back
    with pytest.raises(RuntimeError, match="simulated interruption"):
        _study(cfg, out, evaluator=FailAt((0.2, 0)),
               executor=DaskExecutor(client=client, numba_threads=1))
    assert not os.path.exists(os.path.join(out, "order.json"))
    store, key = PointStore(out), fingerprint(cfg)
    saved = {(lr, off) for lr in cfg.lrs for off in store.load(point_name(lr), key)}
    assert 3 <= len(saved) < N_UNITS and (0.2, 0) not in saved
    executor = Recording(DaskExecutor(client=client, numba_threads=1))
    resumed = _study(cfg, out, executor=executor)
    assert sorted((lr, off) for lr, off, _ in executor.units) == sorted(
        (lr, off) for lr in cfg.lrs for off in range(0, 3000, 500) if (lr, off) not in saved)
    assert_same_numbers(_study(cfg).record, resumed.record)


def test_a_worker_killed_mid_run_changes_nothing(client, tmp_path):
    cfg = build_config(SMALL)
    marker = tmp_path / "died"
    killer = DieOnce(synthetic_chunk, (0.2, 1000), str(marker))
    there = _study(cfg, executor=DaskExecutor(client=client, numba_threads=1), evaluator=killer)
    assert marker.exists()          # a worker process did die holding that chunk
    assert_same_numbers(_study(cfg).record, there.record)
    client.wait_for_workers(2, timeout=120)     # the nanny restarted it


# ---- the real engine (Numba compiles in every worker process) ---------------------------
ENGINE = dict(algorithm="rmsprop", c2=1.0, u0=[0.5], horizon=1.0, lrs=[0.4, 0.2],
              paths=4096, chunk_paths=1024, seed=3)


@pytest.mark.slow
def test_engine_study_on_a_cluster_with_a_killed_worker_is_bitwise_in_process(client, tmp_path):
    cfg = build_config(ENGINE)
    here = run_order_study(cfg, None, progress=False, plot=False)
    killer = DieOnce(discrete_chunk, (0.2, 2048), str(tmp_path / "died"))
    there = run_order_study_distributed(cfg, None, client=client, numba_threads=1,
                                        evaluator=killer, progress=False, plot=False)
    assert (tmp_path / "died").exists()
    assert_same_numbers(here.record, there.record)
    client.wait_for_workers(2, timeout=300)


@pytest.mark.slow
def test_cli_with_local_workers_writes_the_in_process_numbers(tmp_path, capsys):
    cfg = build_config(ENGINE)
    here = run_order_study(cfg, None, progress=False, plot=False).record
    out = tmp_path / "out"
    argv = ["order", "--out", str(out), "--workers", "2", "--no-progress"]
    for key, value in ENGINE.items():
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        argv += [f"--{key.replace('_', '-')}", text]
    assert main(argv) == 0, capsys.readouterr().err
    saved = json.loads((out / "order.json").read_text())
    assert (saved["workers"], saved["paths"], saved["chunks"]) == (2, 4096, 4)
    for test in cfg.tests:
        for key in ("discrete", "discrete_stderr", "error", "stderr"):
            assert saved["points"][test][key] == here["points"][test][key].tolist()
