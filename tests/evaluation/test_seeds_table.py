"""Several seeds of one results table: mean, sample standard deviation
(checked against numpy) and the dm orderings that hold beyond the spread
(experiments/seeds_table.py)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rmtl_tf.evaluation import results_table

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
# dm per seed: A is clearly above C; B overlaps both.
DM = {"A": [2.0, 3.0, 2.5], "B": [0.0, 4.0, -2.0], "C": [-3.0, -2.0, -2.6]}
MIOU = {"A": [0.80, 0.82, 0.81], "B": [0.7, 0.9, 0.75],
        "C": [0.6, 0.61, 0.59]}


def _table(seed):
    return {"reference": "A", "rows": [
        {"name": name, "values": {"semseg": MIOU[name][seed],
                                  "depth": 0.5 + seed / 10},
         "dm": DM[name][seed], "parameters": 1_000_000}
        for name in ("A", "B", "C")]}


def test_mean_and_sample_std_match_numpy():
    rows = results_table.aggregate_seeds([_table(s) for s in range(3)])
    assert [r["name"] for r in rows] == ["A", "B", "C"]
    for row in rows:
        name = row["name"]
        np.testing.assert_allclose(
            row["dm"], (np.mean(DM[name]), np.std(DM[name], ddof=1)))
        np.testing.assert_allclose(
            row["values"]["semseg"],
            (np.mean(MIOU[name]), np.std(MIOU[name], ddof=1)))
        np.testing.assert_allclose(row["values"]["depth"],
                                   (0.6, np.std([0.5, 0.6, 0.7], ddof=1)))
        assert row["seeds"] == 3


def test_orderings_only_beyond_the_spread():
    rows = results_table.aggregate_seeds([_table(s) for s in range(3)])
    beyond, within = results_table.dm_orderings(rows)
    # A: 2.50 ± 0.50, B: 0.67 ± 3.06, C: -2.53 ± 0.50.
    assert beyond == ["A > C"]
    assert within == ["A ~ B", "B ~ C"]
    assert results_table.separated((1.0, 0.2), (0.0, 0.3)) == 1
    assert results_table.separated((0.0, 0.3), (1.0, 0.2)) == -1
    assert results_table.separated((1.0, 0.5), (0.0, 0.5)) == 0


def test_tables_of_other_rows_are_refused():
    other = _table(1)
    other["rows"] = other["rows"][::-1]
    with pytest.raises(ValueError, match="Aggregate runs of the same table"):
        results_table.aggregate_seeds([_table(0), other])


def test_cli_writes_the_table(tmp_path):
    paths = []
    for seed in range(3):
        path = tmp_path / f"seed{seed}.json"
        path.write_text(json.dumps(_table(seed)))
        paths.append(str(path))
    output = tmp_path / "table.md"
    proc = subprocess.run(
        [sys.executable, "experiments/seeds_table.py",
         f"--output={output}", *paths], cwd=ROOT, capture_output=True,
        text=True, timeout=300, check=False,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = output.read_text()
    assert "| A | 81.00 ± 1.00 | 0.6000 ± 0.1000 | +2.50 ± 0.50 | " \
           "1.000 M |" in text
    assert "over 3 seeds" in text
    assert "beyond the spread (difference of means > sum of the standard " \
           "deviations): A > C." in text
    assert "Within the spread: A ~ B; B ~ C." in text
    stored = json.loads((tmp_path / "table.json").read_text())
    assert stored["inputs"] == paths and len(stored["rows"]) == 3
    bad = subprocess.run(
        [sys.executable, "experiments/seeds_table.py", paths[0],
         str(tmp_path / "missing.json")], cwd=ROOT, capture_output=True,
        text=True, timeout=300, check=False)
    assert bad.returncode == 2 and "missing.json" in bad.stderr
