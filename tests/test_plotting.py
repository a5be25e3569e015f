"""Figures take result records (the JSON the studies write) and never simulate."""
import json
import os

import matplotlib
import numpy as np
import pytest

from sde_engine import plotting
from sde_engine.analysis import fit_order
from sde_engine.studies.results import to_jsonable

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _weak_record():
    lrs = np.array([0.4, 0.2, 0.1, 0.05])
    err = 0.3 * lrs**2
    se = np.array([1e-3, 1e-3, 1e-3, 1e-3])     # the last point is below the noise floor
    fit = fit_order(lrs, err, se)
    points = dict(error=err, stderr=se, below_noise=fit.below_noise)
    # through JSON, as a record read back from order.json
    return json.loads(json.dumps(to_jsonable(dict(
        lrs=lrs, tests=["theta1", "loss"], title="synthetic",
        points={"theta1": points, "loss": points},
        fits={"theta1": {"vs_lr": fit.as_dict()}, "loss": {"vs_lr": fit.as_dict()}}))))


def test_backend_is_agg():
    assert matplotlib.get_backend().lower() == "agg"


def test_weak_order_figure_has_one_log_log_panel_per_test(tmp_path):
    record = _weak_record()
    fig = plotting.plot_weak_order(record)
    axes = fig.get_axes()
    assert len(axes) == 2
    for ax in axes:
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "slope 1" in labels and "slope 2" in labels
        assert any(lab.startswith("fit 2.00") for lab in labels)
        assert any("below noise floor" in lab for lab in labels)
    path = plotting.save_figure(fig, tmp_path / "sub" / "order.png")
    assert open(path, "rb").read(8) == PNG_MAGIC
    assert os.listdir(tmp_path / "sub") == ["order.png"]


def test_estimator_comparison_draws_each_estimators_errors_and_stderrs():
    coupled, independent = _weak_record(), _weak_record()
    coupled["paths"], independent["paths"] = 4096, 16384
    independent["points"]["theta1"] = dict(independent["points"]["theta1"],
                                           stderr=[4e-3] * 4)
    fig = plotting.plot_estimator_comparison({"coupled": coupled, "independent": independent})
    axes = fig.get_axes()
    assert len(axes) == 4                                  # (errors, stderrs) x 2 tests
    stderr_theta1 = axes[2]                                # row 2, first test
    lines = {line.get_label(): line.get_ydata() for line in stderr_theta1.get_lines()}
    assert list(lines["coupled (4,096 paths)"]) == [1e-3] * 4
    assert list(lines["independent (16,384 paths)"]) == [4e-3] * 4
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert "coupled (4,096 paths)" in labels and "independent (16,384 paths)" in labels


def test_convergence_figure_from_a_solver_record():
    dts = [0.1, 0.05, 0.025]
    fit = fit_order(dts, [0.1, 0.07, 0.05], [1e-3] * 3).as_dict()
    per = {"strong": [0.1, 0.07, 0.05], "weak_x": [0.02, 0.01, 0.005]}
    record = dict(dts=dts, methods=["euler_maruyama"], config={"model": "gbm", "n_paths": 10},
                  error={"euler_maruyama": per},
                  stderr={"euler_maruyama": {k: [1e-4] * 3 for k in per}},
                  fits={"euler_maruyama": {"strong": fit, "weak_x": fit}})
    fig = plotting.plot_convergence(record)
    assert [ax.get_title() for ax in fig.get_axes()][0].startswith("strong error")
    line = fig.get_axes()[1].get_lines()
    assert any(np.allclose(ln.get_ydata(), [0.02, 0.01, 0.005]) for ln in line)
    plotting.plt.close(fig)


def test_trajectories_draw_the_sde_last_on_top():
    t = np.linspace(0, 1, 5)
    curves = [dict(label=f"η = {lr}", t=t, mean=np.exp(-t) + lr, band=0.1 + 0 * t)
              for lr in (0.2, 0.1)]
    sde = dict(label="SDE", t=t, mean=np.exp(-t), band=0.1 + 0 * t)
    fig = plotting.plot_trajectories(curves, sde)
    ax = fig.get_axes()[0]
    top = max(ax.get_lines(), key=lambda ln: ln.get_zorder())
    assert np.allclose(top.get_ydata(), np.exp(-t)) or top.get_linestyle() == "--"
    assert ax.get_xlabel() == "SDE time t"
    plotting.plt.close(fig)


def test_failed_save_leaves_no_file(tmp_path):
    fig = plotting.plot_curves([0, 1], [[0.0], [1.0]], [[0.1], [0.1]], ["θ"])
    with pytest.raises(ValueError):
        plotting.save_figure(fig, tmp_path / "figure.unknownformat")
    assert os.listdir(tmp_path) == []


def test_weak_order_figure_adds_the_log_model_row_when_fitted():
    from sde_engine.analysis import compare_fits, fit_log_model

    lrs = 0.2 * 2.0 ** -np.arange(5)
    err = lrs**2 * (0.05 + 0.2 * np.log(1 / lrs))
    se = 0.02 * err
    power, log = fit_order(lrs, err, se), fit_log_model(lrs, err, se)
    fits = {"vs_lr": power.as_dict(), "log_model": log.as_dict(),
            "comparison": compare_fits(lrs, err, se, power, log).as_dict()}
    record = json.loads(json.dumps(to_jsonable(dict(
        lrs=lrs, tests=["theta1"], title="synthetic", points={"theta1": dict(
            error=err, stderr=se, below_noise=power.below_noise)}, fits={"theta1": fits}))))
    top, scaled = plotting.plot_weak_order(record).get_axes()
    assert any(t.get_text().startswith("η^2(a + b ln 1/η), b = 0.2 ")
               for t in top.get_legend().get_texts())
    assert "data prefer: log" in scaled.get_title() and scaled.get_yscale() == "linear"
    # the log model is a straight line in ln η on the scaled panel: a + b ln(1/η)
    line = next(ln for ln in scaled.get_lines() if ln.get_linestyle() == "-.")
    eta, y = line.get_data()
    np.testing.assert_allclose(y, 0.05 + 0.2 * np.log(1 / eta), rtol=1e-9)
