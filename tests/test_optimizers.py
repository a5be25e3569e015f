"""Discrete optimizers (SPEC §2): one-step hand computations, ε placement, bias
correction, RMSprop ≡ Adam(β1 = 0), agreement with torch.optim, and refusal of
bad hyperparameters.

The kernels are called directly through ``Optimizer.step`` (no driver), so this
file compiles only the small update kernels.
"""
import math

import numpy as np
import pytest

from sde_engine.optimizers import (OPTIMIZERS, adam, adamw, get_spec, make_optimizer, rmsprop,
                                   rmspropw, sgd, sgd_momentum, signsgd, signum)
from sde_engine.optimizers.observables import OBSERVABLES, observable_table

THETA0 = np.array([1.0, -2.0, 0.5])
G1 = np.array([0.5, -1.0, 3e-3])
G2 = np.array([-0.25, 2.0, 1e-3])


# ---- hand computations: the state after one and two steps ------------------------------
def _sgd_hand(lr):
    th1 = THETA0 - lr * G1
    return [th1, th1 - lr * G2]


def _signsgd_hand(lr):
    th1 = THETA0 - lr * np.sign(G1)
    return [th1, th1 - lr * np.sign(G2)]


def _signum_hand(lr, beta):
    m1 = (1 - beta) * G1                      # β·0 + (1 − β) g: m starts at 0
    m2 = beta * m1 + (1 - beta) * G2
    th1 = THETA0 - lr * np.sign(m1)
    return [np.concatenate([th1, m1]), np.concatenate([th1 - lr * np.sign(m2), m2])]


def _momentum_hand(lr, mu):
    b1 = G1                                   # μ·0 + g: torch's first step sets b = g
    b2 = mu * b1 + G2
    th1 = THETA0 - lr * b1
    return [np.concatenate([th1, b1]), np.concatenate([th1 - lr * b2, b2])]


def _rmsprop_hand(lr, beta, eps, bias_correction):
    v1 = (1 - beta) * G1**2
    v2 = beta * v1 + (1 - beta) * G2**2
    c1 = (1 - beta) if bias_correction else 1.0
    c2 = (1 - beta**2) if bias_correction else 1.0
    th1 = THETA0 - lr * G1 / (np.sqrt(v1 / c1) + eps)
    th2 = th1 - lr * G2 / (np.sqrt(v2 / c2) + eps)
    return [np.concatenate([th1, v1]), np.concatenate([th2, v2])]


def _adam_hand(lr, b1, b2, eps, bias_correction):
    m1, v1 = (1 - b1) * G1, (1 - b2) * G1**2
    m2, v2 = b1 * m1 + (1 - b1) * G2, b2 * v1 + (1 - b2) * G2**2
    if bias_correction:
        th1 = THETA0 - lr * (m1 / (1 - b1)) / (np.sqrt(v1 / (1 - b2)) + eps)
        th2 = th1 - lr * (m2 / (1 - b1**2)) / (np.sqrt(v2 / (1 - b2**2)) + eps)
    else:
        th1 = THETA0 - lr * m1 / (np.sqrt(v1) + eps)
        th2 = th1 - lr * m2 / (np.sqrt(v2) + eps)
    return [np.concatenate([th1, m1, v1]), np.concatenate([th2, m2, v2])]


def _decayed(hand, decay):
    """Decoupled weight decay on a hand computation: θ_k −= ηλ θ_{k−1}."""
    s1, s2 = (s.copy() for s in hand)
    th0, th1_plain = THETA0, s1[:3].copy()
    s1[:3] = th1_plain - decay * th0
    # step 2 starts from the decayed θ_1: its own step is the base step from there
    s2[:3] = s1[:3] + (hand[1][:3] - th1_plain) - decay * s1[:3]
    return [s1, s2]


# One row per optimizer variant: (id, optimizer, states after steps 1 and 2 by hand).
CASES = [
    ("sgd", sgd(lr=0.3), _sgd_hand(0.3)),
    ("sgd_momentum", sgd_momentum(lr=0.3, momentum=0.7), _momentum_hand(0.3, 0.7)),
    ("signsgd", signsgd(lr=0.3), _signsgd_hand(0.3)),
    ("signum", signum(lr=0.3, momentum=0.7), _signum_hand(0.3, 0.7)),
    ("rmsprop", rmsprop(lr=0.1, beta=0.9, eps=1e-2), _rmsprop_hand(0.1, 0.9, 1e-2, False)),
    ("rmsprop-bc", rmsprop(lr=0.1, beta=0.9, eps=1e-2, bias_correction=True),
     _rmsprop_hand(0.1, 0.9, 1e-2, True)),
    ("adam", adam(lr=0.1, betas=(0.8, 0.95), eps=1e-2), _adam_hand(0.1, 0.8, 0.95, 1e-2, True)),
    ("adam-nobc", adam(lr=0.1, betas=(0.8, 0.95), eps=1e-2, bias_correction=False),
     _adam_hand(0.1, 0.8, 0.95, 1e-2, False)),
    ("rmspropw", rmspropw(lr=0.1, beta=0.9, eps=1e-2, weight_decay=0.3),
     _decayed(_rmsprop_hand(0.1, 0.9, 1e-2, False), 0.1 * 0.3)),
    ("adamw", adamw(lr=0.1, betas=(0.8, 0.95), eps=1e-2, weight_decay=0.3),
     _decayed(_adam_hand(0.1, 0.8, 0.95, 1e-2, True), 0.1 * 0.3)),
]


@pytest.mark.parametrize("name, opt, expected", CASES, ids=[c[0] for c in CASES])
def test_two_steps_match_hand_computation(name, opt, expected):
    state0 = opt.init(THETA0)
    s1 = opt.step(1, G1, state0)
    s2 = opt.step(2, G2, s1)
    np.testing.assert_allclose(s1, expected[0], rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(s2, expected[1], rtol=1e-14, atol=1e-300)
    np.testing.assert_array_equal(state0[:3], THETA0)     # update is pure


def test_every_registered_optimizer_has_a_test_row():
    assert {c[0].split("-")[0] for c in CASES} == set(OPTIMIZERS)


def test_state_layouts():
    assert sgd().blocks == ("theta",)
    assert rmsprop().blocks == ("theta", "v")
    assert adam().blocks == ("theta", "m", "v")
    assert adam().state_dim(4) == 12
    assert adam().block_slice("v", 4) == slice(8, 12)


def test_bias_corrected_first_step_is_a_signed_unit_step():
    # m̂1 = g, v̂1 = g², so θ1 = θ0 − η g/(|g| + ε) whatever β1, β2.
    opt = adam(lr=0.01, betas=(0.5, 0.999), eps=0.0)
    s1 = opt.step(1, G1, opt.init(THETA0))
    np.testing.assert_allclose(s1[:3], THETA0 - 0.01 * np.sign(G1), rtol=1e-14)


def test_eps_sits_outside_the_square_root():
    # Tiny gradient: ε outside gives g/(|g| + ε), ε inside would give g/√(g² + ε).
    g = np.array([1e-3])
    for opt in (rmsprop(lr=1.0, beta=0.5, eps=1e-2, bias_correction=True),
                adam(lr=1.0, betas=(0.5, 0.5), eps=1e-2)):
        step = opt.init([0.0]).copy()
        step = -opt.step(1, g, step)[0]
        assert step == pytest.approx(1e-3 / (1e-3 + 1e-2), rel=1e-14)
        assert abs(step - 1e-3 / math.sqrt(1e-6 + 1e-2)) > 0.05


def test_bias_correction_uses_the_step_number():
    # Same state, same gradient: only k differs, through 1 − β^k.
    opt = rmsprop(lr=0.1, beta=0.9, eps=0.0, bias_correction=True)
    state = opt.init([1.0], v0=[0.04])
    for k in (1, 2, 7):
        v = 0.9 * 0.04 + 0.1 * 0.25
        expected = 1.0 - 0.1 * 0.5 / math.sqrt(v / (1 - 0.9**k))
        assert opt.step(k, [0.5], state)[0] == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("bias_correction", [True, False])
def test_rmsprop_is_adam_with_beta1_zero(bias_correction):
    """Bit for bit, over a sequence of random gradients (SPEC §2)."""
    rng = np.random.default_rng(0)
    r = rmsprop(lr=0.05, beta=0.97, eps=1e-3, bias_correction=bias_correction)
    a = adam(lr=0.05, betas=(0.0, 0.97), eps=1e-3, bias_correction=bias_correction)
    sr, sa = r.init(THETA0), a.init(THETA0)
    for k in range(1, 30):
        g = rng.normal(size=3)
        sr, sa = r.step(k, g, sr), a.step(k, g, sa)
        np.testing.assert_array_equal(sr[:3], sa[:3])        # θ
        np.testing.assert_array_equal(sr[3:], sa[6:])        # v
        np.testing.assert_array_equal(sa[3:6], g)            # m = g when β1 = 0


def test_bias_corrected_rmsprop_differs_from_plain_rmsprop():
    plain = rmsprop(lr=0.1, beta=0.9, eps=1e-8)
    corrected = rmsprop(lr=0.1, beta=0.9, eps=1e-8, bias_correction=True)
    s = plain.init(THETA0)
    # first step: plain takes g/√(0.1 g²) ≈ 3.16 sign(g), corrected takes sign(g)
    np.testing.assert_allclose(plain.step(1, G1, s)[:2] - THETA0[:2],
                               -0.1 * np.sign(G1[:2]) / math.sqrt(0.1), rtol=1e-6)
    np.testing.assert_allclose(corrected.step(1, G1, s)[:2] - THETA0[:2],
                               -0.1 * np.sign(G1[:2]), rtol=1e-6)


# ---- torch.optim on the same gradients ----------------------------------------------------
def _torch_run(torch_opt_cls, kwargs, grads):
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.tensor(THETA0, dtype=torch.float64))
    opt = torch_opt_cls([p], **kwargs)
    out = []
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        out.append(p.detach().numpy().copy())
    return np.array(out)


def _engine_run(opt, grads):
    state, out = opt.init(THETA0), []
    for k, g in enumerate(grads, start=1):
        state = opt.step(k, g, state)
        out.append(state[:3].copy())
    return np.array(out)


TORCH_CASES = [
    ("SGD", dict(lr=0.1), sgd(lr=0.1)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-3), rmsprop(lr=0.01, beta=0.9, eps=1e-3)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.95), eps=1e-3), adam(lr=0.01, betas=(0.8, 0.95), eps=1e-3)),
    ("Adam", dict(lr=0.01, betas=(0.0, 0.95), eps=1e-3),
     rmsprop(lr=0.01, beta=0.95, eps=1e-3, bias_correction=True)),
    ("SGD", dict(lr=0.1, momentum=0.7), sgd_momentum(lr=0.1, momentum=0.7)),
    ("AdamW", dict(lr=0.01, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.5),
     adamw(lr=0.01, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.5)),
]


@pytest.mark.parametrize("torch_name, kwargs, opt", TORCH_CASES,
                         ids=["sgd", "rmsprop", "adam", "adam-beta1=0-vs-rmsprop-bc",
                              "sgd-momentum", "adamw"])
def test_matches_torch_optim(torch_name, kwargs, opt):
    torch = pytest.importorskip("torch")
    grads = np.random.default_rng(1).normal(size=(20, 3)) * np.array([1.0, 1e-2, 10.0])
    expected = _torch_run(getattr(torch.optim, torch_name), kwargs, grads)
    # torch rearranges the same formulas (lerp, √v/√(1−β2^k)): equal to rounding
    np.testing.assert_allclose(_engine_run(opt, grads), expected, rtol=1e-12, atol=1e-14)


# ---- init, time map, registry ---------------------------------------------------------------
def test_init_places_moments():
    s = adam().init([[1.0, 2.0], [3.0, 4.0]], m0=0.5, v0=[1.0, 2.0])
    np.testing.assert_array_equal(s, [[1, 2, .5, .5, 1, 2], [3, 4, .5, .5, 1, 2]])
    np.testing.assert_array_equal(rmsprop().init([1.0], v0=0.25), [1.0, 0.25])


def test_time_per_step_is_the_sde_time_map():
    assert sgd(lr=0.1).time_per_step == pytest.approx(0.1)
    assert rmsprop(lr=0.1).time_per_step == pytest.approx(0.01)
    assert adam(lr=0.1).time_per_step == pytest.approx(0.01)


def test_make_optimizer_and_with_hyperparameters():
    a = make_optimizer("adam", lr=0.02, betas=(0.9, 0.99))
    assert a == adam(lr=0.02, betas=(0.9, 0.99))
    b = a.with_hyperparameters(lr=0.04)
    assert b.hyperparameters["lr"] == 0.04 and b.hyperparameters["betas"] == (0.9, 0.99)
    assert get_spec("rmsprop").hyper_names == ("lr", "beta", "eps", "bias_correction")


# ---- refusals ----------------------------------------------------------------------------------
BAD = [
    (sgd, dict(lr=0.0), "`lr`"),
    (sgd, dict(lr=-1e-3), "`lr`"),
    (sgd, dict(lr=float("inf")), "`lr`"),
    (rmsprop, dict(beta=1.0), "`beta`"),
    (rmsprop, dict(beta=-0.1), "`beta`"),
    (rmsprop, dict(eps=-1e-8), "`eps`"),
    (rmsprop, dict(eps=float("nan")), "`eps`"),
    (rmsprop, dict(bias_correction=1), "`bias_correction`"),
    (adam, dict(betas=(0.9, 1.0)), r"`betas\[1\]`"),
    (adam, dict(betas=(1.5, 0.9)), r"`betas\[0\]`"),
    (adam, dict(betas=0.9), "`betas`"),
    (adam, dict(betas=(0.9, 0.99, 0.5)), "`betas`"),
    (adam, dict(lr="0.1"), "`lr`"),
]


@pytest.mark.parametrize("ctor, kwargs, match", BAD,
                         ids=[f"{c.__name__}-{k}" for c, k, _ in BAD])
def test_bad_hyperparameters_are_refused(ctor, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ctor(**kwargs)


def test_unknown_names_and_arguments():
    with pytest.raises(ValueError, match="must be one of"):
        make_optimizer("adagrad", lr=0.1)
    with pytest.raises(TypeError):
        adam(lr=0.1, alpha=0.9)          # torch's RMSprop name: ours is `beta`
    with pytest.raises(TypeError):
        rmsprop(0.1)                     # keyword-only


def test_bad_initial_states_and_steps_are_refused():
    with pytest.raises(ValueError, match="`v0`"):
        adam().init([1.0], v0=-1.0)
    with pytest.raises(ValueError, match="`m0`"):
        sgd().init([1.0], m0=0.0)
    with pytest.raises(ValueError, match="`m0`"):
        rmsprop().init([1.0], m0=0.0)
    with pytest.raises(ValueError, match="`theta0`"):
        adam().init([np.nan])
    with pytest.raises(ValueError, match="`k`"):
        adam().step(0, [1.0], adam().init([1.0]))
    with pytest.raises(ValueError, match="`state`"):
        adam().step(1, [1.0, 2.0], adam().init([1.0]))


# ---- named observables --------------------------------------------------------------------------
def test_observable_table_labels_and_offsets():
    table, labels = observable_table(["theta", "loss", "norm_sq", "m", "v"], adam(), 2)
    assert labels == ["theta[0]", "theta[1]", "loss", "norm_sq", "m[0]", "m[1]", "v[0]", "v[1]"]
    assert table[:, 1].tolist() == [0, 0, 0, 2, 4]
    with pytest.raises(ValueError, match="'m'"):
        observable_table(["m"], rmsprop(), 2)
    with pytest.raises(ValueError, match="must be in"):
        observable_table(["theta3"], adam(), 2)
    assert set(OBSERVABLES) == {"theta", "theta_sq", "norm_sq", "loss", "m", "v", "ema", "ema_sq"}


@pytest.mark.parametrize("name, hyper, n_blocks", [
    ("adam", dict(lr=0.1, betas=(0.9, 0.999), eps=1e-8), 3),
    ("rmsprop", dict(lr=0.1, beta=0.99, eps=1e-8, bias_correction=True), 2),
])
def test_precomputed_bias_correction_table_is_bit_identical(name, hyper, n_blocks):
    """The runner's per-run table of 1 − β^k gives the same bits as the update's own pow."""
    opt = make_optimizer(name, **hyper)
    n_steps, d = 2000, 3
    with_table = opt.hyper_for_run(n_steps)
    assert with_table.shape[0] > opt.hyper.shape[0]
    rng = np.random.default_rng(0)
    for k in range(1, n_steps + 1):
        g, state = rng.normal(size=d), rng.normal(size=n_blocks * d) ** 2
        plain, tabled = np.empty(n_blocks * d), np.empty(n_blocks * d)
        opt.update(k, g, state, opt.hyper, plain)
        opt.update(k, g, state, with_table, tabled)
        assert np.array_equal(plain, tabled), f"step {k}"
