"""Scaling rules (SPEC §5) and the SDE constants (SPEC §3)."""
import math

import numpy as np
import pytest

from sde_engine.models.scaling import (from_sde_constants, linear_rule, rescale_v, scaling_rule,
                                       sde_constants, sqrt_rule)


def _random_adam(rng):
    """Random Adam hyperparameters and a κ the rule accepts."""
    lr = 10 ** rng.uniform(-4, -0.5)
    b1 = 1 - 10 ** rng.uniform(-3, -0.3)
    b2 = 1 - 10 ** rng.uniform(-5, -1)
    eps = 10 ** rng.uniform(-9, -1)
    sigma = 10 ** rng.uniform(-1, 2)
    kmax = 1 / (1 - min(b1, b2))
    kappa = float(np.exp(rng.uniform(np.log(0.05), np.log(0.99 * kmax))))
    return lr, (b1, b2), eps, sigma, kappa


def test_sqrt_rule_by_hand():
    hp = sqrt_rule(4, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    assert hp["lr"] == pytest.approx(2e-3, rel=1e-15)
    assert hp["betas"] == pytest.approx((0.6, 0.996), rel=1e-13)
    assert hp["eps"] == pytest.approx(5e-9, rel=1e-15)
    hp = sqrt_rule(0.25, lr=0.1, beta=0.9, eps=0.0)
    assert set(hp) == {"lr", "beta", "eps"}
    assert hp["lr"] == pytest.approx(0.05) and hp["beta"] == pytest.approx(0.975)
    assert hp["eps"] == 0.0


def test_linear_rule_keeps_lr_sigma_squared():
    lr, sigma, kappa = 0.03, 2.0, 8.0
    new = linear_rule(kappa, lr=lr)["lr"]
    assert new == pytest.approx(0.24)
    assert new * (sigma / math.sqrt(kappa)) ** 2 == pytest.approx(lr * sigma**2, rel=1e-14)


def test_sqrt_rule_keeps_sde_constants():
    """Property over 500 random hyperparameter sets: σ0, ε0, c1, c2 unchanged."""
    rng = np.random.default_rng(1)
    for _ in range(500):
        lr, betas, eps, sigma, kappa = _random_adam(rng)
        before = sde_constants(lr=lr, sigma=sigma, betas=betas, eps=eps)
        after = sde_constants(sigma=sigma / math.sqrt(kappa),
                              **sqrt_rule(kappa, lr=lr, betas=betas, eps=eps))
        for key in ("sigma0", "eps0", "c1", "c2"):
            assert after[key] == pytest.approx(before[key], rel=1e-9), (key, lr, betas, kappa)
        before = sde_constants(lr=lr, sigma=sigma, beta=betas[1], eps=eps)
        after = sde_constants(sigma=sigma / math.sqrt(kappa),
                              **sqrt_rule(kappa, lr=lr, beta=betas[1], eps=eps))
        assert set(after) == {"sigma0", "eps0", "c2"}
        for key in after:
            assert after[key] == pytest.approx(before[key], rel=1e-9), (key, lr, betas, kappa)


def test_sqrt_rule_composes():
    """Scaling by κ1 then κ2 equals scaling by κ1κ2 (the rule is a group action)."""
    hp = dict(lr=0.01, betas=(0.95, 0.999), eps=1e-6)
    two = sqrt_rule(3, **sqrt_rule(2, **hp))
    one = sqrt_rule(6, **hp)
    assert two["lr"] == pytest.approx(one["lr"], rel=1e-14)
    assert two["betas"] == pytest.approx(one["betas"], rel=1e-12)
    assert two["eps"] == pytest.approx(one["eps"], rel=1e-14)


def test_sde_constants_by_hand_and_inverse():
    c = sde_constants(lr=0.1, sigma=10.0, betas=(0.99, 0.999), eps=0.5)
    assert c == pytest.approx(dict(sigma0=1.0, eps0=0.05, c1=1.0, c2=0.1))
    back = from_sde_constants(lr=0.1, **c)
    assert back["sigma"] == pytest.approx(10.0) and back["eps"] == pytest.approx(0.5)
    assert back["betas"] == pytest.approx((0.99, 0.999))
    with pytest.raises(ValueError, match="c1"):
        from_sde_constants(lr=1.0, sigma0=1.0, eps0=0.1, c1=1.0, c2=0.1)


@pytest.mark.parametrize("kappa,betas,name", [(10, (0.9, 0.999), "betas\\[0\\]"),
                                              (16, (0.9, 0.999), "betas\\[0\\]"),
                                              (2000, (0.9999, 0.999), "betas\\[1\\]")])
def test_refuses_beta_below_zero(kappa, betas, name):
    with pytest.raises(ValueError, match=name) as err:
        sqrt_rule(kappa, lr=1e-3, betas=betas, eps=1e-8)
    assert "larger base batch" in str(err.value)
    sqrt_rule(0.999 / max(1 - b for b in betas), lr=1e-3, betas=betas)   # just below: accepted


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="kappa"):
        sqrt_rule(0, lr=1e-3, betas=(0.9, 0.99))
    with pytest.raises(ValueError, match="lr"):
        sqrt_rule(2, lr=-1.0, beta=0.9)
    with pytest.raises(ValueError, match="eps"):
        sqrt_rule(2, lr=1e-3, beta=0.9, eps=-1e-8)
    with pytest.raises(ValueError, match="betas\\[1\\]"):
        sqrt_rule(2, lr=1e-3, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="exactly one"):
        sqrt_rule(2, lr=1e-3, betas=(0.9, 0.99), beta=0.9)
    with pytest.raises(ValueError, match="betas"):
        sqrt_rule(2, lr=1e-3, betas=0.9)
    with pytest.raises(TypeError):
        sqrt_rule(2, lr=1e-3, beta=0.9, momentum=0.9)
    with pytest.raises(ValueError, match="optimizer"):
        scaling_rule("lion", 2, lr=1e-3)
    with pytest.raises(TypeError, match="beta"):
        scaling_rule("adam", 2, lr=1e-3, beta=0.9)


def test_scaling_rule_dispatch():
    assert scaling_rule("SGD", 4, lr=0.1) == linear_rule(4, lr=0.1)
    assert scaling_rule("adam", 4, lr=0.1, betas=(0.9, 0.99), eps=1e-8) == \
        sqrt_rule(4, lr=0.1, betas=(0.9, 0.99), eps=1e-8)


def test_rescale_v():
    v = np.array([4.0, 8.0])
    out = rescale_v(v, 4)
    np.testing.assert_array_equal(out, [1.0, 2.0])
    np.testing.assert_array_equal(v, [4.0, 8.0])   # not in place
    # u = v/σ² is unchanged when σ → σ/√κ and v → v/κ
    sigma, kappa = 3.0, 4.0
    assert rescale_v(v, kappa) / (sigma / math.sqrt(kappa)) ** 2 == pytest.approx(v / sigma**2)


# ---- batch-size sweeps ----------------------------------------------------------------
from sde_engine.optimizers import adam, sgd  # noqa: E402
from sde_engine.problems import quadratic  # noqa: E402
from sde_engine.studies.scaling_sweep import (noise_dominance, problem_at,  # noqa: E402
                                              rule_hyperparameters, scaling_sweep)


def test_noise_dominance_by_hand():
    p = quadratic([2.0, 1.0], theta_star=[0.0, 0.0], Sigma=[4.0, 1.0], noise_scale=0.5)
    ratio = noise_dominance(p, [[1.0, 0.0], [0.5, -2.0]])
    # σ √diagΣ = (1, 0.5); |∇f| = |H θ| = (2, 0) then (1, 2)
    np.testing.assert_allclose(ratio, [[0.5, np.inf], [1.0, 0.25]])
    with pytest.raises(ValueError, match="thetas"):
        noise_dominance(p, [[1.0, 2.0, 3.0]])


def test_rule_hyperparameters_and_problem_at():
    opt = adam(lr=0.01, betas=(0.9, 0.99), eps=1e-6)
    hp = rule_hyperparameters(opt, "sqrt", 4)
    assert hp["lr"] == pytest.approx(0.02) and hp["betas"] == pytest.approx((0.6, 0.96))
    assert hp["eps"] == pytest.approx(5e-7) and hp["bias_correction"] is True
    assert rule_hyperparameters(opt, "linear_lr", 4)["betas"] == (0.9, 0.99)
    assert rule_hyperparameters(opt, "none", 4) == opt.hyperparameters
    assert rule_hyperparameters(sgd(lr=0.1), "linear", 3)["lr"] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="larger base batch"):
        rule_hyperparameters(opt, "sqrt", 10)
    with pytest.raises(ValueError, match="rule"):
        rule_hyperparameters(opt, "cubic", 2)
    p = quadratic([1.0], noise_scale=0.8)
    assert problem_at(p, 4, 16).noise_scale == pytest.approx(0.4)


def test_sweep_refuses_fractional_steps():
    p = quadratic([1.0])
    with pytest.raises(ValueError, match="whole"):
        scaling_sweep(p, adam(lr=0.01, betas=(0.9, 0.99)), [0.0], 100, base_batch=1,
                      batch_sizes=[1, 8], rule="sqrt", n_records=4)
    with pytest.raises(ValueError, match="base_batch"):
        scaling_sweep(p, adam(lr=0.01, betas=(0.9, 0.99)), [0.0], 96, base_batch=2,
                      batch_sizes=[1, 8], rule="sqrt")


def test_sqrt_rule_keeps_the_curves_and_lr_only_does_not():
    """Adam near the optimum of a noisy quadratic (noise dominates): at κ = 4 the square-root
    rule reproduces the κ = 1 loss curve within 4 combined standard errors at every record
    time; scaling only lr (the contrast) moves it by far more."""
    p = quadratic([1.0, 0.5], Sigma=[1.0, 1.0], noise="gaussian", noise_scale=1.0)
    opt = adam(lr=0.01, betas=(0.9, 0.99), eps=1e-8)
    kw = dict(base_batch=1, batch_sizes=[1, 4], n_runs=2000, n_records=8, seed=2)
    ruled = scaling_sweep(p, opt, [0.0, 0.0], 4000, rule="sqrt", **kw)
    assert ruled["runs"][4]["steps"] == 1000
    assert np.all(ruled["runs"][4]["max_abs_z"] < 4), ruled["runs"][4]["max_abs_z"]
    contrast = scaling_sweep(p, opt, [0.0, 0.0], 4000, rule="linear_lr", **kw)
    assert contrast["runs"][4]["max_abs_z"][0] > 10


# ---- the digits MLP study (torch) -----------------------------------------------------
from experiments.scaling_mlp import mlp_batch_sweep, transformed_hyperparameters  # noqa


def test_mlp_rule_maps():
    hp = dict(lr=1e-3, betas=(0.99, 0.999), eps=1e-8)
    assert transformed_hyperparameters("sqrt", 32, **hp) == sqrt_rule(32, **hp)
    assert transformed_hyperparameters("none", 32, **hp) == hp
    assert transformed_hyperparameters("linear_lr", 32, **hp)["lr"] == pytest.approx(0.032)
    with pytest.raises(ValueError, match="larger base batch"):
        transformed_hyperparameters("sqrt", 32, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)


@pytest.mark.torch
def test_mlp_sweep_is_seeded_and_paired():
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    kw = dict(batch_sizes=(16, 64), base_batch=16, epochs=1.0, hidden=8, seeds=(0, 1),
              rules=("sqrt",), n_evals=2)
    a = mlp_batch_sweep(**kw)
    b = mlp_batch_sweep(**kw)
    for bs in (16, 64):
        np.testing.assert_array_equal(a["runs"]["sqrt"][bs]["test_accuracy"],
                                      b["runs"]["sqrt"][bs]["test_accuracy"])
    r = a["runs"]["sqrt"][64]
    assert r["steps"] == round(a["n_train"] / 64)
    # under the rule the SDE time of an epoch is the same at every batch size
    np.testing.assert_allclose(r["sde_time"][-1], a["runs"]["sqrt"][16]["sde_time"][-1],
                               rtol=0.05)
    assert a["gap"]["sqrt"][16] == {"mean": 0.0, "stderr": 0.0}
    with pytest.raises(ValueError, match="base_batch"):
        mlp_batch_sweep(batch_sizes=(32, 64), base_batch=16, seeds=(0, 1))
