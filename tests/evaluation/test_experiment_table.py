"""experiments/results_table.py assembles rows from stored results files
(one single-task file per task, one multi-task file) into the table."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _write(path, tasks, parameters):
    path.write_text(json.dumps({"tasks": tasks, "parameters": parameters}))
    return str(path)


def test_table_from_results_files(tmp_path):
    semseg = _write(tmp_path / "st_semseg.json", {"semseg": {"miou": 0.4}},
                    1_000_000)
    depth = _write(tmp_path / "st_depth.json", {"depth": {"rmse": 0.5}},
                   1_000_000)
    multi = _write(tmp_path / "mt.json", {"semseg": {"miou": 0.5},
                                          "depth": {"rmse": 0.6}}, 1_500_000)
    output = tmp_path / "table.md"
    proc = subprocess.run(
        [sys.executable, "experiments/results_table.py",
         f"--row=single-task={semseg},{depth}", f"--row=multi-task={multi}",
         "--reference=single-task", f"--output={output}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| single-task | 40.00 | 0.5000 | +0.00 | 2.000 M |" in proc.stdout
    assert "| multi-task | 50.00 | 0.6000 | +2.50 | 1.500 M |" in proc.stdout
    assert output.read_text().startswith("| variant |")
    rows = json.loads((tmp_path / "table.json").read_text())["rows"]
    assert abs(rows[1]["dm"] - 2.5) < 1e-9 and rows[1]["paths"] == [multi]

    bad = subprocess.run(
        [sys.executable, "experiments/results_table.py", "--row=nameonly"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert bad.returncode == 2 and "NAME=PATH" in bad.stderr
