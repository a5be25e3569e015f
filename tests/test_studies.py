"""Study statistics, configs, checkpoints and result files (sde_engine.studies).

The discrete side is replaced here by a deterministic synthetic evaluator
whose weak error is known (C·η^p plus Monte Carlo noise), so that the order
fits, the noise-floor flags and checkpoint/resume can be checked exactly; the
real optimizer runs are exercised end to end in tests/test_cli.py.
"""
import json
import os

import numpy as np
import pytest

from sde_engine.studies import Moments, chunk_bounds
from sde_engine.studies.order_config import KEYS, build_config, parse_flag_value
from sde_engine.studies.results import write_csv, write_json
from sde_engine.studies.solver_convergence import solver_convergence
from sde_engine.studies import weak_order
from sde_engine.studies.weak_order import (FLOOR_SIGMAS, PointStore, assemble,
                                           run_order_study, phi_values)

ISSUE_CONFIG = dict(algorithm="rmsprop", bias_correction=False, problem="quadratic", dim=1,
                    curvature=[1.0], noise="gaussian", noise_cov=[1.0], sigma0=1.0, eps0=0.1,
                    c2=1.0, u0=[0.5], theta0=[1.0], horizon=2.0, lrs=[0.4, 0.2, 0.1, 0.05],
                    paths=2_000_000, seed=0, tests=["theta1", "theta_sq", "loss"])


# ---- streamed moments ---------------------------------------------------------------
def test_merged_chunk_moments_equal_moments_of_all_values():
    values = np.random.default_rng(1).normal(size=(1000, 3, 2)) * [1.0, 5.0] + 2.0
    chunks = [Moments.of(values[o:o + n]) for o, n in chunk_bounds(1000, 128)]
    total = Moments.merge(chunks)
    direct = Moments.of(values)
    assert total.count == 1000
    np.testing.assert_allclose(total.mean, values.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(total.var, values.var(axis=0, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(total.stderr, np.sqrt(direct.var / 1000), rtol=1e-12)


def test_moments_round_trip_through_json_bit_for_bit():
    m = Moments.of(np.random.default_rng(2).normal(size=(77, 4)) / 3.0)
    back = Moments.from_dict(json.loads(json.dumps(m.as_dict())))
    assert back.count == m.count
    assert np.array_equal(back.mean, m.mean) and np.array_equal(back.m2, m.m2)


def test_chunk_bounds_cover_paths_once():
    assert chunk_bounds(10, 4) == [(0, 4), (4, 4), (8, 2)]
    assert chunk_bounds(8, 8) == [(0, 8)]


# ---- configs -----------------------------------------------------------------------
def test_issue_config_parses_with_the_mapping_of_spec_section_3():
    cfg = build_config(ISSUE_CONFIG)
    hp = cfg.hyperparameters(0.1)
    assert hp["noise_scale"] == pytest.approx(10.0)      # σ = σ0/η
    assert hp["eps"] == pytest.approx(1.0)               # ε = ε0/η
    assert hp["beta"] == pytest.approx(0.99)             # β = 1 − c2 η²
    assert cfg.n_steps(0.1) == 200 and cfg.sde_time(0.1) == pytest.approx(2.0)
    # T/η² = 12.5 at η = 0.4: k = ⌊12.5⌋ = 12 steps, compared at t = 12·0.16
    assert cfg.n_steps(0.4) == 12 and cfg.sde_time(0.4) == pytest.approx(1.92)
    adam = build_config({**ISSUE_CONFIG, "algorithm": "adam", "c1": 2.0})
    assert adam.hyperparameters(0.2)["betas"] == pytest.approx((1 - 2.0 * 0.04, 1 - 0.04))
    sgd = build_config({k: v for k, v in ISSUE_CONFIG.items() if k not in ("c2", "u0")}
                       | {"algorithm": "sgd", "lrs": [0.5, 0.25]})
    assert sgd.n_steps(0.25) == 8 and sgd.hyperparameters(0.25)["noise_scale"] == 1.0


@pytest.mark.parametrize("change, words", [
    ({"learning_rate": 0.1}, "unknown config key(s) learning_rate"),
    ({"lrs": [0.4, 1.5]}, "lr 1.5 makes beta2 = 1 - c2·lr² = -1.25 negative"),
    ({"paths": 0}, "`paths` must be an integer ≥ 1, got 0"),
    ({"paths": -5}, "`paths` must be an integer ≥ 1, got -5"),
    ({"algorithm": "adagrad"}, "`algorithm` must be one of sgd, rmsprop, adam"),
    ({"algorithm": "adam"}, "`c1` is required"),
    ({"curvature": [1.0, 2.0]}, "`curvature` must have 1 or dim = 1 entries, got 2"),
    ({"tests": ["theta1", "theta7"]}, "`tests` must be a non-empty list"),
    ({"lrs": [0.1, 0.1]}, "`lrs` must be distinct"),
    ({"bias_correction": True}, "`u0` must be omitted"),
    ({"horizon": -1.0}, "`horizon` must be a finite number > 0"),
])
def test_bad_configs_are_refused_with_the_key_and_value(change, words):
    with pytest.raises(ValueError) as err:
        build_config({**ISSUE_CONFIG, **change})
    assert words in str(err.value)
    assert "\n" not in str(err.value)


def test_vectors_of_length_one_fill_the_dimension():
    cfg = build_config({**ISSUE_CONFIG, "dim": 3, "curvature": [2.0]})
    assert cfg.curvature == (2.0, 2.0, 2.0) and cfg.theta0 == (1.0, 1.0, 1.0)


def test_every_key_has_a_flag_parser():
    assert parse_flag_value("lrs", "0.4,0.2") == [0.4, 0.2]
    assert parse_flag_value("paths", "1_000_000") == 1_000_000
    assert parse_flag_value("bias_correction", "true") is True
    assert parse_flag_value("tests", "theta1,loss") == ["theta1", "loss"]
    for key in KEYS:
        assert parse_flag_value(key, "1") is not None
    with pytest.raises(ValueError, match="--paths"):
        parse_flag_value("paths", "many")


def test_test_values_on_hand_computed_states():
    cfg = build_config({**ISSUE_CONFIG, "dim": 2, "curvature": [1.0, 3.0],
                        "tests": ["theta1", "theta_sq", "loss", "theta1_cubed"]})
    theta = np.array([[1.0, 2.0], [-2.0, 0.5]])
    expected = [[1.0, 5.0, 0.5 * 1 + 1.5 * 4, 1.0], [-2.0, 4.25, 0.5 * 4 + 1.5 * 0.25, -8.0]]
    np.testing.assert_allclose(phi_values(cfg, weak_order.build_problem(cfg, 0.1), theta),
                               expected)


# ---- order fits and the noise floor on synthetic errors -----------------------------
def _synthetic_moments(errors, stderr, count=10_000, rng=None):
    """Moments whose mean is error + N(0, stderr²) noise and whose stderr is ``stderr``."""
    noise = rng.normal(size=len(errors)) * stderr if rng is not None else 0.0
    return [Moments(count, np.atleast_1d(e + z), np.atleast_1d(s**2 * count * (count - 1)))
            for e, z, s in zip(errors, np.broadcast_to(noise, len(errors)),
                               np.broadcast_to(stderr, len(errors)))]


def test_fitted_order_recovers_a_power_law_inside_its_interval():
    cfg = build_config({**ISSUE_CONFIG, "tests": ["theta1"]})
    lrs = np.array(cfg.lrs)
    exact = 0.3 * lrs**2
    hits_lr = hits_h = 0
    rng = np.random.default_rng(5)
    for _ in range(200):
        discrete = _synthetic_moments(exact, 0.02 * exact, rng=rng)
        refs = [(np.zeros(1), np.zeros(1), np.zeros(1), "synthetic")] * len(lrs)
        fits = assemble(cfg, discrete, refs)["fits"]["theta1"]
        hits_lr += fits["vs_lr"]["ci"][0] <= 2.0 <= fits["vs_lr"]["ci"][1]
        hits_h += fits["vs_h"]["ci"][0] <= 1.0 <= fits["vs_h"]["ci"][1]
    # 95% intervals: coverage of 200 trials lies above 0.88 unless the interval is wrong
    assert hits_lr / 200 > 0.88 and hits_h / 200 > 0.88


def test_points_under_the_noise_floor_are_flagged_and_excluded():
    cfg = build_config({**ISSUE_CONFIG, "tests": ["theta1"]})
    errors = np.array([4e-2, 1e-2, 2.5e-3, 1e-5])     # the last is invisible at stderr 1e-4
    discrete = _synthetic_moments(errors, 1e-4)
    refs = [(np.zeros(1), np.zeros(1), np.zeros(1), "synthetic")] * 4
    rec = assemble(cfg, discrete, refs)
    p, fit = rec["points"]["theta1"], rec["fits"]["theta1"]["vs_lr"]
    assert list(p["below_noise"]) == [False, False, False, True]
    assert fit["used"] == [True, True, True, False]
    assert fit["order"] == pytest.approx(2.0, abs=1e-3)
    assert any("add paths" in n and "0.05" in n for n in rec["notes"])
    assert abs(errors[3]) < FLOOR_SIGMAS * p["stderr"][3]


# ---- checkpoint / resume ------------------------------------------------------------
class SyntheticEvaluator:
    """Deterministic chunk evaluator: error 0.3 η² plus noise seeded by (seed, offset, η)."""

    def __init__(self, fail_after=None):
        self.calls = []
        self.fail_after = fail_after

    def __call__(self, cfg, lr, path_offset, n_paths):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls.append((lr, path_offset))
        rng = np.random.default_rng([cfg.seed, path_offset, int(round(lr * 1e9))])
        return Moments.of(0.3 * lr**2 + 0.05 * rng.normal(size=(n_paths, len(cfg.tests))))


def _zero_reference(cfg, lr):
    n = len(cfg.tests)
    return np.zeros(n), np.zeros(n), np.zeros(n)


SMALL = {**ISSUE_CONFIG, "paths": 3000, "chunk_paths": 1000}


def _study(tmp_path, name, evaluator, plot=False, **kw):
    return run_order_study(build_config(SMALL), str(tmp_path / name), evaluator=evaluator,
                           reference=_zero_reference, progress=False, plot=plot, **kw)


def test_resume_after_max_points_gives_the_uninterrupted_result(tmp_path):
    full = _study(tmp_path, "full", SyntheticEvaluator())
    first = SyntheticEvaluator()
    part = _study(tmp_path, "resumed", first, max_points=1)
    assert not part.complete and not os.path.exists(tmp_path / "resumed" / "order.json")
    assert {lr for lr, _ in first.calls} == {0.4}
    second = SyntheticEvaluator()
    done = _study(tmp_path, "resumed", second)
    assert {lr for lr, _ in second.calls} == {0.2, 0.1, 0.05}     # 0.4 not recomputed
    for test in SMALL["tests"]:
        for key in ("discrete", "discrete_stderr", "error", "stderr"):
            assert np.array_equal(done.record["points"][test][key],
                                  full.record["points"][test][key])


def test_interruption_inside_a_point_keeps_its_finished_chunks(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _study(tmp_path, "run", SyntheticEvaluator(fail_after=4))   # 3 chunks of 0.4, 1 of 0.2
    assert not os.path.exists(tmp_path / "run" / "order.json")
    second = SyntheticEvaluator()
    done = _study(tmp_path, "run", second, plot=True)
    assert (0.4, 0) not in second.calls and (0.2, 0) not in second.calls
    assert (0.2, 1000) in second.calls and len(second.calls) == 12 - 4
    full = _study(tmp_path, "full", SyntheticEvaluator())
    assert np.array_equal(done.record["points"]["loss"]["error"],
                          full.record["points"]["loss"]["error"])
    assert os.path.isfile(tmp_path / "run" / "order.csv")
    assert os.path.isfile(tmp_path / "run" / "order.png")


def test_checkpoints_of_other_settings_are_not_reused(tmp_path):
    _study(tmp_path, "run", SyntheticEvaluator())
    other = SyntheticEvaluator()
    run_order_study(build_config({**SMALL, "seed": 1}), str(tmp_path / "run"),
                    evaluator=other, reference=_zero_reference, progress=False, plot=False)
    assert len(other.calls) == 12
    # changing only the list of learning rates reuses the finished ones
    more = SyntheticEvaluator()
    run_order_study(build_config({**SMALL, "seed": 1, "lrs": [0.4, 0.2, 0.1, 0.05, 0.025]}),
                    str(tmp_path / "run"), evaluator=more, reference=_zero_reference,
                    progress=False, plot=False)
    assert {lr for lr, _ in more.calls} == {0.025}


def test_checkpoints_of_older_random_streams_are_not_reused(tmp_path, monkeypatch):
    _study(tmp_path, "run", SyntheticEvaluator())
    monkeypatch.setattr(weak_order, "STREAMS_VERSION", weak_order.STREAMS_VERSION + 1)
    rerun = SyntheticEvaluator()
    _study(tmp_path, "run", rerun)
    assert len(rerun.calls) == 12


def test_point_store_ignores_a_foreign_fingerprint(tmp_path):
    store = PointStore(str(tmp_path))
    store.save("lr_0.1", "abc", {0: Moments.of(np.ones((3, 2)))}, {})
    assert store.load("lr_0.1", "abc")[0].count == 3
    assert store.load("lr_0.1", "xyz") == {}


def _lines(path):
    return path.read_text().splitlines(keepends=True)


def _tamper(line, **changes):
    """A checkpoint line with some fields changed and its checksum left as it was."""
    return json.dumps({**json.loads(line), **changes}) + "\n"


def _resign(line, key, **changes):
    """A checkpoint line with some fields changed and a valid checksum (a crafted edit)."""
    from sde_engine.studies import checkpoints

    rec = {**json.loads(line), **changes}
    rec.pop("sha256")
    return checkpoints._signed_line(rec, salt=key)


BAD_CHECKPOINTS = [
    # editing a chunk's count (the issue's probe): fails its checksum
    (lambda lines, key: lines[:2] + [_tamper(lines[2], count=999)] + lines[3:],
     "line 3 fails its checksum"),
    (lambda lines, key: [_tamper(lines[0], info={})] + lines[1:], "line 1 fails its checksum"),
    (lambda lines, key: lines[:1] + ["{not json\n"] + lines[2:], "line 2 is not valid JSON"),
    (lambda lines, key: lines[:1] + ["[1, 2]\n"] + lines[2:], "line 2 has fields"),
    (lambda lines, key: [lines[0][:40]], "no complete header line"),
    (lambda lines, key: [], "no complete header line"),
    # well-formed and correctly signed, but not what this study can hold
    (lambda lines, key: lines[:1] + [_resign(lines[1], key, mean=[0.0, 1.0])] + lines[2:],
     "line 2: chunk of shape (2,)/(3,), expected (3,)"),
    (lambda lines, key: lines[:1] + [_resign(lines[1], key, offset=500)] + lines[2:],
     "line 2: offset 500 is not the start of a chunk"),
    (lambda lines, key: lines[:1] + [_resign(lines[1], key, count=1001)] + lines[2:],
     "line 2: count 1001 is out of range (chunk of 1000 paths)"),
    (lambda lines, key: [_resign(lines[0], "", format="v1")] + lines[1:], "has format 'v1'"),
]


@pytest.mark.parametrize("edit, words", BAD_CHECKPOINTS)
def test_a_damaged_or_edited_checkpoint_is_refused_naming_the_file(tmp_path, edit, words):
    from sde_engine.studies.checkpoints import CheckpointError

    _study(tmp_path, "run", SyntheticEvaluator())
    path = tmp_path / "run" / "checkpoint" / "lr_0.2.jsonl"
    key = weak_order.fingerprint(build_config(SMALL))
    path.write_text("".join(edit(_lines(path), key)))
    rerun = SyntheticEvaluator()
    with pytest.raises(CheckpointError) as err:
        _study(tmp_path, "run", rerun)
    message = str(err.value)
    assert words in message and str(path) in message and "--restart" in message
    assert "\n" not in message and rerun.calls == []        # refused before any work


def test_old_single_json_checkpoints_are_refused(tmp_path):
    from sde_engine.studies.checkpoints import CheckpointError

    legacy = tmp_path / "run" / "checkpoint" / "lr_0.4.json"
    legacy.parent.mkdir(parents=True)
    legacy.write_text('{"fingerprint": "x", "info": {}, "chunks": {}}')
    with pytest.raises(CheckpointError, match="old format without checksums"):
        _study(tmp_path, "run", SyntheticEvaluator())


def test_an_append_cut_short_by_a_crash_is_dropped_and_recomputed(tmp_path):
    full = _study(tmp_path, "full", SyntheticEvaluator())
    with pytest.raises(KeyboardInterrupt):
        _study(tmp_path, "run", SyntheticEvaluator(fail_after=6))   # 0.4, 0.2 finished
    path = tmp_path / "run" / "checkpoint" / "lr_0.2.jsonl"
    text = path.read_text()
    path.write_text(text[:-30])                 # the last chunk's line lost its end
    second = SyntheticEvaluator()
    done = _study(tmp_path, "run", second)
    assert second.calls[0] == (0.2, 2000) and len(second.calls) == 7
    assert path.read_text() == text             # cut back, then appended whole again
    assert np.array_equal(done.record["points"]["loss"]["error"],
                          full.record["points"]["loss"]["error"])


def test_checkpoint_writes_are_linear_in_the_number_of_chunks(tmp_path, monkeypatch):
    """Each chunk appends one line; the file is never rewritten (before: whole file per chunk)."""
    from sde_engine.studies import results

    written = []
    real = results._atomic_write
    monkeypatch.setattr(results, "_atomic_write",
                        lambda path, text: written.append(len(text)) or real(path, text))
    cfg = build_config({**SMALL, "lrs": [0.4], "paths": 400, "chunk_paths": 2})
    run_order_study(cfg, str(tmp_path / "run"), evaluator=SyntheticEvaluator(),
                    reference=_zero_reference, progress=False, plot=False)
    log = tmp_path / "run" / "checkpoint" / "lr_0.4.jsonl"
    assert len(_lines(log)) == 1 + 200
    rewritten = sum(written) - sum(os.path.getsize(tmp_path / "run" / f)
                                   for f in ("order.json", "order.csv"))
    assert rewritten == len(_lines(log)[0])      # only the header went through a rewrite
    resumed = PointStore(str(tmp_path / "run")).load("lr_0.4", weak_order.fingerprint(cfg),
                                                     chunk_bounds(400, 2))
    assert sorted(resumed) == list(range(0, 400, 2))


def test_a_chunk_recomputed_at_the_same_offset_supersedes_the_earlier_line(tmp_path):
    store = PointStore(str(tmp_path))
    store.load("p", "k")
    a, b = Moments.of(np.ones((3, 2))), Moments.of(np.zeros((5, 2)))
    store.save("p", "k", {0: a}, {})
    store.save("p", "k", {0: b}, {})            # same offset, new chunk: appended again
    back = PointStore(str(tmp_path)).load("p", "k")
    assert back[0].count == 5 and np.array_equal(back[0].mean, b.mean)


def test_restart_clears_the_checkpoints(tmp_path):
    _study(tmp_path, "run", SyntheticEvaluator())
    PointStore(str(tmp_path / "run")).clear()
    assert not os.path.exists(tmp_path / "run" / "checkpoint")
    again = SyntheticEvaluator()
    _study(tmp_path, "run", again)
    assert len(again.calls) == 12


# ---- result files -----------------------------------------------------------------
def test_result_files_are_written_atomically(tmp_path):
    path = tmp_path / "r.json"
    write_json(path, {"a": np.array([1.0, np.nan]), "b": np.int64(3)})
    assert json.loads(path.read_text()) == {"a": [1.0, None], "b": 3}
    with pytest.raises(TypeError):
        write_json(path, {"a": object()})      # fails while serialising...
    assert json.loads(path.read_text())["b"] == 3   # ...and the old file is intact
    write_csv(tmp_path / "r.csv", ["x", "y"], [[1.5, float("nan")]])
    assert (tmp_path / "r.csv").read_text() == "x,y\n1.5,\n"
    assert sorted(os.listdir(tmp_path)) == ["r.csv", "r.json"]     # no temp files left


# ---- solver convergence study ---------------------------------------------------------
def test_solver_study_does_not_depend_on_the_chunking():
    kw = dict(dts=[0.25, 0.125, 0.0625], n_paths=3000, seed=3)
    a = solver_convergence("gbm", chunk_paths=3000, **kw)
    b = solver_convergence("gbm", chunk_paths=700, **kw)
    np.testing.assert_allclose(a.error, b.error, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(a.stderr, b.stderr, rtol=1e-9)


def test_solver_study_orders_on_gbm():
    """EM strong 0.5, Milstein strong 1, weak 1: each inside its interval widened by 0.1."""
    r = solver_convergence("gbm", dts=2.0 ** -np.arange(4, 9), n_paths=20_000, seed=11)
    for m in r.methods:
        for k in ("strong", "weak_x"):
            fit = r.fits[m][k]
            theory = {"strong": {"euler_maruyama": 0.5, "milstein": 1.0}[m], "weak_x": 1.0}[k]
            assert fit.ci[0] - 0.1 <= theory <= fit.ci[1] + 0.1, (m, k, fit)
    # Milstein's strong error is smaller than EM's at every step
    assert np.all(r.error[1, :, 0] < r.error[0, :, 0])


# ---- the RMSprop control variate -------------------------------------------------------
def test_control_update_one_step_by_hand():
    from sde_engine.studies.control_variate import controlled_rmsprop

    lr, beta, eps, h, q, v0 = 0.1, 0.9, 0.5, 2.0, 4.0, 1.0
    opt = controlled_rmsprop(lr, beta, eps, False, [h], [q], [v0])
    state = opt.init([1.0], v0=[v0])
    assert list(state) == [1.0, 1.0, 1.0]
    state[2] = 0.5                                   # let y differ from θ
    g = 3.0                                          # oracle: H θ + noise, noise = 1
    out = opt.step(1, [g], state)
    v1 = beta * v0 + (1 - beta) * g**2
    assert out[1] == pytest.approx(v1)
    assert out[0] == pytest.approx(1.0 - lr * g / (np.sqrt(v1) + eps))
    vbar = q * (1 - beta) + beta * v0
    assert out[2] == pytest.approx(0.5 - lr / (np.sqrt(vbar) + eps) * (h * 0.5 + (g - h * 1.0)))


def test_control_moments_after_one_step_by_hand():
    from sde_engine.studies.control_variate import control_moments

    lr, beta, eps, h, q, theta0 = 0.2, 0.5, 0.1, 1.5, 2.0, 0.7
    mu, var, kappa = control_moments(1, lr, beta, eps, True, [h], [q], [0.0], [theta0], 2.0)
    a = 1 / (np.sqrt(q) + eps)                      # bias-corrected v̄_1 = q
    assert mu[0] == pytest.approx((1 - lr * a * h) * theta0)
    assert var[0] == pytest.approx((lr * a) ** 2 * q)
    assert kappa[0] == pytest.approx(-((lr * a) ** 3) * q**1.5 * 2.0)


@pytest.mark.parametrize("noise", ["gaussian", "skewed"])
def test_control_variate_keeps_the_mean_and_cuts_the_error(noise):
    from sde_engine.studies.weak_order import discrete_chunk

    base = {**ISSUE_CONFIG, "noise": noise, "tests": ["theta1", "theta_sq", "theta1_cubed"],
            "paths": 20_000}
    plain = discrete_chunk(build_config({**base, "control_variate": False}), 0.1, 0, 20_000)
    cv = discrete_chunk(build_config(base), 0.1, 0, 20_000)
    assert np.all(np.abs(cv.mean - plain.mean) < 4 * plain.stderr)
    assert np.all(cv.stderr < plain.stderr / 2.5)
