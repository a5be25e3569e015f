"""The public ``simulate`` contract: shapes, streaming statistics, bad input
refused before any work, and divergence handling."""
import math
import re
import signal
import subprocess
import sys
import time
import tracemalloc
import warnings

import numpy as np
import pytest

import sde_engine as se
from solvers import driver
from solvers.registry import SCHEMES

from conftest import _diag2_drift


# --- the example of the issue, verbatim apart from n_paths --------------------
def drift(t, x, params, out):
    out[:] = params[0] * x


def diffusion(t, x, params, out):
    out[:] = params[1] * x


# verbatim: its whole-array functions allocate per call, which the engine warns about
@pytest.mark.filterwarnings("ignore::sde_engine.user_functions.AllocationWarning")
def test_issue_example_shapes_and_exact_moments():
    gbm = se.SDE(drift, diffusion, dim=1, noise="diagonal", params=np.array([0.5, 0.8]))
    n = 20_000
    sol = se.simulate(gbm, x0=[1.0], t_span=(0.0, 1.0), dt=2**-8, n_paths=n,
                      method="euler_maruyama", seed=7, save_at=np.linspace(0, 1, 5))
    assert sol.t.shape == (5,) and sol.x.shape == (5, n, 1)
    np.testing.assert_array_equal(sol.t, np.linspace(0, 1, 5))
    np.testing.assert_array_equal(sol.x[0], 1.0)
    assert sol.mean is None and len(sol.diverged) == 0 and sol.n_used == n
    # E X_t = e^{0.5 t}; the EM bias at dt = 2^-8 (< 3e-3) is below 4 stderr (~0.04)
    exact_mean, _ = se.gbm_moments(1.0, sol.t)
    stderr = sol.x[:, :, 0].std(axis=1, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(sol.x[:, :, 0].mean(axis=1) - exact_mean) < 4 * stderr + 3e-3)


def test_default_save_times_and_general_noise_shapes(general):
    sol = se.simulate(general, [0.5, -0.5], (1.0, 2.0), 0.125, 7, save_brownian=True)
    np.testing.assert_array_equal(sol.t, [1.0, 2.0])
    assert sol.x.shape == (2, 7, 2) and sol.W.shape == (2, 7, 3)
    assert sol.info["n_steps"] == 8 and sol.info["method"] == "euler_maruyama"


# --- streaming statistics -----------------------------------------------------
@pytest.fixture(scope="module")
def streamed(ou, moments):
    """OU with observables (x, x^2) and saved paths, 3000 paths (3 chunks)."""
    kwargs = dict(x0=[2.0], t_span=(0.0, 1.0), dt=2**-6, n_paths=3000, seed=5,
                  save_at=np.linspace(0.0, 1.0, 9), observables=moments, n_observables=2,
                  save_paths=True)
    return (se.simulate(ou, n_threads=1, **kwargs), se.simulate(ou, n_threads=2, **kwargs))


def test_streaming_mean_and_var_equal_numpy_on_saved_paths(streamed):
    sol = streamed[0]
    x = sol.x[:, :, 0]
    phi = np.stack([x, x * x], axis=-1)          # (n_save, n_paths, 2)
    np.testing.assert_allclose(sol.mean, phi.mean(axis=1), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sol.var, phi.var(axis=1, ddof=1), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sol.stderr, np.sqrt(sol.var / 3000), rtol=1e-15)
    assert sol.mean.shape == (9, 2) and sol.n_used == 3000


def test_streaming_statistics_do_not_depend_on_thread_count(streamed):
    one, two = streamed
    np.testing.assert_array_equal(one.mean, two.mean)
    np.testing.assert_array_equal(one.var, two.var)


def test_streaming_alone_keeps_no_paths(ou, moments):
    sol = se.simulate(ou, [2.0], (0.0, 1.0), 2**-6, 100, observables=moments,
                      n_observables=2)
    assert sol.x is None and sol.mean.shape == (2, 2)


# --- slices of chunks: Ctrl-C between them, the same numbers, no memory per path ---
class _WholeRun:
    """A slice sizer that runs every chunk in one compiled call (as before slicing)."""

    def __init__(self, n_threads):
        self.chunks = 2**62

    def update(self, n_chunks, seconds):
        pass


class _OneChunk(_WholeRun):
    def __init__(self, n_threads):
        self.chunks = 1


@pytest.mark.parametrize("sizer", [_OneChunk, None])
def test_slices_of_chunks_do_not_change_any_number(monkeypatch, cubic, moments, sizer):
    """3000 paths (3 chunks) of the noisy cubic from x0 in [0, 2.5]: some diverge, in
    several chunks. One chunk per call, or the adaptive slices, give the bits of one call."""
    x0 = np.linspace(0.0, 2.5, 3000).reshape(-1, 1)
    kwargs = dict(save_at=np.linspace(0.0, 1.0, 11), observables=moments, n_observables=2,
                  save_paths=True, on_divergence="warn", seed=3, n_threads=2)
    noisy = cubic.with_params(np.array([1.0, 0.3]))

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return se.simulate(noisy, x0, (0.0, 1.0), 0.01, 3000, **kwargs)

    monkeypatch.setattr(driver, "_SliceSizer", _WholeRun)
    whole = run()
    if sizer is not None:
        monkeypatch.setattr(driver, "_SliceSizer", sizer)
    else:
        monkeypatch.undo()
    sliced = run()
    bad = whole.diverged.paths
    assert 0 < len(bad) < 3000 and bad.min() < 1024 and bad.max() >= 2048
    for name in ("x", "mean", "var", "counts"):
        np.testing.assert_array_equal(getattr(sliced, name), getattr(whole, name))
    for name in ("paths", "steps", "times", "observables"):
        np.testing.assert_array_equal(getattr(sliced.diverged, name),
                                      getattr(whole.diverged, name))


CTRL_C_SCRIPT = """
import signal
import sde_engine as se

# what an interactive Python has; a child of a pytest-xdist worker inherits an ignored SIGINT
signal.signal(signal.SIGINT, signal.default_int_handler)

def moments(t, x, params, out):
    out[0] = x[0]
    out[1] = x[0] * x[0]

ou = se.ornstein_uhlenbeck(theta=1.0, mean=0.0, sigma=0.5, dim=1)
kwargs = dict(observables=moments, n_observables=2, save_paths=False)
se.simulate(ou, [1.0], (0.0, 1.0), 0.01, 100_000, **kwargs)   # compiled before timing
print("ready", flush=True)
try:
    se.simulate(ou, [1.0], (0.0, 1.0), 0.01, 10**7, **kwargs)
    print("finished before the interrupt", flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_ctrl_c_is_honoured_within_a_slice(tmp_path):
    """Issue #15.9: a run of 10^7 paths (tens of seconds) gets SIGINT, as Ctrl-C
    sends it, 0.3 s in; the KeyboardInterrupt must come within about a slice
    (0.2 s), not at the end. A child process, so that the signal reaches the
    main thread of a Python that runs nothing else (pytest-xdist workers do not
    run tests on their main thread, and ignore SIGINT: the child restores
    Python's handler, or it would inherit that and finish the run)."""
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C_SCRIPT)
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        sent = time.perf_counter()
        child.send_signal(signal.SIGINT)
        report = child.stdout.readline().strip()
        latency = time.perf_counter() - sent
    finally:
        child.kill()
        child.wait(timeout=60)
    assert report == "interrupted" and latency < 1.5, (report, latency)


def test_streaming_needs_no_memory_per_path(monkeypatch):
    """Issue #15.8: a streaming run of 10^9 paths allocates per slice, not 8 bytes per
    path. A stand-in for the compiled loop (marks every path finite) runs three slices."""
    calls = []

    def fake_run(x0, n_steps, save_steps, params, setup, seed, path_offset, first, end,
                 save_x, save_aux, x_out, aux_out, mean, m2, count, step, obs):
        calls.append((first, end))
        mean[:], m2[:], count[:], step[:], obs[:] = 0.0, 0.0, driver.CHUNK_PATHS, -1, -1
        if len(calls) == 3:
            raise KeyboardInterrupt

    tracemalloc.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            driver.run_paths(fake_run, np.zeros((1, 1)), 10, np.array([0, 10]), np.zeros(1),
                             (), 0, 0, 10**9, 2, save_x=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(calls) == 3 and calls[0][0] == 0 and calls[1][0] == calls[0][1]
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB traced for 10^9 streamed paths"


# --- bad input: ValueError naming the argument, before any work ---------------
BASE = dict(x0=[1.0], t_span=(0.0, 1.0), dt=0.25, n_paths=4)

BAD_SIMULATE_ARGS = [
    (dict(dt=0.0), r"`dt`.*0\.0"),
    (dict(dt=-0.1), r"`dt`.*-0\.1"),
    (dict(dt=float("nan")), r"`dt`.*nan"),
    (dict(dt=float("inf")), r"`dt`.*inf"),
    (dict(dt="0.25"), r"`dt`.*'0\.25'"),
    (dict(dt=0.3), r"`dt`.*0\.3"),
    (dict(t_span=(1.0, 0.0)), r"`t_span`.*reversed"),
    (dict(t_span=(0.0, 0.0)), r"`t_span`"),
    (dict(t_span=(0.0, float("inf"))), r"`t_span`.*inf"),
    (dict(t_span=1.0), r"`t_span`"),
    (dict(x0=[1.0, 2.0]), r"`x0`.*shape \(2,\)"),
    (dict(x0=np.ones((3, 1))), r"`x0`.*\(3, 1\)"),
    (dict(x0=[float("nan")]), r"`x0`.*nan"),
    (dict(x0=["a"]), r"`x0`.*'a'"),
    (dict(x0=[[1.0], [1.0, 2.0]]), r"`x0`"),
    (dict(n_paths=0), r"`n_paths`.*0"),
    (dict(n_paths=2.5), r"`n_paths`.*2\.5"),
    (dict(seed=-1), r"`seed`.*-1"),
    (dict(path_offset=-3), r"`path_offset`.*-3"),
    (dict(method="rk4"), r"`method`.*euler_maruyama.*milstein.*'rk4'"),
    (dict(save_at=[0.1]), r"`save_at`.*0\.1"),
    (dict(save_at=[0.5, 2.0]), r"`save_at`.*2\."),
    (dict(save_at=[0.75, 0.5]), r"`save_at`"),
    (dict(brownian_dt=0.1), r"`brownian_dt`.*0\.1"),
    (dict(brownian_dt=-1.0), r"`brownian_dt`.*-1\.0"),
    (dict(on_divergence="ignore"), r"`on_divergence`.*'ignore'"),
    (dict(n_observables=2), r"`n_observables`.*2"),
    (dict(observables=_diag2_drift), r"`n_observables`"),
    (dict(n_threads=0), r"`n_threads`.*0"),
    (dict(n_threads=10_000), r"`n_threads`.*10000"),
    (dict(backend="cuda"), r"`backend`.*'cuda'"),
    (dict(dtype=np.float32), r"`dtype`.*float32.*float64 only.*backend='torch'"),
    (dict(dtype="float16"), r"`dtype`.*float64 or float32.*'float16'"),
]


@pytest.fixture
def fresh_gbm():
    """A GBM that has compiled nothing yet (its driver cache must stay empty)."""
    return se.SDE(drift, diffusion, dim=1, params=np.array([0.5, 0.8]),
                  diffusion_dx=None, name="fresh")


@pytest.mark.parametrize("override, message", BAD_SIMULATE_ARGS,
                         ids=[next(iter(o)) + "=" + repr(next(iter(o.values())))[:12]
                              for o, _ in BAD_SIMULATE_ARGS])
def test_bad_simulate_argument_is_refused_before_any_work(fresh_gbm, override, message):
    with pytest.raises(ValueError, match=message):
        se.simulate(fresh_gbm, **{**BASE, **override})
    assert fresh_gbm._compiled == {}


def test_unknown_method_lists_the_registry(fresh_gbm):
    with pytest.raises(ValueError) as info:
        se.simulate(fresh_gbm, **BASE, method="heun")
    for name in SCHEMES:
        assert name in str(info.value)


def test_float64_given_as_dtype_is_the_default(gbm):
    default = se.simulate(gbm, **BASE, seed=3).x
    for dtype in (np.float64, "float64", np.dtype("float64")):
        np.testing.assert_array_equal(se.simulate(gbm, **BASE, seed=3, dtype=dtype).x, default)


def test_unknown_keyword_is_a_type_error(fresh_gbm):
    with pytest.raises(TypeError, match="n_path"):
        se.simulate(fresh_gbm, **BASE, n_path=3)
    with pytest.raises(TypeError):   # keyword-only options
        se.simulate(fresh_gbm, [1.0], (0.0, 1.0), 0.25, 4, "milstein")


def test_milstein_refuses_general_noise(general):
    with pytest.raises(ValueError, match=r"'milstein'.*diagonal.*'general'.*euler_maruyama"):
        se.simulate(general, [0.0, 0.0], (0.0, 1.0), 0.25, 4, method="milstein")


def _diffusion_square_block(t, x, p, out):   # declared (2, 3), writes a 2x2 block
    out[0, 0] = 1.0
    out[1, 1] = 1.0


def _diffusion_as_matrix(t, x, p, out):      # declared diagonal (2,), indexes 2-D
    out[0, 0] = 1.0


def _drift_returning(t, x, p, out):
    return -x


def _zero(t, x, p, out):
    out[:] = 0.0


@pytest.mark.parametrize("sde_kwargs, message", [
    (dict(drift=_zero, diffusion=_diffusion_square_block, dim=2, noise="general",
          noise_dim=3), r"`diffusion`.*shape \(2, 3\).*unset"),
    (dict(drift=_zero, diffusion=_diffusion_as_matrix, dim=2),
     r"`diffusion` failed.*shape \(2,\)"),
    (dict(drift=_drift_returning, diffusion=_zero, dim=2), r"`drift` returned"),
    (dict(drift=_zero, diffusion=_zero, dim=2, diffusion_dx=_diffusion_as_matrix),
     r"`diffusion_dx` failed"),
], ids=["general-block", "diagonal-as-matrix", "drift-returns", "diffusion_dx"])
def test_user_function_of_wrong_shape_is_refused_before_any_work(sde_kwargs, message):
    sde = se.SDE(**sde_kwargs)
    with pytest.raises(ValueError, match=message):
        se.simulate(sde, np.zeros(sde.dim), (0.0, 1.0), 0.25, 4)
    assert sde._compiled == {}


@pytest.mark.parametrize("params, message", [
    (np.array([1, 2]), r"`params`.*int64"),
    ([1, 2], r"`params`.*int"),
    (np.array([True]), r"`params`.*bool"),
    (np.array([1.0 + 0j]), r"`params`.*complex"),
    (np.ones((2, 2)), r"`params`.*\(2, 2\)"),
    (np.array([1.0, np.nan]), r"`params`.*nan"),
])
def test_non_float_params_are_refused(fresh_gbm, params, message):
    with pytest.raises(ValueError, match=message):
        se.SDE(drift, diffusion, dim=1, params=params)
    with pytest.raises(ValueError, match=message):
        fresh_gbm.with_params(params)


@pytest.mark.parametrize("sde_kwargs, message", [
    (dict(dim=0), r"`dim`.*0"),
    (dict(dim=1.5), r"`dim`.*1\.5"),
    (dict(noise="full"), r"`noise`.*'full'"),
    (dict(dim=2, noise_dim=3), r"`noise_dim`.*3"),
    (dict(drift=1.0), r"`drift`.*1\.0"),
    (dict(diffusion=None), r"`drift` and `diffusion`"),
])
def test_bad_sde_definition_is_refused(sde_kwargs, message):
    kwargs = dict(drift=drift, diffusion=diffusion, dim=1, params=np.array([0.5, 0.8]))
    with pytest.raises(ValueError, match=message):
        se.SDE(**{**kwargs, **sde_kwargs})


# --- divergence ----------------------------------------------------------------
# dX = X^3 dt (cubic fixture with p1 = 0): EM blows up at a step that plain
# float64 arithmetic predicts; x0 = 3 and 10 diverge within t < 2, the others not.
X0_CUBIC = np.array([[0.0], [0.3], [3.0], [0.2], [10.0]])
T0, DT, N_STEPS, OFFSET = 0.5, 0.1, 20, 100


def cubic_reference():
    """EM by hand: per path, the states at every step and the first non-finite step."""
    x = X0_CUBIC[:, 0].copy()
    states = [x.copy()]
    first_bad = np.full(x.size, -1)
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(1, N_STEPS + 1):
            x = x + (1.0 * x * x * x) * DT + 0.0
            states.append(x.copy())
            first_bad[(first_bad < 0) & ~np.isfinite(x)] = k
    return np.array(states), first_bad


def simulate_cubic(sde, on_divergence, **kwargs):
    return se.simulate(sde, X0_CUBIC, (T0, T0 + N_STEPS * DT), DT, len(X0_CUBIC),
                       save_at=T0 + DT * np.arange(N_STEPS + 1), path_offset=OFFSET,
                       on_divergence=on_divergence, **kwargs)


def test_divergence_reference_is_what_the_test_claims():
    _, first_bad = cubic_reference()
    assert list(np.flatnonzero(first_bad >= 0)) == [2, 4]
    assert 0 < first_bad[4] < first_bad[2] < N_STEPS


def test_divergence_raise_reports_path_step_and_time(cubic):
    _, first_bad = cubic_reference()
    with pytest.raises(se.DivergenceError) as info:
        simulate_cubic(cubic, "raise")
    report = info.value.report
    np.testing.assert_array_equal(report.paths, [OFFSET + 2, OFFSET + 4])
    np.testing.assert_array_equal(report.steps, first_bad[[2, 4]])
    np.testing.assert_allclose(report.times, T0 + DT * first_bad[[2, 4]], rtol=1e-15)
    text = str(info.value)
    assert f"path {OFFSET + 2} at step {first_bad[2]}" in text
    assert f"path {OFFSET + 4} at step {first_bad[4]}" in text


def test_divergence_warn_keeps_nan_paths(cubic):
    states, first_bad = cubic_reference()
    with pytest.warns(RuntimeWarning, match=re.escape(f"path {OFFSET + 4} at step")):
        sol = simulate_cubic(cubic, "warn")
    assert sol.x.shape == (N_STEPS + 1, 5, 1) and sol.n_used == 3
    for p in range(5):
        bad = first_bad[p]
        finite_until = N_STEPS + 1 if bad < 0 else bad
        np.testing.assert_allclose(sol.x[:finite_until, p, 0], states[:finite_until, p],
                                   rtol=1e-14)
        assert np.all(np.isnan(sol.x[finite_until:, p, 0]))


def test_divergence_between_and_after_sparse_repeated_saves(cubic):
    """Saves at steps 0, 4, 4, 7 of 20: path 4 diverges (step 6) between two saves, path 2
    (step 8) after the last one; both are reported, and every state saved before is kept."""
    states, first_bad = cubic_reference()
    steps = np.array([0, 4, 4, 7])
    assert first_bad[4] == 6 and first_bad[2] == 8
    with pytest.warns(RuntimeWarning, match=re.escape(f"path {OFFSET + 2} at step 8")):
        sol = se.simulate(cubic, X0_CUBIC, (T0, T0 + N_STEPS * DT), DT, len(X0_CUBIC),
                          save_at=T0 + DT * steps, path_offset=OFFSET, on_divergence="warn")
    np.testing.assert_array_equal(sol.diverged.steps, [8, 6])
    assert sol.n_used == 3
    expected = states[steps]
    expected[3, 4] = np.nan
    np.testing.assert_allclose(sol.x[:, :, 0], expected, rtol=1e-14)


def test_divergence_drop_removes_paths_silently(cubic):
    states, _ = cubic_reference()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sol = simulate_cubic(cubic, "drop")
    np.testing.assert_array_equal(sol.kept_paths, [0, 1, 3])
    np.testing.assert_array_equal(sol.diverged.paths, [OFFSET + 2, OFFSET + 4])
    np.testing.assert_allclose(sol.x[:, :, 0], states[:, [0, 1, 3]], rtol=1e-14)


def test_statistics_at_each_save_time_use_the_paths_finite_then(cubic, moments):
    """With noise (p1 = 0.05) and observables: at each save time, mean/var over the paths
    still finite then, so t = t0 counts all five paths and a path that stopped at step k
    counts at the save steps before k (the diverging paths reach ~1e100 first, so x² may
    overflow a step before x does: the report says which)."""
    noisy = cubic.with_params(np.array([1.0, 0.05]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # the report; huge variances
        sol = simulate_cubic(noisy, "warn", observables=moments, n_observables=2,
                             save_paths=True, seed=4)
    np.testing.assert_array_equal(sol.diverged.paths, [OFFSET + 2, OFFSET + 4])
    assert sol.n_used == 3
    stop = np.full(len(X0_CUBIC), N_STEPS + 1)
    stop[sol.diverged.paths - OFFSET] = sol.diverged.steps
    usable = np.arange(N_STEPS + 1)[:, None] < stop[None, :]
    np.testing.assert_array_equal(sol.counts, usable.sum(axis=1))
    assert sol.counts[0] == 5 and sol.counts[-1] == 3
    x = sol.x[:, :, 0]
    for s in range(N_STEPS + 1):
        xs = x[s, usable[s]]
        phi = np.stack([xs, xs * xs], axis=-1)
        assert np.all(np.isfinite(phi))
        np.testing.assert_allclose(sol.mean[s], phi.mean(axis=0), rtol=1e-12)
        with np.errstate(over="ignore"):
            expected_var = phi.var(axis=0, ddof=1)
        finite = np.isfinite(expected_var)
        np.testing.assert_allclose(sol.var[s, finite], expected_var[finite], rtol=1e-12,
                                   atol=1e-15)
        np.testing.assert_allclose(sol.stderr[s, finite],
                                   np.sqrt(expected_var[finite] / usable[s].sum()), rtol=1e-12)


@pytest.mark.filterwarnings("ignore:mean/var overflowed")
def test_all_paths_diverged_gives_nan_statistics_with_a_warning(cubic, moments):
    """Issue #15.1: both paths (x0 = 3, 10) diverge. Save times before that average them,
    with var NaN where one path is left; where none is, mean and var are NaN and a
    RuntimeWarning names the times, not 0.0 ± 0.0. Under "raise" it is a DivergenceError."""
    x0 = X0_CUBIC[[2, 4]]
    kwargs = dict(save_at=T0 + DT * np.arange(N_STEPS + 1), observables=moments,
                  n_observables=2, on_divergence="drop")
    with pytest.warns(RuntimeWarning, match=r"no path was usable .* at \d+ save time"):
        sol = se.simulate(cubic, x0, (T0, T0 + N_STEPS * DT), DT, 2, **kwargs)
    assert sol.n_used == 0 and len(sol.diverged) == 2
    stop = np.sort(sol.diverged.steps)
    np.testing.assert_array_equal(sol.counts, [(s < stop).sum() for s in range(N_STEPS + 1)])
    assert sol.counts[0] == 2 and sol.counts[-1] == 0 and np.any(sol.counts == 1)
    np.testing.assert_array_equal(sol.mean[0], [6.5, 54.5])
    np.testing.assert_array_equal(sol.var[0], [24.5, 2 * (45.5**2)])
    none, one = sol.counts == 0, sol.counts == 1
    assert np.all(np.isnan(sol.mean[none])) and np.all(np.isfinite(sol.mean[~none]))
    assert np.all(np.isnan(sol.var[none | one])) and np.all(np.isnan(sol.stderr[none | one]))
    with pytest.raises(se.DivergenceError):
        se.simulate(cubic, x0, (T0, T0 + N_STEPS * DT), DT, 2,
                    **{**kwargs, "on_divergence": "raise"})


def test_one_path_has_nan_variance_and_stderr(cubic, moments):
    """Issue #15.1: the variance of one sample is undefined, not 0."""
    sol = se.simulate(cubic.with_params(np.array([1.0, 0.05])), [0.2], (0.0, 1.0), 0.1, 1,
                      observables=moments, n_observables=2)
    np.testing.assert_array_equal(sol.counts, [1, 1])
    assert np.all(np.isfinite(sol.mean))
    assert np.all(np.isnan(sol.var)) and np.all(np.isnan(sol.stderr))


def test_observable_overflow_on_a_finite_path_is_reported(cubic, moments):
    """Issue #15.2: with dX = X³ dt from 1e60, step 1 gives x = 1e60 + 1e179 (finite)
    whose x² overflows. That path is reported (observable 1, step 1) and stops like a
    diverged one: its finite state is kept at step 1, NaN after, and it leaves the
    statistics from step 1 on instead of making them NaN."""
    deterministic = cubic.with_params(np.array([1.0, 0.0]))
    x0 = np.array([[1e60], [0.3], [0.2]])
    kwargs = dict(save_at=T0 + DT * np.arange(N_STEPS + 1), observables=moments,
                  n_observables=2, save_paths=True, path_offset=OFFSET)
    with pytest.raises(se.DivergenceError,
                       match=re.escape(f"path {OFFSET} (state finite, observable[1] "
                                       f"non-finite) at step 1")) as info:
        se.simulate(deterministic, x0, (T0, T0 + N_STEPS * DT), DT, 3, **kwargs)
    np.testing.assert_array_equal(info.value.report.observables, [1])
    with pytest.warns(RuntimeWarning, match=re.escape(f"path {OFFSET} (state finite")):
        sol = se.simulate(deterministic, x0, (T0, T0 + N_STEPS * DT), DT, 3,
                          on_divergence="warn", **kwargs)
    np.testing.assert_array_equal(sol.diverged.steps, [1])
    np.testing.assert_allclose(sol.x[1, 0, 0], 1e60 + 1e179, rtol=1e-15)
    assert np.all(np.isnan(sol.x[2:, 0]))
    np.testing.assert_array_equal(sol.counts, [3] + [2] * N_STEPS)
    x = sol.x[:, :, 0]
    np.testing.assert_allclose(sol.mean[0], [np.mean(x[0]), np.mean(x[0] ** 2)], rtol=1e-15)
    np.testing.assert_allclose(sol.mean[1:, 0], x[1:, 1:].mean(axis=1), rtol=1e-14)
    np.testing.assert_allclose(sol.mean[1:, 1], (x[1:, 1:] ** 2).mean(axis=1), rtol=1e-14)
    assert np.all(np.isfinite(sol.mean)) and np.all(np.isfinite(sol.var))
    dropped = se.simulate(deterministic, x0, (T0, T0 + N_STEPS * DT), DT, 3,
                          on_divergence="drop", **kwargs)
    np.testing.assert_array_equal(dropped.kept_paths, [1, 2])
    np.testing.assert_array_equal(dropped.mean, sol.mean)


