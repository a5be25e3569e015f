"""Order studies beyond quadratics (issue 14 §5): the problem keys of a study
config, their refusals, and a regression study measured with both estimators."""
import math
import sys

import numpy as np
import pytest

from sde_engine.studies.order_config import build_config
from sde_engine.studies.order_problems import dataset
from sde_engine.studies.weak_order import build_problem, phi_values, run_order_study

LOGISTIC = dict(algorithm="rmsprop", bias_correction=True, problem="logistic_regression",
                dataset="breast_cancer", features=1, noise="gaussian", sigma0=0.5, eps0=0.1,
                c2=1.0, horizon=1.0, lrs=[0.4], paths=2048, tests=["theta1", "loss"])


def test_regression_problem_is_the_standardised_dataset_with_an_intercept():
    cfg = build_config(LOGISTIC)
    X, y = dataset("breast_cancer", 1)
    assert cfg.dim == 2 and cfg.theta0 == (0.0, 0.0) and X.shape == (569, 2)
    np.testing.assert_allclose([X[:, 0].mean(), X[:, 0].std()], [0.0, 1.0], atol=1e-12)
    assert np.all(X[:, 1] == 1.0) and set(np.unique(y)) == {0.0, 1.0}
    problem = build_problem(cfg, 0.2)
    assert problem.noise_scale == pytest.approx(0.5 / 0.2)       # σ = σ0/η
    theta = np.array([[0.3, -0.2]])
    z = X @ theta[0]
    by_hand = np.mean(np.log1p(np.exp(z)) - y * z)
    np.testing.assert_allclose(phi_values(cfg, problem, theta), [[0.3, by_hand]], rtol=1e-12)


def test_minibatch_noise_takes_whole_batch_sizes():
    cfg = build_config({**LOGISTIC, "noise": "minibatch", "sigma0": 0.1, "lrs": [0.4, 0.2]})
    assert [build_problem(cfg, lr).batch_size for lr in cfg.lrs] == [16, 4]   # B = (η/σ0)²
    with pytest.raises(ValueError, match=r"lr 0.25 with sigma0 0.1 gives minibatches of "
                                         r"B = 1/σ² = 6.25 examples"):
        build_config({**LOGISTIC, "noise": "minibatch", "sigma0": 0.1, "lrs": [0.4, 0.25]})


@pytest.mark.parametrize("change, words", [
    ({"curvature": [1.0]}, "`curvature` does not apply to problem 'logistic_regression'"),
    ({"dataset": None}, "problem 'logistic_regression' needs `dataset`"),
    ({"dataset": "diabetes"}, "logistic regression needs labels 0/1"),
    ({"dataset": "mnist"}, "`dataset` must be one of breast_cancer, diabetes; got 'mnist'"),
    ({"features": 40}, "`features` 40 is more than dataset 'breast_cancer' has (30)"),
    ({"dim": 5}, "`dim` 5 does not match problem 'logistic_regression', whose θ has 2 entries"),
    ({"noise": "skewed"}, "`noise` must be one of gaussian, minibatch for problem"),
    ({"reference": "exact"}, "`reference` 'exact' needs the quadratic problem"),
    ({"problem": "rosenbrock"}, "`dataset` does not apply to problem 'rosenbrock'"),
    ({"theta0": [1.0, 2.0, 3.0]}, "`theta0` must have 1 or dim = 2 entries, got 3"),
])
def test_problem_keys_are_refused_naming_the_key(change, words):
    values = {k: v for k, v in {**LOGISTIC, **change}.items() if v is not None}
    if change.get("problem") == "rosenbrock":
        values.pop("features")
    with pytest.raises(ValueError) as err:
        build_config(values)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_rosenbrock_and_custom_problems_build(tmp_path, monkeypatch):
    rosen = build_config({**{k: v for k, v in LOGISTIC.items()
                             if k not in ("dataset", "features")},
                          "problem": "rosenbrock", "noise": "rademacher"})
    assert rosen.dim == 2 and build_problem(rosen, 0.1).loss is not None
    (tmp_path / "my_problems.py").write_text(
        "from sde_engine.problems.rosenbrock import rosenbrock\n"
        "def make():\n    return rosenbrock(a=2.0, b=10.0)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    custom = {**{k: v for k, v in LOGISTIC.items() if k not in ("dataset", "features")},
              "problem": "custom", "factory": "my_problems:make"}
    problem = build_problem(build_config(custom), 0.1)
    assert problem.a == 2.0 and problem.noise_scale == pytest.approx(5.0)
    for factory, words in (("my_problems", "must be 'module:function'"),
                           ("no_such_module:make", "cannot be loaded")):
        with pytest.raises(ValueError, match=words):
            build_config({**custom, "factory": factory})


def test_coupled_and_independent_estimators_agree_on_logistic_regression():
    """Both estimate E φ(θ_k) − E φ(X_T) against the same extrapolated SDE
    discretisation (dt = h/4): the two errors differ by Monte Carlo noise only,
    and the coupled one has the smaller standard error."""
    coupled = run_order_study(build_config({**LOGISTIC, "estimator": "coupled"})).record
    independent = run_order_study(build_config(
        {**LOGISTIC, "estimator": "independent", "reference": "extrapolated",
         "sde_dt": 0.04})).record
    for test in LOGISTIC["tests"]:
        c, i = coupled["points"][test], independent["points"][test]
        gap = abs(c["error"][0] - i["error"][0])
        assert gap < 3 * math.hypot(c["stderr"][0], i["stderr"][0]), (test, c, i)
        assert c["stderr"][0] < i["stderr"][0] / 2
