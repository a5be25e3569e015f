"""AdamQLR (SPEC §7): the engine optimizer and the torch optimizer.

Numba compiles the run kernel once per (problem, curvature) pair: the tests use two
(Rosenbrock with Hessian curvature, the quadratic), a few seconds each on an idle machine.
"""
import math

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from sde_engine.optimizers.adamqlr import (LR_CLIPPING, adamqlr_run, curvature_product,
                                           qlr_alpha, qlr_damping)
from sde_engine.problems.quadratic import quadratic
from sde_engine.problems.regression import (linear_regression, logistic_regression,
                                            synthetic_regression)
from sde_engine.problems.rosenbrock import rosenbrock

H3 = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]])
THETA3 = np.array([0.5, -1.0, 2.0])


@pytest.fixture(scope="module")
def quad():
    return quadratic(H3, THETA3)


@pytest.fixture(scope="module")
def rosen():
    return rosenbrock()


def _adam_first_direction(g, eps=1e-8):
    # step 1 with bias correction: m̂ = g, v̂ = g²
    return g / (np.abs(g) + eps)


# ---- the step size is the minimiser of the damped model ------------------------------
@pytest.mark.parametrize("damping", [1e-12, 0.3])
def test_alpha_minimises_damped_line_model_on_quadratic(quad, damping):
    # Different starting points, one step each; exact Hessian curvature.
    x0 = np.array([[2.0, 1.0, -1.0], [-3.0, 0.2, 0.7], [0.1, 4.0, 2.5]])
    res = adamqlr_run(quad, x0, 1, n_paths=3, noisy=False, damping=damping, lr_clipping=None)
    for i in range(3):
        d = _adam_first_direction(H3 @ (x0[i] - THETA3))
        # f(θ − αd) + ½ λ α² ‖d‖² is the damped quadratic model along d (exact for f quadratic)
        line = minimize_scalar(
            lambda a: quad.loss_at(x0[i] - a * d) + 0.5 * damping * a * a * d @ d,
            bracket=(0.0, 1.0), tol=1e-12)
        assert res.alpha[i, 0] == pytest.approx(line.x, rel=1e-7)
        assert res.loss[i, 1] == pytest.approx(quad.loss_at(x0[i] - res.alpha[i, 0] * d), rel=1e-12)


def test_rho_matches_hand_computation_on_quadratic(quad):
    x0 = np.array([2.0, 1.0, -1.0])
    lam = 0.3
    res = adamqlr_run(quad, x0, 1, noisy=False, damping=lam, lr_clipping=None)
    g = H3 @ (x0 - THETA3)
    d = _adam_first_direction(g)
    a_mat = d @ H3 @ d + lam * d @ d
    alpha = (g @ d) / a_mat
    f0, f1 = quad.loss_at(x0), quad.loss_at(x0 - alpha * d)
    rho = (f1 - f0) / (0.5 * alpha ** 2 * a_mat - alpha * (g @ d))
    assert res.rho[0, 0] == pytest.approx(rho, rel=1e-10)
    assert res.gtd[0, 0] == pytest.approx(g @ d, rel=1e-12)
    assert res.dcd[0, 0] == pytest.approx(d @ H3 @ d, rel=1e-10)


# ---- learning-rate clipping: alpha <- clip(b/A, -c, c) -------------------------------
def _first_step_by_hand(x0, lam, clip):
    """Step 1 on the quadratic H3 (Hessian curvature), written out: (α, θ1, ρ)."""
    g = H3 @ (x0 - THETA3)
    d = _adam_first_direction(g)
    a_mat = d @ H3 @ d + lam * d @ d
    alpha = float(np.clip((g @ d) / a_mat, -clip, clip))
    theta1 = x0 - alpha * d
    f0, f1 = 0.5 * (x0 - THETA3) @ H3 @ (x0 - THETA3), 0.5 * (theta1 - THETA3) @ H3 @ (theta1 - THETA3)
    return alpha, theta1, (f1 - f0) / (0.5 * alpha ** 2 * a_mat - alpha * (g @ d))


# x0 = (2, 1, −1), λ = 0.3: b/A = 12.5/7.9 ≈ 1.58, so c = 0.1 clips and c = 10 does not
@pytest.mark.parametrize("clip, active", [(LR_CLIPPING, True), (10.0, False)])
def test_lr_clipping_one_step_on_quadratic(quad, clip, active):
    x0, lam = np.array([2.0, 1.0, -1.0]), 0.3
    alpha, theta1, rho = _first_step_by_hand(x0, lam, clip)
    assert (alpha == clip) is active
    kw = {} if clip == LR_CLIPPING else dict(lr_clipping=clip)   # 0.1 is the default
    res = adamqlr_run(quad, x0, 1, noisy=False, damping=lam, **kw)
    assert res.alpha[0, 0] == pytest.approx(alpha, rel=1e-12)
    np.testing.assert_allclose(res.x[0], theta1, rtol=1e-12)
    assert res.rho[0, 0] == pytest.approx(rho, rel=1e-10)


@pytest.mark.parametrize("b, a, clip, expected", [
    (3.0, 2.0, 0.1, 0.1), (-3.0, 2.0, 0.1, -0.1), (3.0, -2.0, 0.1, -0.1),   # |α| > c: ±c
    (0.1, 2.0, 0.1, 0.05), (-0.1, 2.0, 0.1, -0.05),                          # |α| < c: as is
    (3.0, 2.0, math.inf, 1.5), (3.0, 0.0, 0.1, 0.0)])                        # off; A = 0
def test_lr_clipping_keeps_the_sign(b, a, clip, expected):
    # A = dᵀCd + λ dᵀd with dᵀd = 1, λ = 0: A is dcd; a negative α (b < 0 or A < 0) is
    # clipped to −c, never to 0 or +c
    alpha, a_out = qlr_alpha(b, a, 1.0, 0.0, clip)
    assert alpha == expected and a_out == a


def test_lr_clipping_validation(rosen):
    for bad in (0.0, -0.1, math.nan, "0.1"):
        with pytest.raises(ValueError, match="lr_clipping"):
            adamqlr_run(rosen, [1.0, -1.0], 5, lr_clipping=bad)


# ---- damping rule ---------------------------------------------------------------------
@pytest.mark.parametrize("rho, expected", [
    (0.9, 0.5e-3), (0.76, 0.5e-3), (0.75, 1e-3), (0.5, 1e-3), (0.25, 1e-3), (0.2, 2e-3),
    (-3.0, 2e-3), (math.nan, 1e-3), (math.inf, 0.5e-3), (-math.inf, 2e-3)])
def test_damping_rule_thresholds(rho, expected):
    assert qlr_damping(1e-3, rho, 0.5, 2.0, 1e-8) == pytest.approx(expected, rel=1e-15)


def test_damping_floor():
    assert qlr_damping(1.5e-8, 1.0, 0.5, 2.0, 1e-8) == 1e-8
    assert qlr_damping(1e-8, 0.9, 0.5, 2.0, 1e-8) == 1e-8
    assert qlr_damping(1e-8, 0.1, 0.5, 2.0, 1e-8) == 2e-8


def test_damping_sequence_follows_rho_on_rosenbrock(rosen):
    res = adamqlr_run(rosen, [1.0, -1.0], 200, noisy=False, curvature="hessian",
                      lr_clipping=None)
    lam, rho = res.damping[0], res.rho[0]
    assert lam[0] == 1e-3
    for k in range(199):
        assert lam[k + 1] == qlr_damping(lam[k], rho[k], 0.5, 2.0, 1e-8)
    # both branches of the rule and the floor are exercised along this run
    assert np.any(rho < 0.25) and np.any(rho > 0.75) and np.any(lam == 1e-8)
    assert np.all(lam >= 1e-8)


# ---- curvature products -----------------------------------------------------------
def test_rosenbrock_products_match_finite_differences(rosen):
    rng = np.random.default_rng(1)
    h = 1e-6
    for _ in range(5):
        x, v = rng.normal(size=2), rng.normal(size=2)
        hv, gv = np.empty(2), np.empty(2)
        curvature_product(rosen, "hessian")(x, rosen.params, v, hv)
        curvature_product(rosen, "gauss_newton")(x, rosen.params, v, gv)
        fd_h = (rosen.grad_at(x + h * v) - rosen.grad_at(x - h * v)) / (2 * h)
        np.testing.assert_allclose(hv, fd_h, rtol=1e-6, atol=1e-6)
        # Gauss–Newton of f = ‖r‖²: 2 Jᵀ J v with J v by central differences of r
        def resid(z):
            return np.array([1.0 - z[0], 10.0 * (z[1] - z[0] ** 2)])
        jv = (resid(x + h * v) - resid(x - h * v)) / (2 * h)
        jac = np.array([[-1.0, 0.0], [-20.0 * x[0], 10.0]])
        np.testing.assert_allclose(gv, 2 * jac.T @ jv, rtol=1e-6, atol=1e-6)


def test_quadratic_product_is_hessian(quad):
    v, out = np.array([0.3, -1.2, 2.0]), np.empty(3)
    curvature_product(quad, "gauss_newton")(np.array([5.0, -2.0, 1.0]), quad.params, v, out)
    np.testing.assert_allclose(out, H3 @ v, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["linear", "logistic"])
def test_regression_products_match_hessian(kind):
    X, y, _ = synthetic_regression(40, 3, kind=kind, seed=2)
    build = linear_regression if kind == "linear" else logistic_regression
    problem = build(X, y, 8, l2=0.1)
    x, v, out = np.array([0.4, -1.0, 2.0]), np.array([1.0, 0.5, -2.0]), np.empty(3)
    for curvature in ("hessian", "gauss_newton"):
        curvature_product(problem, curvature)(x, problem.params, v, out)
        np.testing.assert_allclose(out, problem.hessian(x) @ v, rtol=1e-12, atol=1e-14)


def test_saved_path_replays_the_recorded_steps(rosen):
    # θ_k − θ_{k−1} = −α_k d_k, and the recorded losses are f at the saved iterates
    res = adamqlr_run(rosen, [1.0, -1.0], 20, noisy=False, save_path=True, curvature="hessian")
    path = res.path[0]
    np.testing.assert_array_equal(path[-1], res.x[0])
    np.testing.assert_allclose([rosen.loss_at(p) for p in path], res.loss[0], rtol=1e-13)


# ---- noisy runs ---------------------------------------------------------------------
def test_noisy_runs_reproducible_and_path_independent(rosen):
    noisy = rosen.with_noise_scale(0.5)
    a = adamqlr_run(noisy, [1.0, -1.0], 30, n_paths=4, seed=7, curvature="hessian")
    b = adamqlr_run(noisy, [1.0, -1.0], 30, n_paths=2, seed=7, curvature="hessian")
    np.testing.assert_array_equal(a.alpha[:2], b.alpha)
    np.testing.assert_array_equal(a.x[:2], b.x)
    assert not np.array_equal(a.alpha[0], a.alpha[1])


def test_bad_arguments_raise(rosen):
    with pytest.raises(ValueError, match="omega_dec"):
        adamqlr_run(rosen, [1.0, -1.0], 5, omega_dec=1.5)
    with pytest.raises(ValueError, match="curvature"):
        adamqlr_run(rosen, [1.0, -1.0], 5, curvature="fisher")
    with pytest.raises(ValueError, match="betas"):
        adamqlr_run(rosen, [1.0, -1.0], 5, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="x0"):
        adamqlr_run(rosen, [1.0, -1.0, 0.0], 5)
    with pytest.raises(TypeError):
        adamqlr_run(rosen, [1.0, -1.0], 5, lr=0.1)


def test_modules_import_without_torch():
    import subprocess
    import sys
    code = ("import sys; import sde_engine.optimizers.adamqlr_torch, sde_engine.optimizers; "
            "assert 'torch' not in sys.modules, 'torch imported eagerly'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- torch optimizer -------------------------------------------------------------
try:
    import torch
    from sde_engine.optimizers.adamqlr_torch import AdamQLR, module_fn
except ImportError:  # the [torch] extra is optional
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="needs the [torch] extra")


def _torch_run(loss_fn, x0, n_steps, **kw):
    theta = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    opt = AdamQLR([theta], **kw)
    log = []
    for _ in range(n_steps):
        opt.step(model_fn=lambda p: p, loss_fn=loss_fn)
        log.append(opt.last_step)
    return log


@pytest.mark.torch
@needs_torch
@pytest.mark.parametrize("clip, active", [(LR_CLIPPING, True), (10.0, False)])
def test_torch_lr_clipping_one_step_on_quadratic(clip, active):
    x0, lam = np.array([2.0, 1.0, -1.0]), 0.3
    alpha, theta1, rho = _first_step_by_hand(x0, lam, clip)
    assert (alpha == clip) is active
    h, ts = torch.tensor(H3), torch.tensor(THETA3)
    theta = torch.tensor(x0, requires_grad=True)
    kw = {} if clip == LR_CLIPPING else dict(lr_clipping=clip)   # 0.1 is the default
    opt = AdamQLR([theta], damping=lam, curvature="hessian", **kw)
    opt.step(model_fn=lambda p: p, loss_fn=lambda p: 0.5 * (p - ts) @ h @ (p - ts))
    assert opt.last_step["alpha"] == pytest.approx(alpha, rel=1e-12)
    np.testing.assert_allclose(theta.detach().numpy(), theta1, rtol=1e-12)
    assert opt.last_step["rho"] == pytest.approx(rho, rel=1e-10)


@pytest.mark.torch
@needs_torch
def test_torch_and_engine_agree_on_rosenbrock(rosen):
    # Rosenbrock is chaotic under AdamQLR: rounding differences grow ~1e-13 → 1e-6 by
    # step ~90, so the comparison stops at 60 steps.
    n = 60
    res = adamqlr_run(rosen, [1.0, -1.0], n, noisy=False, curvature="hessian")
    log = _torch_run(lambda p: (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2,
                        [1.0, -1.0], n, curvature="hessian")
    np.testing.assert_allclose([s["alpha"] for s in log], res.alpha[0], rtol=1e-8)
    np.testing.assert_array_equal([s["damping"] for s in log], res.damping[0])
    np.testing.assert_allclose([s["rho"] for s in log], res.rho[0], rtol=1e-6)


@pytest.mark.torch
@needs_torch
@pytest.mark.parametrize("curvature", ["hessian", "gauss_newton"])
def test_torch_and_engine_agree_on_quadratic(quad, curvature):
    n = 100
    x0 = [2.0, 1.0, -1.0]
    res = adamqlr_run(quad, x0, n, noisy=False, curvature=curvature)
    ts = torch.tensor(THETA3)
    # least-squares form for Gauss–Newton: outputs r = H^{1/2}(θ − θ*), loss ½‖r‖²
    w, v = np.linalg.eigh(H3)
    root = torch.tensor(v @ np.diag(np.sqrt(w)) @ v.T)
    theta = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    opt = AdamQLR([theta], curvature=curvature)
    alphas, lams = [], []
    for _ in range(n):
        opt.step(model_fn=lambda p: root @ (p - ts), loss_fn=lambda r: 0.5 * r @ r)
        alphas.append(opt.last_step["alpha"])
        lams.append(opt.last_step["damping"])
    np.testing.assert_allclose(alphas, res.alpha[0], rtol=1e-9)
    np.testing.assert_array_equal(lams, res.damping[0])
    np.testing.assert_allclose(theta.detach().numpy(), res.x[0], rtol=1e-9, atol=1e-12)


def _mlp(n_in, n_out, seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n_in, 6), torch.nn.Tanh(),
                               torch.nn.Linear(6, n_out)).double()


def _fd_jvp(model, direction, x, h=1e-6):
    # J d by central differences of the outputs in parameter space
    params = list(model.parameters())
    with torch.no_grad():
        for p, d in zip(params, direction):
            p.add_(d, alpha=h)
        plus = model(x)
        for p, d in zip(params, direction):
            p.sub_(d, alpha=2 * h)
        minus = model(x)
        for p, d in zip(params, direction):
            p.add_(d, alpha=h)
    return (plus - minus) / (2 * h)


@pytest.mark.torch
@needs_torch
@pytest.mark.parametrize("loss_kind", ["mse", "cross_entropy"])
def test_torch_gauss_newton_matches_finite_differences(loss_kind):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(20, 4, generator=gen, dtype=torch.float64)
    model = _mlp(4, 3, seed=4)
    if loss_kind == "mse":
        y = torch.randn(20, 3, generator=gen, dtype=torch.float64)
        loss_fn = lambda out: 0.5 * ((out - y) ** 2).sum(dim=1).mean()  # noqa: E731
    else:
        y = torch.randint(0, 3, (20,), generator=gen)
        loss_fn = lambda out: torch.nn.functional.cross_entropy(out, y)  # noqa: E731
    direction = [torch.randn(p.shape, generator=gen, dtype=torch.float64)
                 for p in model.parameters()]
    dcd = AdamQLR._curvature("gauss_newton", list(model.parameters()), direction,
                             module_fn(model, x), loss_fn)
    u = _fd_jvp(model, direction, x)
    if loss_kind == "mse":
        expected = (u * u).sum(dim=1).mean()  # SPEC §7: mean of ‖J_i d‖²
    else:
        p = torch.softmax(model(x), dim=1).detach()
        # mean of (J_i d)ᵀ(diag p_i − p_i p_iᵀ)(J_i d)
        expected = ((p * u * u).sum(dim=1) - (p * u).sum(dim=1) ** 2).mean()
    assert float(dcd) == pytest.approx(float(expected), rel=1e-7)


@pytest.mark.torch
@needs_torch
def test_torch_hessian_product_matches_finite_differences():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(10, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(10, 2, generator=gen, dtype=torch.float64)
    model = _mlp(4, 2, seed=6)
    loss_fn = lambda out: ((out - y) ** 2).mean()  # noqa: E731
    params = list(model.parameters())
    direction = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params]
    dhd = AdamQLR._curvature("hessian", params, direction, module_fn(model, x), loss_fn)

    def grad_at(shift):
        with torch.no_grad():
            for p, d in zip(params, direction):
                p.add_(d, alpha=shift)
        loss = loss_fn(model(x))
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, d in zip(params, direction):
                p.sub_(d, alpha=shift)
        return grads

    h = 1e-5
    gp, gm = grad_at(h), grad_at(-h)
    expected = sum(((a - b) / (2 * h) * d).sum() for a, b, d in zip(gp, gm, direction))
    assert float(dhd) == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.torch
@needs_torch
def test_torch_optimizer_validation():
    theta = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="curvature"):
        AdamQLR([theta], curvature="kfac")
    with pytest.raises(ValueError, match="damping"):
        AdamQLR([theta], damping=-1.0)
    with pytest.raises(ValueError, match="lr_clipping"):
        AdamQLR([theta], lr_clipping=0.0)
    with pytest.raises(TypeError):
        AdamQLR([theta], lr=0.1)
    with pytest.raises(ValueError, match="model_fn"):
        AdamQLR([theta]).step(loss_fn=lambda p: p.sum())
