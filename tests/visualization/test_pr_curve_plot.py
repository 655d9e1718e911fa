"""PR-curve PNGs: drawn where the numbers say, written and readable."""

import cv2
import numpy as np
import pytest

from rmtl_tf.visualization.pr_curve_plot import (COLOURS, MARGIN,
                                                 draw_pr_curves,
                                                 task_pr_series, write_png)


def test_curve_and_best_point_land_where_expected(tmp_path):
    image = draw_pr_curves([{"precision": [1.0, 0.5], "recall": [0.5, 1.0],
                             "best": (0.5, 1.0)}], title="edge", size=400)
    assert image.shape == (400, 400, 3) and image.dtype == np.uint8
    span = 400 - 2 * MARGIN
    # The best point (recall 0.5, precision 1) is drawn in the first colour
    # (BGR in COLOURS, the image is RGB).
    x, y = MARGIN + span // 2, MARGIN
    np.testing.assert_array_equal(image[y, x], COLOURS[0][::-1])
    path = write_png(str(tmp_path / "pr.png"), image)
    back = cv2.imread(path)[..., ::-1]
    np.testing.assert_array_equal(back, image)


def test_series_from_metric_results_and_errors():
    edge = {"precision": [0.9, 0.5], "recall": [0.4, 0.8], "ods_f": 0.62,
            "ap": 0.5, "ods_recall": 0.8, "ods_precision": 0.5}
    series = task_pr_series("edge", edge, label="rcm")
    assert series["best"] == (0.8, 0.5) and series["label"].startswith("rcm")
    sal = {"precision": [0.9, 0.5], "recall": [0.4, 0.8], "max_f": 0.7,
           "thresholds": [0.2, 0.5], "max_f_threshold": 0.5}
    assert task_pr_series("saliency", sal)["best"] == (0.8, 0.5)
    with pytest.raises(ValueError, match="'depth' has no PR curve"):
        task_pr_series("depth", {})
    with pytest.raises(ValueError, match="one length"):
        draw_pr_curves([{"precision": [1.0], "recall": [0.5, 1.0]}])
