"""SVAG (SPEC §6): hyperparameter transforms, the scheme, and its convergence to the SDE."""
import math

import numpy as np
import pytest

from sde_engine.models.scaling import sde_constants
from sde_engine.models.svag import svag_adaptive, svag_sgd, svag_transform, svag_weights


def test_weights_by_hand():
    r1, r2 = svag_weights(4.0)            # adaptive form, ℓ = 2: √(2·4 − 1) = √7
    assert r1 == pytest.approx((1 + math.sqrt(7)) / 2) and r2 == pytest.approx((1 - math.sqrt(7)) / 2)
    assert svag_weights(1.0) == (1.0, 0.0)


def test_adaptive_transform_by_hand():
    s = svag_adaptive(2, lr=0.1, betas=(0.9, 0.99), eps=1e-3)
    assert s.hyper["lr"] == pytest.approx(0.05)
    assert s.hyper["betas"] == pytest.approx((0.975, 0.9975))
    assert s.hyper["eps"] == pytest.approx(2e-3)
    assert s.step_factor == 4 and s.variance_factor == pytest.approx(4.0)
    s = svag_sgd(3, lr=0.3)
    assert s.hyper == {"lr": pytest.approx(0.1)} and s.step_factor == 3
    assert s.variance_factor == pytest.approx(3.0)
    assert s.r1 + s.r2 == pytest.approx(1.0)


def test_ell_one_is_identity():
    hp = dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8)
    s = svag_transform("adam", 1, **hp)
    assert s.hyper == hp and (s.r1, s.r2, s.step_factor) == (1.0, 0.0, 1)
    s = svag_transform("sgd", 1, lr=0.01)
    assert s.hyper == {"lr": 0.01} and (s.r1, s.r2, s.step_factor) == (1.0, 0.0, 1)


def test_adaptive_svag_keeps_sde_constants():
    """Property over 500 random settings: σ0, ε0, c1, c2 unchanged, σ' = σ·√(r1² + r2²)."""
    rng = np.random.default_rng(2)
    for _ in range(500):
        lr = 10 ** rng.uniform(-4, -0.5)
        betas = (1 - 10 ** rng.uniform(-3, -0.3), 1 - 10 ** rng.uniform(-5, -1))
        eps = 10 ** rng.uniform(-9, -1)
        sigma = 10 ** rng.uniform(-1, 2)
        ell = float(rng.integers(1, 17))
        s = svag_adaptive(ell, lr=lr, betas=betas, eps=eps)
        before = sde_constants(lr=lr, sigma=sigma, betas=betas, eps=eps)
        after = sde_constants(sigma=sigma * math.sqrt(s.variance_factor), **s.hyper)
        for key in ("sigma0", "eps0", "c1", "c2"):
            assert after[key] == pytest.approx(before[key], rel=1e-9), (key, lr, betas, ell)
        # SDE time covered: ℓ² steps of lr'² equal one step of lr²
        assert s.step_factor * s.hyper["lr"] ** 2 == pytest.approx(lr**2, rel=1e-12)
        rms = svag_adaptive(ell, lr=lr, beta=betas[1], eps=eps)
        after = sde_constants(sigma=sigma * math.sqrt(rms.variance_factor), **rms.hyper)
        assert after["c2"] == pytest.approx(before["c2"], rel=1e-9)


def test_sgd_svag_keeps_lr_sigma_squared():
    rng = np.random.default_rng(3)
    for _ in range(200):
        lr, sigma, ell = 10 ** rng.uniform(-4, 0), 10 ** rng.uniform(-1, 2), int(rng.integers(1, 33))
        s = svag_sgd(ell, lr=lr)
        new_sigma2 = sigma**2 * s.variance_factor
        assert s.hyper["lr"] * new_sigma2 == pytest.approx(lr * sigma**2, rel=1e-12)
        assert s.step_factor * s.hyper["lr"] == pytest.approx(lr, rel=1e-12)


def test_rejects_bad_ell():
    with pytest.raises(ValueError, match="ell"):
        svag_sgd(0.5, lr=0.1)
    with pytest.raises(ValueError, match="ell"):
        svag_sgd(1.5, lr=0.1)                 # ℓ× steps must be whole
    with pytest.raises(ValueError, match="ell"):
        svag_adaptive(1.3, lr=0.1, beta=0.9)  # ℓ² = 1.69 steps
    svag_adaptive(math.sqrt(2), lr=0.1, beta=0.9)   # ℓ² = 2 is fine
    with pytest.raises(ValueError, match="optimizer"):
        svag_transform("lamb", 2, lr=0.1)
    with pytest.raises(TypeError):
        svag_transform("rmsprop", 2, lr=0.1, betas=(0.9, 0.9))
