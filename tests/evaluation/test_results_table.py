"""The paper-style table: columns, dm sign, parameters, merged rows."""

import pytest

from rmtl_tf.evaluation.results_table import (build_table, format_markdown,
                                              merge_rows)

SINGLE = merge_rows([
    {"tasks": {"semseg": {"miou": 0.40}}, "parameters": 1_000_000},
    {"tasks": {"depth": {"rmse": 0.50}}, "parameters": 1_000_000}])
MULTI = {"tasks": {"semseg": {"miou": 0.50}, "depth": {"rmse": 0.60}},
         "parameters": 1_200_000}


def test_dm_and_columns():
    tasks, table = build_table([("single-task", SINGLE), ("rcm", MULTI)],
                               reference="single-task")
    assert tasks == ["semseg", "depth"]
    assert table[0]["dm"] == 0.0 and table[0]["parameters"] == 2_000_000
    assert table[1]["dm"] == pytest.approx((25 - 20) / 2)
    text = format_markdown([("single-task", SINGLE), ("rcm", MULTI)],
                           reference="single-task")
    lines = text.splitlines()
    assert lines[0] == ("| variant | semseg mIoU % ↑ | depth RMSE (m) ↓ | "
                        "dm % ↑ | parameters |")
    assert lines[2] == "| single-task | 40.00 | 0.5000 | +0.00 | 2.000 M |"
    assert lines[3] == "| rcm | 50.00 | 0.6000 | +2.50 | 1.200 M |"
    assert "positive = better" in text


def test_missing_cells_and_errors():
    partial = {"tasks": {"depth": {"rmse": 0.4}}, "parameters": None}
    text = format_markdown([("a", MULTI), ("b", partial)])
    assert "| b | - | 0.4000 | - | - |" in text
    with pytest.raises(ValueError, match="Unknown reference row 'x'"):
        build_table([("a", MULTI)], reference="x")
    with pytest.raises(ValueError, match="unique"):
        build_table([("a", MULTI), ("a", MULTI)])
    with pytest.raises(ValueError, match="appears twice"):
        merge_rows([MULTI, MULTI])
