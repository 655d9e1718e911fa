"""dm on a toy table: sign, direction per metric, files."""

import json

import pytest

from rmtl_tf.metrics.multitask_score import (delta_m, headline_values,
                                             load_task_results)
from rmtl_tf.metrics.task_metrics import HEADLINE, make_task_metric

REFERENCE = {"semseg": {"miou": 0.40}, "depth": {"rmse": 0.50},
             "normals": {"mean": 20.0}, "edge": {"ods_f": 0.70}}


def test_sign_and_direction_on_a_toy_table():
    # semseg +25 % (higher mIoU is better), depth -20 % (higher RMSE is
    # worse): dm = (25 - 20) / 2 = +2.5 %.
    dm, per_task = delta_m({"semseg": {"miou": 0.50},
                            "depth": {"rmse": 0.60}}, REFERENCE)
    assert per_task == pytest.approx({"semseg": 25.0, "depth": -20.0})
    assert dm == pytest.approx(2.5)
    # Lower error is better: normals 18 deg vs 20 is +10 %.
    dm, _ = delta_m({"normals": 18.0}, REFERENCE)
    assert dm == pytest.approx(10.0)
    # The reference against itself scores 0; better everywhere is > 0.
    assert delta_m(REFERENCE, REFERENCE)[0] == 0.0
    better = {"semseg": 0.41, "depth": 0.49, "normals": 19.0, "edge": 0.71}
    assert delta_m(better, REFERENCE)[0] > 0
    worse = {"semseg": 0.39, "depth": 0.51, "normals": 21.0, "edge": 0.69}
    assert delta_m(worse, REFERENCE)[0] < 0


def test_every_task_has_a_direction():
    assert {t for t, h in HEADLINE.items() if h.lower_is_better} == {
        "depth", "normals"}
    assert headline_values({"saliency": {"max_f": 0.8, "miou": 0.6}}) == {
        "saliency": 0.8}


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="reference for task 'saliency'"):
        delta_m({"saliency": 0.5}, REFERENCE)
    with pytest.raises(ValueError, match="Unknown task 'sky'"):
        delta_m({"sky": 0.5}, REFERENCE)
    with pytest.raises(ValueError, match="is 0"):
        delta_m({"edge": 0.5}, {"edge": 0.0})
    with pytest.raises(ValueError, match="no 'miou'"):
        headline_values({"semseg": {"pixel_accuracy": 0.9}})
    with pytest.raises(FileNotFoundError, match="none.json"):
        load_task_results([str(tmp_path / "none.json")])


def test_reference_files_merge(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"tasks": {"semseg": {"miou": 0.4}}}))
    b.write_text(json.dumps({"tasks": {"depth": {"rmse": 0.5}}}))
    merged = load_task_results([str(a), str(b)])
    assert merged == {"semseg": {"miou": 0.4}, "depth": {"rmse": 0.5}}
    with pytest.raises(ValueError, match="two reference files"):
        load_task_results([str(a), str(a)])


def test_make_task_metric():
    assert make_task_metric("semseg", {"semseg": 6}).num_classes == 6
    assert make_task_metric("human_parts").num_classes == 7
    assert make_task_metric("edge", dataset="nyud").max_dist == 0.011
    assert make_task_metric("edge", dataset="pascal_context").max_dist == \
        0.0075
    assert make_task_metric("edge", edge_max_dist=0.02).max_dist == 0.02
    with pytest.raises(ValueError, match="num_classes"):
        make_task_metric("semseg")
    with pytest.raises(ValueError, match="Unknown task 'sky'"):
        make_task_metric("sky")
