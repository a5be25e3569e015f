"""The JSON thinning of the AdamQLR comparison (experiments.adamqlr_comparison)."""
import numpy as np

from experiments.adamqlr_comparison import subsample


def test_subsample_keeps_stride_points_and_the_last_one():
    curve = np.arange(1601.0) ** 2
    out = subsample({"run": [{"loss": curve, "final": 3.5, "short": [1.0, 2.0]}]}, max_points=200)
    run = out["run"][0]
    stride = 9                                     # ceil(1601 / 199)
    expected = np.append(curve[::stride], curve[-1])
    assert run["loss_subsampled"] == {"stride": stride, "length": 1601}
    np.testing.assert_array_equal(run["loss"], expected)
    assert len(run["loss"]) <= 201
    assert run["final"] == 3.5 and run["short"] == [1.0, 2.0]


def test_subsample_does_not_repeat_the_last_point_on_the_stride():
    out = subsample({"x": list(range(13))}, max_points=7)     # stride ceil(13/6) = 3 hits 12
    np.testing.assert_array_equal(out["x"], [0, 3, 6, 9, 12])
    assert out["x_subsampled"] == {"stride": 3, "length": 13}
