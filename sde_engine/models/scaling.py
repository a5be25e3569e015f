"""Scaling rules and SDE constants on torch.optim-style hyperparameters (SPEC §3, §5).

When the batch size changes from B to κB the noise scale changes from σ to
σ/√κ (σ = 1/√B). A scaling rule maps the hyperparameters so that the SDE the
algorithm follows stays the same:

* SGD, linear rule:             lr → κ·lr                       (keeps lr·σ²);
* RMSprop / Adam, square-root:  lr → √κ·lr,  1−β → κ(1−β),  eps → eps/√κ
                                (β1 and β2 alike; keeps σ0, ε0, c1, c2).

The square-root rule needs κ(1−β) < 1 for every β; otherwise the new β would
be ≤ 0 and the algorithm leaves the regime the SDE describes. Changing the
batch size in the middle of a run also rescales the second-moment state,
v → v/κ (v tracks σ² u, and σ² falls by κ).

The functions take and return the keyword arguments of ``torch.optim``
(``lr``, ``betas`` for Adam, ``beta`` for this project's RMSprop, ``eps``),
so the result can be splatted into an optimizer constructor::

    >>> hp = sqrt_rule(4, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    >>> hp["lr"], [round(b, 12) for b in hp["betas"]], hp["eps"]
    (0.002, [0.6, 0.996], 5e-09)

Checks raise ``ValueError`` naming the argument before any work.
"""
import math

from .. import validation as check


def _optimizer_name(optimizer, hyper, options):
    """Lower-cased ``optimizer`` checked against ``options``; a TypeError when ``hyper``
    holds RMSprop's ``beta`` for Adam or Adam's ``betas`` for RMSprop."""
    name = check.choice(optimizer.lower() if isinstance(optimizer, str) else optimizer,
                        "optimizer", options)
    if name == "rmsprop" and "betas" in hyper:
        raise TypeError("rmsprop takes `beta`, not `betas`")
    if name == "adam" and "beta" in hyper:
        raise TypeError("adam takes `betas`, not `beta`")
    return name


def _one_of_beta(betas, beta):
    """Exactly one of ``betas`` (Adam) and ``beta`` (RMSprop) must be given."""
    if (betas is None) == (beta is None):
        raise ValueError("give exactly one of `betas` (Adam) and `beta` (RMSprop), got "
                         f"betas={betas!r}, beta={beta!r}")


def linear_rule(kappa, *, lr):
    """Linear scaling rule for SGD when the batch size goes from B to κB (SPEC §5).

    Parameters
    ----------
    kappa : float
        Batch-size ratio κ > 0 (κ < 1 shrinks the batch).
    lr : float
        Learning rate η at batch size B.

    Returns
    -------
    dict
        ``{"lr": κ η}``; η σ² (hence the SGD SDE dX = −∇f dt + σ√η Σ^{1/2} dW in
        time t = kη) is unchanged because σ² → σ²/κ.
    """
    kappa = check.positive_float(kappa, "kappa")
    lr = check.positive_float(lr, "lr")
    return {"lr": kappa * lr}


# κ(1−β) within this of 1 counts as 1 (β = 0.9 is 0.8999…, so κ = 10 must still be refused)
_BETA_FLOOR = 1e-12


def _scaled_beta(kappa, beta, name):
    one_minus = kappa * (1.0 - beta)
    if one_minus >= 1.0 - _BETA_FLOOR:
        limit = 1.0 / (1.0 - beta)
        raise ValueError(
            f"the square-root rule with kappa={kappa:g} would set {name} = 1 - kappa*(1 - {name}) "
            f"= {1.0 - one_minus:.6g} <= 0 (it needs kappa*(1 - {name}) < 1, here "
            f"{one_minus:.6g}): {name}={beta:g} allows kappa < {limit:.6g} only. Tune the "
            f"hyperparameters at a larger base batch (more than {one_minus:.3g}x larger, e.g. "
            f"{math.floor(one_minus) + 1}x) and scale from there with a smaller kappa.")
    return 1.0 - one_minus


def sqrt_rule(kappa, *, lr, betas=None, beta=None, eps=0.0, weight_decay=None):
    """Square-root scaling rule for RMSprop/Adam, batch size B → κB (SPEC §5).

    Update: lr → √κ·lr; 1−β → κ(1−β) for every β; eps → eps/√κ. With
    σ → σ/√κ this keeps σ0 = σ·lr, ε0 = eps·lr, c1 = (1−β1)/lr² and
    c2 = (1−β2)/lr², hence the RMSprop/Adam SDE and the SDE time per epoch
    (N/B)·lr².

    Parameters
    ----------
    kappa : float
        Batch-size ratio κ > 0.
    lr : float
        Learning rate η > 0.
    betas : (float, float), optional
        Adam's (β1, β2), each in [0, 1).
    beta : float, optional
        RMSprop's β in [0, 1) (torch's ``alpha``). Give exactly one of
        ``betas`` and ``beta``.
    eps : float
        ε ≥ 0.
    weight_decay : float, optional
        AdamW/RMSpropW's decoupled λ ≥ 0: λ → √κ·λ, which keeps the SDE's
        λ₀ = λ/lr (:mod:`sde_engine.models.weight_decay`).

    Returns
    -------
    dict
        The same keys as given (``lr``, ``betas`` or ``beta``, ``eps``,
        ``weight_decay``), transformed.

    Raises
    ------
    ValueError
        On invalid input, or when κ(1−β) ≥ 1 for some β (the new β would be
        ≤ 0); the message says which β and suggests a larger base batch.
    """
    kappa = check.positive_float(kappa, "kappa")
    lr = check.positive_float(lr, "lr")
    eps = check.eps(eps)
    _one_of_beta(betas, beta)
    root = math.sqrt(kappa)
    out = {"lr": root * lr}
    if betas is not None:
        b1, b2 = check.betas(betas)
        out["betas"] = (_scaled_beta(kappa, b1, "betas[0]"), _scaled_beta(kappa, b2, "betas[1]"))
    else:
        out["beta"] = _scaled_beta(kappa, check.beta(beta, "beta"), "beta")
    out["eps"] = eps / root
    if weight_decay is not None:
        out["weight_decay"] = root * check.nonnegative_float(weight_decay, "weight_decay")
    return out


RULES = {"sgd": "linear", "rmsprop": "sqrt", "adam": "sqrt", "rmspropw": "sqrt", "adamw": "sqrt"}


def scaling_rule(optimizer, kappa, **hyper):
    """Apply the rule that fits ``optimizer`` (``"sgd"``, ``"rmsprop"``, ``"adam"``).

    SGD takes ``lr`` (linear rule); RMSprop takes ``lr, beta, eps`` and Adam
    ``lr, betas, eps`` (square-root rule). Unknown keywords are a TypeError.
    """
    name = _optimizer_name(optimizer, hyper, tuple(RULES))
    if name == "sgd":
        return linear_rule(kappa, **hyper)
    return sqrt_rule(kappa, **hyper)


def momentum_rule(kappa, *, lr, momentum):
    """Scaling rule of SGD with momentum in the momentum timescale, B → κB.

    The SDE of :mod:`sde_engine.models.momentum` has the constants η^{1/4}σ and
    γ = (1 − μ)/√η and time √η per step. With σ → σ/√κ they stay fixed when

        η → κ² η,     1 − μ → κ (1 − μ),

    and each step then covers κ times the SDE time (k → k/κ steps, the same
    samples seen). Derived here from that SDE, not taken from a paper; it needs
    κ(1 − μ) < 1. Returns ``{"lr": κ²η, "momentum": 1 − κ(1 − μ)}``.
    """
    kappa = check.positive_float(kappa, "kappa")
    lr = check.positive_float(lr, "lr")
    momentum = check.beta(momentum, "momentum")
    if kappa * (1.0 - momentum) >= 1.0:
        raise ValueError(f"the momentum rule needs κ(1 − μ) < 1, got κ = {kappa!r} and "
                         f"momentum = {momentum!r}")
    return {"lr": kappa**2 * lr, "momentum": 1.0 - kappa * (1.0 - momentum)}


def ema_rule(kappa, *, ema_decay):
    """EMA scaling rule of Busbridge et al. (NeurIPS 2023): ρ → ρ^κ when B → κB.

    Apply it together with the optimizer's own rule (:func:`linear_rule`,
    :func:`sqrt_rule`), which multiplies the SDE time per step by κ; ρ^κ then
    keeps the EMA's rate γ = (1 − ρ)/h to first order
    (:mod:`sde_engine.models.ema`). Returns ``{"ema_decay": ρ^κ}``.
    """
    kappa = check.positive_float(kappa, "kappa")
    return {"ema_decay": check.beta(ema_decay, "ema_decay") ** kappa}


def rescale_v(v, kappa):
    """Second-moment state after the batch grows by κ mid-run: v → v/κ (SPEC §5).

    ``v`` may be a float, a NumPy array or a torch tensor; a new object is
    returned. Apply it together with :func:`sqrt_rule` on the hyperparameters.
    """
    kappa = check.positive_float(kappa, "kappa")
    return v / kappa


def sde_constants(*, lr, sigma, betas=None, beta=None, eps=0.0):
    """The constants of the RMSprop/Adam SDE (SPEC §3).

    σ0 = σ·lr,  ε0 = eps·lr,  c1 = (1−β1)/lr²,  c2 = (1−β2)/lr²  (RMSprop: c2
    from β; no c1).

    Parameters
    ----------
    lr, sigma : float
        Learning rate η > 0 and noise scale σ > 0 (σ = 1/√B for minibatches).
    betas : (float, float), optional
        Adam's (β1, β2).
    beta : float, optional
        RMSprop's β. Exactly one of ``betas`` and ``beta``.
    eps : float
        ε ≥ 0.

    Returns
    -------
    dict
        ``sigma0, eps0, c2`` and, for Adam, ``c1``.
    """
    lr = check.positive_float(lr, "lr")
    sigma = check.positive_float(sigma, "sigma")
    eps = check.eps(eps)
    _one_of_beta(betas, beta)
    out = {"sigma0": sigma * lr, "eps0": eps * lr}
    if betas is not None:
        b1, b2 = check.betas(betas)
        out["c1"] = (1.0 - b1) / lr**2
        out["c2"] = (1.0 - b2) / lr**2
    else:
        out["c2"] = (1.0 - check.beta(beta, "beta")) / lr**2
    return out


def from_sde_constants(*, lr, sigma0, eps0, c2, c1=None):
    """Inverse of :func:`sde_constants`: the hyperparameters at learning rate ``lr``.

    σ = σ0/lr, eps = ε0/lr, β2 = 1 − c2·lr², β1 = 1 − c1·lr² (Adam when ``c1``
    is given, else RMSprop). Refuses an ``lr`` with c·lr² ≥ 1.

    Returns
    -------
    dict
        ``{"lr", "sigma", "eps", "betas" | "beta"}``.
    """
    lr = check.positive_float(lr, "lr")
    sigma0 = check.positive_float(sigma0, "sigma0")
    eps0 = check.eps(eps0)
    out = {"lr": lr, "sigma": sigma0 / lr, "eps": eps0 / lr}
    cs = {"c2": check.positive_float(c2, "c2")}
    if c1 is not None:
        cs["c1"] = check.positive_float(c1, "c1")
    for name, c in cs.items():
        if c * lr**2 >= 1.0:
            raise ValueError(f"`lr` must satisfy {name}*lr**2 < 1 (so that beta > 0), got "
                             f"lr={lr!r} with {name}={c!r} ({name}*lr**2 = {c * lr**2:.6g})")
    if c1 is None:
        out["beta"] = 1.0 - cs["c2"] * lr**2
    else:
        out["betas"] = (1.0 - cs["c1"] * lr**2, 1.0 - cs["c2"] * lr**2)
    return out
