"""The ``sde-engine`` command: help/version, one-line refusals, and a study
that is interrupted after its first learning rate and resumed."""
import json
import os
import subprocess
import sys

import pytest

from sde_engine import __version__, cli
from sde_engine.studies import weak_order

TINY = """\
algorithm = "rmsprop"
bias_correction = false
problem = "quadratic"
dim = 1
curvature = [1.0]
noise = "gaussian"
noise_cov = [1.0]
sigma0 = 1.0
eps0 = 0.1
c2 = 1.0
u0 = [0.5]
theta0 = [1.0]
horizon = 0.64
lrs = [0.4, 0.2, 0.1]
paths = 2_000
chunk_paths = 1_000
seed = 3
tests = ["theta1", "theta_sq", "loss", "theta1_cubed"]
"""


def _config(tmp_path, text=TINY, name="study.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _numbers(out_dir):
    record = json.loads((out_dir / "order.json").read_text())
    record.pop("wall_s")
    record.pop("points_from_checkpoint")      # how it was computed, not what
    return record


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"sde-engine {__version__}"
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    for command in ("solvers", "order", "plot", "simulate"):
        assert command in out
    with pytest.raises(SystemExit):
        cli.main(["order", "--help"])
    assert "--lrs" in capsys.readouterr().out


def test_console_script_is_installed():
    script = os.path.join(os.path.dirname(sys.executable), "sde-engine")
    done = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"sde-engine {__version__}"


@pytest.mark.parametrize("edit, words", [
    (lambda t: t + "learning_rate = 0.1\n", "unknown config key(s) learning_rate"),
    (lambda t: t.replace("lrs = [0.4, 0.2, 0.1]", "lrs = [1.2, 0.4]"),
     "lr 1.2 makes beta2 = 1 - c2·lr² = -0.44 negative"),
    (lambda t: t.replace("paths = 2_000", "paths = 0"), "`paths` must be an integer ≥ 1, got 0"),
    (lambda t: t.replace("paths = 2_000", "paths = -10"), "`paths` must be an integer ≥ 1"),
    (lambda t: t.replace('noise = "gaussian"', 'noise = "cauchy"'), "`noise` must be one of"),
    (lambda t: t.replace("dim = 1", "dim = 1\ndim = 2"), "is not valid TOML"),
])
def test_bad_configs_get_one_line_and_exit_2_and_write_nothing(tmp_path, capsys, edit, words):
    out_dir = tmp_path / "out"
    status = cli.main(["order", _config(tmp_path, edit(TINY)), "--out", str(out_dir)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("sde-engine: error: ") and words in err
    assert err.count("\n") == 1
    assert not out_dir.exists()


@pytest.mark.parametrize("argv, words", [
    (["order", "missing.toml", "--out", "OUT"], "config file not found: missing.toml"),
    (["order", "CFG", "--out", "OUT", "--paths", "0"], "`paths` must be an integer ≥ 1, got 0"),
    (["order", "CFG", "--out", "OUT", "--paths", "lots"], "`--paths` expects int"),
    (["order", "CFG", "--out", "OUT", "--lrs", "0.4,1.1"], "beta2"),
    (["order", "CFG", "--out", "OUT", "--max-points", "0"], "--max-points must be ≥ 1"),
    (["order", "CFG", "--out", "OUT", "--colour", "red"], "unrecognized arguments: --colour"),
    (["solvers", "--paths", "0", "--out", "OUT"], "`n_paths` must be a positive integer"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    # issue 15 item 3: a step that does not divide the horizon 0.64, or exceeds it
    (["simulate", "CFG", "--out", "OUT", "--dt", "0.3"], "`--dt` must divide the time span 0.64"),
    (["simulate", "CFG", "--out", "OUT", "--dt", "5"], "`--dt` 5 is larger than the horizon"),
    # issue 15 item 5
    (["solvers", "--methods", "", "--out", "OUT"], "`methods` must name at least one scheme"),
])
def test_bad_arguments_get_one_line_and_exit_2(tmp_path, capsys, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    _config(tmp_path, name="CFG")
    status = cli.main(argv)
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and words in err, err
    assert not (tmp_path / "OUT").exists()


def test_flags_override_the_config_file(tmp_path):
    parser = cli.build_parser()
    args = parser.parse_args(["order", _config(tmp_path), "--out", "x", "--lrs", "0.4,0.2",
                              "--paths", "1_000_000", "--bias-correction", "false"])
    cfg = cli.order_config_from_args(args)
    assert cfg.lrs == (0.4, 0.2) and cfg.paths == 1_000_000 and cfg.c2 == 1.0


def test_study_interrupted_after_the_first_lr_resumes_to_the_same_result(tmp_path, monkeypatch,
                                                                        capsys):
    config = _config(tmp_path)
    # uninterrupted
    assert cli.main(["order", config, "--out", str(tmp_path / "full")]) == 0
    full = _numbers(tmp_path / "full")
    assert full["lrs"] == [0.4, 0.2, 0.1] and full["paths"] == 2000

    # a separate process that stops after its first learning rate
    resumed = tmp_path / "resumed"
    done = subprocess.run([sys.executable, "-m", "sde_engine.cli", "order", config, "--out",
                           str(resumed), "--max-points", "1"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert not (resumed / "order.json").exists()
    assert sorted(os.listdir(resumed / "checkpoint")) == ["lr_0.4.jsonl"]

    # an interruption (Ctrl-C) in the middle of the second learning rate
    calls = []
    real = weak_order.discrete_chunk

    def interrupted(cfg, lr, offset, n):
        calls.append((lr, offset))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(cfg, lr, offset, n)

    monkeypatch.setattr(weak_order, "discrete_chunk", interrupted)
    assert cli.main(["order", config, "--out", str(resumed)]) == 130
    assert calls == [(0.2, 0), (0.2, 1000)]      # 0.4 was not recomputed
    assert not (resumed / "order.json").exists()

    # resume: only what is missing is computed, and the numbers are identical
    calls.clear()
    monkeypatch.setattr(weak_order, "discrete_chunk",
                        lambda *a: calls.append(a[1:3]) or real(*a))
    assert cli.main(["order", config, "--out", str(resumed)]) == 0
    assert calls == [(0.2, 1000), (0.1, 0), (0.1, 1000)]
    assert _numbers(resumed) == full
    out = capsys.readouterr().out
    assert "order vs log lr" in out and "order.png" in out
    assert (resumed / "order.png").stat().st_size > 1000
    header = (resumed / "order.csv").read_text().splitlines()[0]
    assert header.startswith("test,lr,h,n_steps,discrete,discrete_stderr,reference")
    assert not [f for f in os.listdir(resumed) if f.startswith(".tmp")]


# ---- issue 15: refusals before any work, and what a failure names ------------------
@pytest.mark.parametrize("where", ["file", "read_only_parent", "read_only_out"])
@pytest.mark.parametrize("command", ["order", "simulate", "plot", "solvers"])
def test_unwritable_out_is_refused_before_any_work(tmp_path, capsys, monkeypatch, command, where):
    """Item 6: one line naming --out, exit 2, for every subcommand, nothing computed."""
    from sde_engine.studies import results

    config = _config(tmp_path)
    if where == "file":
        out = tmp_path / "taken"
        out.write_text("x")
    elif where == "read_only_parent":
        (tmp_path / "ro").mkdir(mode=0o555)
        out = tmp_path / "ro" / "out"
    else:
        out = tmp_path / "out"
        out.mkdir(mode=0o555)
    if where != "file":          # root may write anywhere: ask the permission bits
        read_only = str(out if where == "read_only_out" else out.parent)
        monkeypatch.setattr(results.os, "access",
                            lambda path, mode: path != read_only and os.access(path, mode))
    monkeypatch.setattr(weak_order, "discrete_chunk", lambda *a: pytest.fail("work was done"))
    argv = {"order": ["order", config], "simulate": ["simulate", config, "--runs", "10"],
            "plot": ["plot", "trajectories", config, "--runs", "10"],
            "solvers": ["solvers", "--paths", "10"]}[command]
    status = cli.main(argv + ["--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "--out" in err, err


def test_a_tampered_checkpoint_is_one_line_and_exit_2(tmp_path, capsys):
    """Item 4 through the command: the edited count is refused, never used."""
    config = _config(tmp_path, TINY.replace("lrs = [0.4, 0.2, 0.1]", "lrs = [0.4, 0.2]"))
    out = tmp_path / "out"
    assert cli.main(["order", config, "--out", str(out), "--max-points", "1"]) == 0
    log = out / "checkpoint" / "lr_0.4.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace('"count":1000', '"count":999')
    log.write_text("".join(lines))
    capsys.readouterr()
    assert cli.main(["order", config, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(log) in err and "--restart" in err, err
    assert not (out / "order.json").exists()
    assert cli.main(["order", config, "--out", str(out), "--restart"]) == 0


def test_divergence_names_the_learning_rate(tmp_path, capsys):
    """Item 8: the 'diverged' line says at which lr (SGD at lr 3 on curvature 1 doubles θ each step: inf after ~1030 steps)."""
    text = TINY.replace('"rmsprop"', '"sgd"').replace("lrs = [0.4, 0.2, 0.1]", "lrs = [3.0, 0.1]")
    for key in ("bias_correction = false\n", "c2 = 1.0\n", "u0 = [0.5]\n"):
        text = text.replace(key, "")
    config = _config(tmp_path, text.replace("horizon = 0.64", "horizon = 3600.0"))
    status = cli.main(["order", config, "--out", str(tmp_path / "out"), "--paths", "10",
                       "--chunk-paths", "10"])
    err = capsys.readouterr().err
    assert status == 1 and err.startswith("sde-engine: diverged at lr 3: "), err


def test_dask_threads_are_capped_at_the_configured_limit(monkeypatch):
    """Item 7: with NUMBA_NUM_THREADS=1 a unit asks for at most 1 thread (Numba refuses more)."""
    import numba

    from sde_engine.studies import distributed

    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 1)
    assert distributed.thread_limit() == 1 and distributed._cpu_count() == 1
    seen = []
    assert distributed.evaluate_unit(lambda cfg, x: seen.append(numba.get_num_threads()) or x,
                                     None, (5,), n_threads=2) == 5
    assert seen == [1]
