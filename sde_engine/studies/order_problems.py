"""The problem f of a weak-order study, built from its configuration (SPEC §1).

``problem`` in a study config picks one of

* ``"quadratic"``: f(θ) = ½ θᵀ diag(curvature) θ, noise covariance diag(noise_cov)
  (keys ``dim``, ``curvature``, ``noise_cov``);
* ``"linear_regression"``, ``"logistic_regression"``: a scikit-learn dataset
  (key ``dataset``), its first ``features`` columns standardised plus an
  intercept column (p = features + 1), optional ``l2``; the gradient noise is
  that of minibatches (``noise = "minibatch"``, drawn with replacement) or its
  Gaussian approximation with the same covariance Σ(θ) (``noise = "gaussian"``);
* ``"rosenbrock"``: f = (1 − x)² + 100 (y − x²)² with isotropic noise;
* ``"custom"``: ``factory = "module:function"``, a function of no arguments
  returning a :class:`~sde_engine.problems.base.Problem` (for instance one from
  :func:`~sde_engine.problems.custom_problem`); ``module`` is imported with the
  current directory on ``sys.path``.

Every problem is used at the noise scale σ of the study point (σ0/η for RMSprop
and Adam, σ0 for SGD; SPEC §3). For regression σ = 1/√B, so the minibatch size
at learning rate η is B = (η/σ0)²: it must be whole with minibatch noise, and
is an effective (real-valued) batch size with the Gaussian approximation.
"""
import functools
import importlib
import os
import sys

import numpy as np

PROBLEMS = ("quadratic", "linear_regression", "logistic_regression", "rosenbrock", "custom")
REGRESSIONS = ("linear_regression", "logistic_regression")
DATASETS = ("breast_cancer", "diabetes")
#: Noise families each problem accepts (``custom``: the factory's problem decides).
PROBLEM_NOISES = {"quadratic": ("gaussian", "rademacher", "skewed"),
                  "rosenbrock": ("gaussian", "rademacher", "skewed"),
                  "linear_regression": ("gaussian", "minibatch"),
                  "logistic_regression": ("gaussian", "minibatch")}
ROSENBROCK = dict(a=1.0, b=100.0)


@functools.lru_cache(maxsize=None)
def dataset(name, features):
    """(X, y) of a scikit-learn dataset: the first ``features`` columns standardised
    (all with None) and an intercept column; X has shape (N, features + 1)."""
    from sklearn import datasets

    if name not in DATASETS:
        raise ValueError(f"`dataset` must be one of {', '.join(DATASETS)}; got {name!r}")
    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    if features is not None:
        if features > X.shape[1]:
            raise ValueError(f"`features` {features} is more than dataset {name!r} has "
                             f"({X.shape[1]})")
        X = X[:, :features]
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    X = np.hstack([X, np.ones((len(y), 1))])
    X.setflags(write=False)
    y = np.asarray(y, dtype=float)
    y.setflags(write=False)
    return X, y


@functools.lru_cache(maxsize=None)
def custom_factory(spec):
    """The problem made by ``factory = "module:function"`` (σ as the factory set it)."""
    from ..problems.base import Problem

    module_name, _, func_name = spec.partition(":")
    if not module_name or not func_name:
        raise ValueError(f"`factory` must be 'module:function', got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"`factory` {spec!r} cannot be loaded: {exc}") from None
    problem = func()
    if not isinstance(problem, Problem):
        raise ValueError(f"`factory` {spec!r} must return a Problem, got {type(problem).__name__}")
    return problem


def problem_dim(problem, dataset_name=None, features=None, factory=None):
    """d of the study's θ for a non-quadratic problem (the data decide it)."""
    if problem in REGRESSIONS:
        return dataset(dataset_name, features)[0].shape[1]
    if problem == "rosenbrock":
        return 2
    return custom_factory(factory).dim


def base_noise(factory):
    """The noise family of a custom problem (``problem.noise``)."""
    return custom_factory(factory).noise


def build_problem(cfg, noise_scale):
    """The :class:`~sde_engine.problems.base.Problem` of ``cfg`` at noise scale σ."""
    from .. import problems

    if cfg.problem == "quadratic":
        return problems.quadratic(np.array(cfg.curvature), Sigma=np.array(cfg.noise_cov),
                                  noise=cfg.noise, noise_scale=noise_scale)
    if cfg.problem == "rosenbrock":
        from ..problems.rosenbrock import rosenbrock

        return rosenbrock(**ROSENBROCK, noise=cfg.noise, noise_scale=noise_scale)
    if cfg.problem == "custom":
        return custom_factory(cfg.factory).with_noise_scale(noise_scale)
    X, y = dataset(cfg.dataset, cfg.features)
    build = problems.linear_regression if cfg.problem == "linear_regression" \
        else problems.logistic_regression
    return build(X, y, 1, l2=cfg.l2 or 0.0, noise=cfg.noise).with_noise_scale(noise_scale)


def check_batch_sizes(cfg, noise_scales):
    """Minibatch noise needs a whole B = 1/σ² at every study point."""
    from ..problems.regression import whole_batch_size

    if cfg.problem not in REGRESSIONS or cfg.noise != "minibatch":
        return
    for lr, sigma in noise_scales:
        if whole_batch_size(sigma) is None:
            raise ValueError(
                f"lr {lr:g} with sigma0 {cfg.sigma0:g} gives minibatches of B = 1/σ² = "
                f"{sigma ** -2:.6g} examples, not a whole number; with minibatch noise choose "
                f"`sigma0` and `lrs` so that (lr/sigma0)² is whole (SGD: 1/sigma0²), or use "
                f"noise = 'gaussian'")


def default_theta0(problem, dim):
    """θ0 when the config gives none: 1 (quadratic, as before) or 0 (the others)."""
    return (1.0,) * dim if problem == "quadratic" else (0.0,) * dim


def check_problem_keys(v):
    """Refuse keys that do not belong to the problem; return the problem's d."""
    problem = v.get("problem", "quadratic")
    own = {"quadratic": ("curvature", "noise_cov"), "custom": ("factory",),
           "rosenbrock": ()}.get(problem, ("dataset", "features", "l2"))
    for key in ("curvature", "noise_cov", "dataset", "features", "l2", "factory"):
        if key in v and key not in own:
            raise ValueError(f"`{key}` does not apply to problem {problem!r}")
    if problem in REGRESSIONS and "dataset" not in v:
        raise ValueError(f"problem {problem!r} needs `dataset` (one of {', '.join(DATASETS)})")
    if problem == "custom" and "factory" not in v:
        raise ValueError("problem 'custom' needs `factory` = 'module:function'")
    if problem == "logistic_regression" and v.get("dataset") == "diabetes":
        raise ValueError("`dataset` 'diabetes' has real-valued targets; logistic regression "
                         "needs labels 0/1 (dataset 'breast_cancer')")
    if problem == "quadratic":
        d = v.get("dim", 1)
    else:
        d = problem_dim(problem, v.get("dataset"), v.get("features"), v.get("factory"))
        if "dim" in v and v["dim"] != d:
            raise ValueError(f"`dim` {v['dim']} does not match problem {problem!r}, whose θ "
                             f"has {d} entries; omit `dim`")
    noises = PROBLEM_NOISES[problem] if problem in PROBLEM_NOISES else (base_noise(v["factory"]),)
    noise = v.get("noise", "gaussian")
    if noise not in noises:
        raise ValueError(f"`noise` must be one of {', '.join(noises)} for problem {problem!r}; "
                         f"got {noise!r}")
    return d
