"""The square-root rule on a real network: an MLP on scikit-learn's digits (SPEC §5).

Adam trains a small MLP classifier (64 → hidden → 10, tanh, cross-entropy) on
``sklearn.datasets.load_digits`` at batch sizes B = κ·B0, for the same number
of epochs (under the square-root rule the SDE time per epoch (N/B)·lr² is the
same for every B). Minibatches are drawn uniformly with replacement, as in
the engine's minibatch problems (σ = 1/√B). Each seed fixes the initial
weights (shared by all batch sizes: a paired comparison) and the sampling
stream.

Hyperparameter rules compared:

* ``"sqrt"``  — :func:`sde_engine.models.scaling.sqrt_rule`;
* ``"none"``  — the base hyperparameters at every batch size;
* ``"linear_lr"`` — lr × κ, betas and eps unchanged.

torch is imported lazily (the core does not need it); runs use one thread,
which is both faster for a network this small and deterministic.
"""
import math

import numpy as np

from sde_engine import validation as check
from sde_engine.models.scaling import sqrt_rule

RULES = ("sqrt", "none", "linear_lr")


def transformed_hyperparameters(rule, kappa, *, lr, betas, eps):
    """Adam hyperparameters at batch ratio ``kappa`` under ``rule`` (see the module doc)."""
    check.choice(rule, "rule", RULES)
    if rule == "sqrt":
        return sqrt_rule(kappa, lr=lr, betas=betas, eps=eps)
    if rule == "linear_lr":
        return {"lr": kappa * lr, "betas": tuple(betas), "eps": eps}
    return {"lr": lr, "betas": tuple(betas), "eps": eps}


def digits_split(test_fraction=0.25, data_seed=0):
    """Standardised load_digits split: (X_train, y_train, X_test, y_test) as float64/int64."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(data_seed)
    order = rng.permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    mean = X[train].mean(axis=0)
    scale = X[train].std(axis=0)
    scale[scale == 0] = 1.0
    Xs = (X - mean) / scale
    return Xs[train], y[train].astype(np.int64), Xs[test], y[test].astype(np.int64)


def train_mlp(data, *, batch_size, lr, betas, eps, epochs, hidden, seed, n_evals=10):
    """Train one MLP with torch Adam; returns curves and the final accuracies.

    Parameters
    ----------
    data : tuple
        ``(X_train, y_train, X_test, y_test)`` from :func:`digits_split`.
    batch_size : int
        B; minibatches of B indices drawn with replacement.
    lr, betas, eps : torch.optim.Adam hyperparameters.
    epochs : float
        Training length in epochs; steps = round(epochs·N/B).
    hidden : int
        Width of the hidden layer.
    seed : int
        Initial weights (``torch.manual_seed(seed)``) and sampling stream
        (a generator seeded with ``seed`` and B).
    n_evals : int
        Number of evenly spaced evaluations of the full training loss.

    Returns
    -------
    dict
        ``steps``, ``eval_steps`` (n_evals+1,), ``train_loss`` (n_evals+1,),
        ``test_accuracy``, ``train_accuracy``, ``noise_to_grad`` (final weights).
    """
    import torch

    torch.set_num_threads(1)
    X_train, y_train, X_test, y_test = (torch.as_tensor(a) for a in data)
    X_train, X_test = X_train.float(), X_test.float()
    n = X_train.shape[0]
    steps = max(1, int(round(epochs * n / batch_size)))
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(X_train.shape[1], hidden), torch.nn.Tanh(),
                                torch.nn.Linear(hidden, 10))
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=tuple(betas), eps=eps)
    gen = torch.Generator().manual_seed(int(seed) * 100003 + int(batch_size))
    loss_fn = torch.nn.functional.cross_entropy
    eval_steps = np.unique(np.linspace(0, steps, n_evals + 1).round().astype(int))
    train_loss = []

    def evaluate():
        with torch.no_grad():
            return float(loss_fn(model(X_train), y_train))

    for k in range(steps + 1):
        if k in eval_steps:
            train_loss.append(evaluate())
        if k == steps:
            break
        idx = torch.randint(0, n, (batch_size,), generator=gen)
        opt.zero_grad(set_to_none=True)
        loss_fn(model(X_train[idx]), y_train[idx]).backward()
        opt.step()
    with torch.no_grad():
        test_acc = float((model(X_test).argmax(1) == y_test).float().mean())
        train_acc = float((model(X_train).argmax(1) == y_train).float().mean())
    return {"steps": steps, "eval_steps": eval_steps, "train_loss": np.array(train_loss),
            "test_accuracy": test_acc, "train_accuracy": train_acc,
            "noise_to_grad": noise_to_grad(model, X_train, y_train, batch_size)}


def noise_to_grad(model, X, y, batch_size):
    """Median over parameters of σ√diagΣ / |∇f| at the current weights (SPEC §3 regime check).

    Σ is the per-example gradient covariance over the training set (exact, from
    per-example gradients with ``torch.func``), σ = 1/√B. Values ≫ 1: the
    noise dominates and the SDE (hence the rule) applies; ≲ 1: it may not.
    """
    import torch
    from torch.func import functional_call, grad, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_one(p, xi, yi):
        out = functional_call(model, p, (xi.unsqueeze(0),))
        return torch.nn.functional.cross_entropy(out, yi.unsqueeze(0))

    per_example = vmap(grad(loss_one), in_dims=(None, 0, 0))(params, X, y)
    flat = torch.cat([g.reshape(g.shape[0], -1) for g in per_example.values()], dim=1).double()
    mean = flat.mean(dim=0)
    sd = flat.std(dim=0, unbiased=False)
    ratio = sd / math.sqrt(batch_size) / mean.abs().clamp_min(1e-300)
    return float(ratio.median())


def mlp_batch_sweep(*, batch_sizes=(16, 32, 64, 128, 256, 512), base_batch=16, lr=1e-3,
                    betas=(0.99, 0.999), eps=1e-8, epochs=40.0, hidden=64, seeds=(0, 1, 2),
                    rules=("sqrt", "none"), test_fraction=0.25, data_seed=0, n_evals=10):
    """Adam MLP on digits at several batch sizes under several hyperparameter rules.

    Parameters
    ----------
    batch_sizes : sequence of int
        B values; κ = B / base_batch.
    base_batch : int
        B0, where ``lr, betas, eps`` are the tuned hyperparameters.
    lr, betas, eps : base Adam hyperparameters at B0. The square-root rule
        needs κ(1−β1) < 1 for the largest κ (so β1 = 0.99 for κ = 32).
    epochs : float
        Same number of epochs at every B (equal SDE time under the rule).
    hidden, seeds, test_fraction, data_seed, n_evals : see :func:`train_mlp`.
    rules : sequence of {"sqrt", "none", "linear_lr"}

    Returns
    -------
    dict
        ``runs[rule][B]``: per-seed ``test_accuracy`` (n_seeds,), ``train_loss``
        curves (n_seeds, n_evals+1), ``sde_time`` of the evaluations, the
        hyperparameters used, ``noise_to_grad_final`` (n_seeds,) from
        :func:`noise_to_grad` at the end of training; ``gap[rule][B]``: mean and standard error over
        seeds of acc(B0) − acc(B) (paired by seed), in percentage points.
    """
    batch_sizes = [check.positive_int(b, "batch_sizes") for b in batch_sizes]
    base_batch = check.positive_int(base_batch, "base_batch")
    if base_batch not in batch_sizes:
        raise ValueError(f"`batch_sizes` must contain base_batch={base_batch}, got {batch_sizes}")
    seeds = [check.nonnegative_int(s, "seeds") for s in seeds]
    if len(seeds) < 2:
        raise ValueError(f"`seeds` must hold at least 2 seeds (for a standard error), got {seeds}")
    for rule in rules:
        check.choice(rule, "rules", RULES)
    epochs = check.positive_float(epochs, "epochs")
    data = digits_split(test_fraction, data_seed)
    n_train = data[0].shape[0]
    # validate every rule before training anything
    settings = {rule: {b: transformed_hyperparameters(rule, b / base_batch, lr=lr, betas=betas,
                                                       eps=eps) for b in batch_sizes}
                for rule in rules}
    runs, gap = {}, {}
    for rule in rules:
        runs[rule], gap[rule] = {}, {}
        for b in batch_sizes:
            hp = settings[rule][b]
            results = [train_mlp(data, batch_size=b, epochs=epochs, hidden=hidden, seed=s,
                                 n_evals=n_evals, **hp) for s in seeds]
            steps = results[0]["steps"]
            eval_steps = results[0]["eval_steps"]
            runs[rule][b] = {
                "hyperparameters": hp, "steps": steps,
                "sde_time": eval_steps * hp["lr"] ** 2, "epoch": eval_steps * b / n_train,
                "train_loss": np.stack([r["train_loss"] for r in results]),
                "test_accuracy": np.array([r["test_accuracy"] for r in results]),
                "train_accuracy": np.array([r["train_accuracy"] for r in results]),
                "noise_to_grad_final": np.array([r["noise_to_grad"] for r in results]),
            }
        base_acc = runs[rule][base_batch]["test_accuracy"]
        for b in batch_sizes:
            diff = 100.0 * (base_acc - runs[rule][b]["test_accuracy"])
            gap[rule][b] = {"mean": float(diff.mean()),
                            "stderr": float(diff.std(ddof=1) / math.sqrt(len(diff)))}
    return {"batch_sizes": batch_sizes, "base_batch": base_batch, "seeds": seeds,
            "base_hyperparameters": {"lr": lr, "betas": list(betas), "eps": eps},
            "epochs": epochs, "hidden": hidden, "n_train": n_train,
            "n_test": data[2].shape[0], "runs": runs, "gap": gap}
