"""The torch backend against the Numba engine: statistics within Monte Carlo error,
exact one-step agreement of the discrete optimizers, torch forms of the optimizer SDEs at
a point, seeds, and refusals.

Statistical checks assert |mean_torch − mean_numba| < 4·sqrt(se_torch² + se_numba²)
(or against an exact value, < 4·se), with the standard errors of the runs themselves.
Both backends use the same scheme and step, so their discretisation biases are equal and
only Monte Carlo error separates them. Tests marked ``gpu`` run the same checks on CUDA.
"""
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchsde")

import sde_engine as se  # noqa: E402
from sde_engine import simulate  # noqa: E402
from sde_engine.examples import ou_moments  # noqa: E402
from sde_engine.models import adam_sde, rmsprop_sde, sgd_sde  # noqa: E402
from sde_engine.optimizers import (adam, adamw, rmsprop, rmspropw, sgd, sgd_momentum,  # noqa: E402
                                   signsgd, signum)
from sde_engine.problems import quadratic  # noqa: E402
from sde_engine.runner import run_optimizer  # noqa: E402
from sde_engine.torch.discrete import run_optimizer_torch, torch_update  # noqa: E402
from sde_engine.torch.models import torch_form  # noqa: E402

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")


def assert_agree(mean1, se1, mean2, se2, k=4.0):
    """|mean1 − mean2| < k·sqrt(se1² + se2²) entry by entry (exact ties pass)."""
    diff = np.abs(np.asarray(mean1) - np.asarray(mean2))
    bound = k * np.sqrt(np.asarray(se1) ** 2 + np.asarray(se2) ** 2)
    bad = ~((diff < bound) | (diff == 0))
    assert not np.any(bad), f"diff {diff[bad]} >= bound {bound[bad]}"


def theta_moments_numba(t, x, params, out):
    """(θ_0, θ_1, θ_0², θ_1²) of an optimizer-SDE state (Numba observable)."""
    out[0] = x[0]
    out[1] = x[1]
    out[2] = x[0] * x[0]
    out[3] = x[1] * x[1]


def theta_moments_torch(t, x):
    """The same observable as a torch function."""
    return torch.cat((x[:, :2], x[:, :2] ** 2), dim=1)


# ---- GBM and OU: torch vs Numba -------------------------------------------------------
@pytest.mark.parametrize("method", ["euler_maruyama", "milstein"])
def test_gbm_statistics_agree_with_numba(gbm, moments, method):
    kw = dict(method=method, seed=11, save_at=[0.5, 1.0])
    numba_sol = simulate(gbm, [1.0], (0.0, 1.0), 0.05, 20000, observables=moments,
                         n_observables=2, **kw)
    torch_sol = simulate(gbm, [1.0], (0.0, 1.0), 0.05, 20000, observables="moments",
                         backend="torch", device="cpu", **kw)
    assert torch_sol.mean.shape == numba_sol.mean.shape == (2, 2)
    assert torch_sol.n_used == 20000 and torch_sol.info["backend"] == "torch"
    np.testing.assert_array_equal(torch_sol.t, numba_sol.t)
    assert_agree(torch_sol.mean, torch_sol.stderr, numba_sol.mean, numba_sol.stderr)


def test_ou_statistics_agree_with_numba_and_the_saved_paths_layout(ou, moments):
    x0 = [1.0]
    numba_sol = simulate(ou, x0, (0.0, 2.0), 0.1, 20000, observables=moments,
                         n_observables=2, seed=5, save_paths=True)
    torch_sol = simulate(ou, x0, (0.0, 2.0), 0.1, 20000, observables="moments",
                         seed=5, save_paths=True, backend="torch")
    assert torch_sol.x.shape == numba_sol.x.shape == (2, 20000, 1)
    assert np.all(torch_sol.x[0] == 1.0)
    # The streamed statistics are those of the saved paths.
    np.testing.assert_allclose(torch_sol.mean[-1], [torch_sol.x[-1, :, 0].mean(),
                                                    (torch_sol.x[-1, :, 0] ** 2).mean()],
                               rtol=1e-12)
    assert_agree(torch_sol.mean, torch_sol.stderr, numba_sol.mean, numba_sol.stderr)


def test_srk_on_ou_matches_the_exact_moments(ou):
    """torch-only srk (Rößler SRI, weak order ≥ 1 for this additive noise) at dt = 0.01:
    its bias is far below the Monte Carlo error of 20000 paths."""
    sol = simulate(ou, [1.0], (0.0, 1.0), 0.01, 20000, method="srk", observables="moments",
                   seed=2, backend="torch")
    mean, var = ou_moments(1.0, 1.0, theta=1.0, mean=0.0, sigma=0.5)
    assert_agree(sol.mean[-1], sol.stderr[-1], [mean, mean**2 + var], [0.0, 0.0])
    assert sol.info["torchsde_method"] == "srk"


# ---- optimizer SDEs on a quadratic ------------------------------------------------------
H_FULL = np.array([[2.0, 0.5], [0.5, 1.0]])
SIGMA_FULL = np.array([[1.0, 0.6], [0.6, 2.0]])
THETA_STAR = np.array([1.0, -1.0])


def _models(problem):
    return [sgd_sde(problem, 0.1),
            rmsprop_sde(problem, 0.1, beta=0.99, eps=1.0, bias_correction=False),
            rmsprop_sde(problem, 0.1, beta=0.99, eps=1.0, bias_correction=True),
            adam_sde(problem, 0.1, betas=(0.98, 0.99), eps=1.0, bias_correction=False),
            adam_sde(problem, 0.1, betas=(0.98, 0.99), eps=1.0, bias_correction=True)]


@pytest.mark.parametrize("diagonal", [True, False], ids=["diagonal", "full"])
def test_torch_forms_of_the_optimizer_sdes_equal_the_numba_coefficients(diagonal):
    """f and g·v of every torch form against the model's own drift and diffusion at
    t = 0 (the small-t limits) and t > 0, with u = 0 and u > 0."""
    H, S = (np.diag(H_FULL), np.diag(SIGMA_FULL)) if diagonal else (H_FULL, SIGMA_FULL)
    problem = quadratic(H, THETA_STAR, S, noise_scale=10.0)
    rng = np.random.default_rng(0)
    for model in _models(problem):
        sde = model.sde
        form = torch_form(model)
        assert form.dim == sde.dim
        assert form.noise_type == ("diagonal" if diagonal else "general")
        for t in (0.0, 0.3):
            x = rng.normal(size=sde.dim)
            if model.optimizer != "sgd":
                x[-2:] = [0.0, 0.7] if t == 0.0 else np.abs(x[-2:])
            if model.optimizer == "adam" and t == 0.0:
                x[2:4] = 0.0
            f, g = np.empty(sde.dim), np.empty(sde.diffusion_shape)
            sde.drift(t, x, sde.params, f)
            sde.diffusion(t, x, sde.params, g)
            y, tt = torch.tensor(x)[None], torch.tensor(t, dtype=torch.float64)
            np.testing.assert_allclose(form.f(tt, y)[0].numpy(), f, rtol=1e-13, atol=1e-14)
            if diagonal:
                # Brownian component i drives state coordinate i: each d-block of the
                # Numba diffusion (dim, d) must be diagonal with the torch g on it.
                d = problem.dim
                blocks = [g[j * d:(j + 1) * d] for j in range(sde.dim // d)]
                assert all(not np.any(b - np.diag(np.diag(b))) for b in blocks)
                np.testing.assert_allclose(form.g(tt, y)[0].numpy(),
                                           np.concatenate([np.diag(b) for b in blocks]),
                                           rtol=1e-13, atol=1e-14)
            else:
                v = rng.normal(size=sde.noise_dim)
                gv = form.g_prod(tt, y, torch.tensor(v)[None])[0].numpy()
                np.testing.assert_allclose(gv, g @ v, rtol=1e-13, atol=1e-14)


@pytest.fixture(scope="module")
def adam_model():
    problem = quadratic(H_FULL, THETA_STAR, SIGMA_FULL, noise_scale=10.0)
    return adam_sde(problem, 0.1, betas=(0.98, 0.99), eps=1.0)


def path_moments(x):
    """Mean and standard error of (θ_0, θ_1, θ_0², θ_1²) from saved states (n_save, n, dim)."""
    phi = np.concatenate([x[..., :2], x[..., :2] ** 2], axis=-1)
    return phi.mean(axis=1), phi.std(axis=1, ddof=1) / np.sqrt(x.shape[1])


def test_adam_sde_statistics_agree_with_numba(adam_model):
    """Bias-corrected Adam SDE (full H and Σ: torch uses general noise as a product g·v).
    The Numba side saves paths (no observable function: its compiled driver is shared
    with the other tests of this model)."""
    x0 = adam_model.initial_state([0.0, 0.0])
    t_span, dt = adam_model.t_span(40), adam_model.h
    kw = dict(seed=3, save_at=[t_span[1] / 2, t_span[1]])
    numba_sol = simulate(adam_model.sde, x0, t_span, dt, 10000, **kw)
    torch_sol = simulate(adam_model, x0, t_span, dt, 20000, observables=theta_moments_torch,
                         backend="torch", **kw)
    assert torch_sol.mean.shape == (2, 4)
    assert_agree(torch_sol.mean, torch_sol.stderr, *path_moments(numba_sol.x))


def test_rmsprop_sde_matches_the_exact_euler_moments():
    """Bias-corrected RMSprop from u0 = 0 with constant Σ has the constant preconditioner
    F = 1/(σ0 √diagΣ + ε0) (SPEC §3), so Euler–Maruyama is the linear recursion
    μ ← μ − dt F H (μ − θ*),  C ← A C Aᵀ + dt σ0² F Σ F,  A = I − dt F H:
    an exact reference for the scheme itself (no discretisation bias to tolerate)."""
    problem = quadratic(H_FULL, THETA_STAR, SIGMA_FULL, noise_scale=10.0)
    model = rmsprop_sde(problem, 0.1, beta=0.99, eps=1.0, bias_correction=True)
    c = model.constants
    theta0, n_steps, dt = np.array([2.0, 0.0]), 30, model.h
    sol = simulate(model, model.initial_state(theta0), model.t_span(n_steps), dt, 20000,
                   observables=theta_moments_torch, seed=9, backend="torch")
    F = np.diag(1.0 / (c["sigma0"] * np.sqrt(np.diag(SIGMA_FULL)) + c["eps0"]))
    A = np.eye(2) - dt * F @ H_FULL
    mu, C = theta0.copy(), np.zeros((2, 2))
    for _ in range(n_steps):
        mu = mu - dt * F @ H_FULL @ (mu - THETA_STAR)
        C = A @ C @ A.T + dt * c["sigma0"] ** 2 * F @ SIGMA_FULL @ F
    exact = np.concatenate([mu, mu**2 + np.diag(C)])
    assert_agree(sol.mean[-1], sol.stderr[-1], exact, np.zeros(4))


# ---- discrete optimizers ------------------------------------------------------------------
OPTIMIZERS = [sgd(lr=0.1), sgd_momentum(lr=0.1, momentum=0.8), signsgd(lr=0.1),
              signum(lr=0.1, momentum=0.8),
              rmsprop(lr=0.05, beta=0.9),
              rmsprop(lr=0.05, beta=0.9, bias_correction=True),
              adam(lr=0.1, betas=(0.9, 0.99)), adam(lr=0.1, betas=(0.8, 0.999), eps=1e-3,
                                                    bias_correction=False),
              rmspropw(lr=0.05, beta=0.9, weight_decay=0.3),
              adamw(lr=0.1, betas=(0.9, 0.99), weight_decay=0.3)]


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=repr)
def test_one_torch_step_is_bit_identical_to_the_numba_update(opt):
    """Same gradient and state: the same float64 bits, on 200 random states and several
    k (catches a square root or β^k that is off by one ulp)."""
    d, n = 4, 200
    rng = np.random.default_rng(1)
    states = opt.init(rng.normal(size=(n, d)))
    for block in ("m", "v", "b"):
        if block in opt.blocks:
            sl = opt.block_slice(block, d)
            states[:, sl] = rng.normal(size=(n, d)) ** (2 if block == "v" else 1)
    g = rng.normal(size=(n, d))
    for k in (1, 2, 4, 13, 1000):
        new = torch_update(opt, k, torch.tensor(g), torch.tensor(states)).numpy()
        for i in range(n):
            np.testing.assert_array_equal(new[i], opt.step(k, g[i], states[i]))


def test_discrete_adam_in_torch_matches_numba_statistically():
    """Skewed (centred-exponential) noise, so the torch oracle's family is checked too."""
    problem = quadratic(H_FULL, THETA_STAR, SIGMA_FULL, noise="skewed", noise_scale=2.0)
    opt = adam(lr=0.05, betas=(0.9, 0.99))
    kw = dict(seed=4, record_steps=[10, 40], observables=["theta", "theta_sq", "loss"])
    a = run_optimizer(problem, opt, [0.0, 0.0], 40, 10000, **kw)
    b = run_optimizer_torch(problem, opt, [0.0, 0.0], 40, 20000, **kw)
    assert b.info["labels"] == a.info["labels"] and b.mean.shape == a.mean.shape == (2, 5)
    np.testing.assert_array_equal(b.t, a.t)
    assert_agree(b.mean, b.stderr, a.mean, a.stderr)


def test_torch_observables_of_the_discrete_runs():
    """A torch observable built on torch_loss gives the named "loss" column (same draws),
    and the loss of the saved states."""
    from sde_engine.torch.models import torch_loss
    problem = quadratic(H_FULL, THETA_STAR, SIGMA_FULL)
    opt = rmsprop(lr=0.05, beta=0.9)
    loss = torch_loss(problem)
    kw = dict(seed=2, record_steps=[3, 8])
    named = run_optimizer_torch(problem, opt, [0.0, 0.0], 8, 500, observables=["loss"], **kw)
    own = run_optimizer_torch(problem, opt, [0.0, 0.0], 8, 500,
                              observables=lambda k, x: loss(x[:, :2])[:, None], **kw)
    paths = run_optimizer_torch(problem, opt, [0.0, 0.0], 8, 500, **kw).x
    np.testing.assert_array_equal(named.mean, own.mean)
    r = paths[..., :2] - THETA_STAR
    np.testing.assert_allclose(named.mean[:, 0],
                               0.5 * np.einsum("sni,ij,snj->sn", r, H_FULL, r).mean(axis=1),
                               rtol=1e-12)


@pytest.mark.parametrize("family,third", [("gaussian", 0.0), ("rademacher", 0.0),
                                          ("skewed", 2.0)])
@pytest.mark.parametrize("svag", [False, True])
def test_torch_oracle_moments(family, third, svag):
    """g = ∇f + σ S ξ at a fixed θ (diagonal S): mean ∇f, variance A σ² Σ_ii, third central
    moment E ξ³ (σ s_i)³ (times (r1³ + r2³) for the SVAG mix g = r1 g1 + r2 g2)."""
    from sde_engine.optimizers.svag import svag_problem
    from sde_engine.torch.discrete import QuadraticOracleTorch
    h, sig, sigma, theta = np.array([1.0, 3.0]), np.array([0.5, 2.0]), 1.5, np.array([0.3, -1.0])
    problem = quadratic(h, THETA_STAR, sig, noise=family, noise_scale=sigma)
    r1, r2 = (1.0, 0.0) if not svag else ((1 + np.sqrt(7)) / 2, (1 - np.sqrt(7)) / 2)   # ℓ=2
    oracle = QuadraticOracleTorch(svag_problem(problem, r1, r2) if svag else problem, "cpu",
                                  torch.float64)
    gen = torch.Generator().manual_seed(0)
    n = 200_000
    g = oracle(torch.tensor(theta).expand(n, 2), gen).numpy()
    c = g - g.mean(axis=0)
    var, m3, m4 = (c**2).mean(axis=0), (c**3).mean(axis=0), (c**4).mean(axis=0)
    s_i = sigma * np.sqrt(sig)
    assert_agree(g.mean(axis=0), np.sqrt(var / n), h * (theta - THETA_STAR), 0.0)
    assert_agree(var, np.sqrt((m4 - var**2) / n), (r1**2 + r2**2) * s_i**2, 0.0)
    m6 = (c**6).mean(axis=0)
    assert_agree(m3, np.sqrt((m6 - m3**2) / n), third * (r1**3 + r2**3) * s_i**3, 0.0)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu,
                                                                    needs_cuda])])
def test_float32_paths_agree_with_float64_within_monte_carlo_error(gbm, device):
    """dtype=np.float32 runs in float32 (saved states are float32 numbers) and its
    statistics, accumulated in float64, agree with the float64 run's."""
    kw = dict(seed=5, save_at=[0.5, 1.0], backend="torch", device=device)
    runs = {dtype: simulate(gbm, [1.0], (0.0, 1.0), 0.05, 20000, observables="moments",
                            dtype=dtype, **kw) for dtype in (np.float32, "float64")}
    single, double = runs[np.float32], runs["float64"]
    assert single.info["dtype"] == "float32" and double.info["dtype"] == "float64"
    assert_agree(single.mean, single.stderr, double.mean, double.stderr)
    for dtype, in_float32 in ((torch.float32, True), ("float64", False)):
        x = simulate(gbm, [1.0], (0.0, 1.0), 0.05, 100, dtype=dtype, **kw).x
        assert np.array_equal(x, x.astype(np.float32)) == in_float32


# ---- seeds, chunks, layout ------------------------------------------------------------------
def test_torch_runs_are_reproducible_for_a_seed(ou):
    def run(seed, **kw):
        return simulate(ou, [1.0], (0.0, 1.0), 0.1, 300, seed=seed, backend="torch", **kw).x

    np.testing.assert_array_equal(run(7), run(7))
    assert not np.array_equal(run(7), run(8))
    np.testing.assert_array_equal(run(7, method="srk"), run(7, method="srk"))
    problem = quadratic([1.0, 2.0], noise="rademacher")
    opt = adam(lr=0.1)
    x1, x2 = (run_optimizer_torch(problem, opt, [1.0, 1.0], 5, 200, seed=3).x for _ in range(2))
    np.testing.assert_array_equal(x1, x2)


def test_full_chunks_do_not_depend_on_n_paths(gbm):
    """Chunk c draws from its own generator: with chunk_paths=100, paths 0..199 are the
    same whether 250 or 300 paths are run."""
    from sde_engine.torch.simulate import simulate_torch
    kw = dict(method="euler_maruyama", seed=1, save_at=None, observables=None,
              n_observables=None, save_paths=True, save_brownian=False, brownian_dt=None,
              on_divergence="raise", path_offset=0, n_threads=None, device="cpu",
              chunk_paths=100)
    a = simulate_torch(gbm, [1.0], (0.0, 1.0), 0.1, 250, **kw).x
    b = simulate_torch(gbm, [1.0], (0.0, 1.0), 0.1, 300, **kw).x
    np.testing.assert_array_equal(a[:, :200], b[:, :200])
    assert not np.array_equal(a[:, 200:250], b[:, 200:250])


class CubicTorch:
    """dX = X³ dt (no noise): explodes in finite time."""

    noise_type, sde_type, dim = "diagonal", "ito", 1

    def f(self, t, y):
        return y**3

    def g(self, t, y):
        return torch.zeros_like(y)


class BrownianTorch:
    """dX = dW: Euler gives X_T = W_T exactly, at any step."""

    noise_type, sde_type, dim = "diagonal", "ito", 2

    def f(self, t, y):
        return torch.zeros_like(y)

    def g(self, t, y):
        return torch.ones_like(y)


def test_brownian_dt_couples_runs_with_different_steps_and_offsets_split_a_run():
    def run(dt, n=200, **kw):
        return simulate(BrownianTorch(), [0.0, 0.0], (0.0, 1.0), dt, n, seed=6,
                        backend="torch", **kw).x[-1]

    fine, coarse = run(0.05, brownian_dt=0.05), run(0.1, brownian_dt=0.05)
    np.testing.assert_allclose(coarse, fine, rtol=1e-12, atol=1e-12)
    assert np.max(np.abs(run(0.1) - fine)) > 0.1
    assert 0.8 < np.var(fine) < 1.2                    # Var W_1 = 1 (400 values)
    from sde_engine.torch.simulate import simulate_torch
    kw = dict(method="euler_maruyama", seed=1, save_at=None, observables=None,
              n_observables=None, save_paths=True, save_brownian=False, brownian_dt=None,
              on_divergence="raise", n_threads=None, device="cpu", chunk_paths=100)
    whole = simulate_torch(BrownianTorch(), [0.0, 0.0], (0, 1), 0.1, 200, path_offset=0, **kw)
    part = simulate_torch(BrownianTorch(), [0.0, 0.0], (0, 1), 0.1, 100, path_offset=100, **kw)
    np.testing.assert_array_equal(part.x, whole.x[:, 100:])


def test_divergence_is_reported_at_the_first_save_step_after_it():
    dt, save_at = 0.05, [0.2, 0.4, 0.6, 0.8, 1.0]
    x, k_bad = np.float64(2.0), 0
    with np.errstate(over="ignore", invalid="ignore"):
        while np.isfinite(x):
            x, k_bad = x + x**3 * dt, k_bad + 1
    assert k_bad * dt < 1.0
    with pytest.raises(se.DivergenceError):
        simulate(CubicTorch(), [2.0], (0.0, 1.0), dt, 3, backend="torch")
    with pytest.warns(RuntimeWarning, match="non-finite"):
        sol = simulate(CubicTorch(), [2.0], (0.0, 1.0), dt, 3, backend="torch",
                       on_divergence="warn", save_at=save_at)
    reported = min(t for t in save_at if t >= k_bad * dt - 1e-12)
    np.testing.assert_allclose(sol.diverged.times, reported)
    np.testing.assert_array_equal(sol.diverged.paths, [0, 1, 2])
    assert np.all(np.isnan(sol.x[sol.t >= reported - 1e-12]))
    assert np.all(np.isfinite(sol.x[sol.t < reported - 1e-12]))
    assert sol.n_used == 0


# ---- refusals --------------------------------------------------------------------------------
def test_what_the_torch_backend_cannot_do_is_refused(general, gbm, adam_model):
    x0 = adam_model.initial_state([0.0, 0.0])
    cases = [
        (lambda: simulate(general, [0.0, 0.0], (0, 1), 0.1, 10, backend="torch"),
         "no torch form"),
        (lambda: simulate(adam_model.sde, x0, (0, 0.1), 0.01, 10, backend="torch"),
         "pass the OptimizerSDE"),
        (lambda: simulate(adam_model, x0, (0, 0.1), 0.01, 10, method="milstein",
                          backend="torch"), "supports"),
        (lambda: simulate(gbm, [1.0], (0, 1), 0.1, 10, backend="torch", save_brownian=True),
         "save_brownian"),
        (lambda: simulate(gbm, [1.0], (0, 1), 0.1, 10, backend="torch", brownian_dt=0.05,
                          method="srk"), "brownian_dt"),
        (lambda: simulate(gbm, [1.0], (0, 1), 0.1, 10, backend="torch", brownian_dt=0.03),
         "brownian_dt"),
        (lambda: simulate(gbm, [1.0], (0, 1), 0.1, 10, backend="torch",
                          observables=theta_moments_numba, n_observables=4), "Numba-style"),
        (lambda: simulate(gbm, [1.0], (0, 1), 0.1, 10, backend="torch",
                          observables="moments", n_observables=3), "n_observables"),
        (lambda: simulate(gbm, [1.0], (0, 1), 0.1, 10, backend="jax"), "backend"),
        (lambda: simulate(gbm, [1.0], (0, 1), 0.1, 10, device="cpu"), "backend='torch'"),
        (lambda: simulate(gbm, [1.0], (0, 1), 0.1, 10, backend="torch", method="heun"),
         "method"),
        (lambda: simulate(gbm, [1.0], (0, 1), 0.1, 10, backend="torch", device="tpu:x"),
         "device"),
        (lambda: run_optimizer_torch(quadratic([1.0]), adam(lr=0.1), [0.0], 5, 10,
                                     dtype="float16"), "dtype"),
    ]
    if not CUDA:
        cases.append((lambda: simulate(gbm, [1.0], (0, 1), 0.1, 10, backend="torch",
                                       device="cuda"), "CUDA"))
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()


def test_missing_torch_says_how_to_install_it():
    """With torch unimportable the core still imports, and the torch backend asks for
    ``pip install 'sde-engine[torch]'``."""
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['torchsde'] = None\n"
        "import numpy as np, sde_engine, solvers.torchsde_backend, sde_engine.torch.simulate\n"
        "try:\n"
        "    sde_engine.simulate(sde_engine.gbm(), [1.0], (0, 1), 0.1, 4, backend='torch')\n"
        "except ImportError as e:\n"
        "    print('IMPORT-ERROR', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "IMPORT-ERROR" in out.stdout and "pip install 'sde-engine[torch]'" in out.stdout


# ---- GPU ---------------------------------------------------------------------------------------
@pytest.mark.gpu
@needs_cuda
def test_gpu_adam_sde_and_discrete_adam_agree_with_numba(adam_model):
    x0 = adam_model.initial_state([0.0, 0.0])
    t_span, dt = adam_model.t_span(40), adam_model.h
    numba_sol = simulate(adam_model.sde, x0, t_span, dt, 10000, seed=3)
    gpu = simulate(adam_model, x0, t_span, dt, 200000, observables=theta_moments_torch,
                   seed=3, backend="torch", device="cuda")
    assert_agree(gpu.mean, gpu.stderr, *path_moments(numba_sol.x))
    assert gpu.info["device"].startswith("cuda")
    again = simulate(adam_model, x0, t_span, dt, 200000, observables=theta_moments_torch,
                     seed=3, backend="torch", device="cuda")
    np.testing.assert_array_equal(gpu.mean, again.mean)
    problem = adam_model.problem
    opt = adam(lr=0.05, betas=(0.9, 0.99))
    kw = dict(seed=4, record_steps=[10, 40], observables=["theta", "theta_sq", "loss"])
    a = run_optimizer(problem, opt, [0.0, 0.0], 40, 10000, **kw)
    b = run_optimizer_torch(problem, opt, [0.0, 0.0], 40, 200000, device="cuda", **kw)
    assert_agree(b.mean, b.stderr, a.mean, a.stderr)
    rng = np.random.default_rng(2)
    state = opt.init(rng.normal(size=(50, 2)))
    state[:, 2:] = rng.normal(size=(50, 4)) ** 2
    g = rng.normal(size=(50, 2))
    on_gpu = torch_update(opt, 3, torch.tensor(g, device="cuda"),
                          torch.tensor(state, device="cuda")).cpu().numpy()
    expected = np.array([opt.step(3, g[i], state[i]) for i in range(50)])
    # CUDA kernels fuse a*b + c into one FMA (nvcc's default), so a step on the GPU agrees
    # with the Numba update to rounding, not bit for bit as on the CPU (on an H200, 6 of
    # these 300 entries differed, all in theta, each by 1 ulp)
    np.testing.assert_array_max_ulp(on_gpu, expected, maxulp=4)
