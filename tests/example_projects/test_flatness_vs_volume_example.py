"""The flatness-vs-volume example runs end to end (shrunk) and writes its figure and tables."""

import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("sklearn")

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "example_projects" / "flatness_vs_volume" / "run.py"


def test_flatness_vs_volume_script_writes_figure_and_tables(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--levels", "0", "0.5", "--seeds", "1"]
        + ["--num-train", "60", "--num-test", "60", "--init-samples", "300", "--max-steps", "400"]
        + ["--evidence-probes", "3", "--evidence-steps", "10"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    table = (tmp_path / "results.md").read_text()
    assert "| 0% | 0 |" in table and "| 50% | 0 |" in table
    assert "Spearman" in table and "| log P(f), prior volume (nats) |" in table
    rescaled = table.split("Rescaling")[1].splitlines()
    rows = [line.split("|") for line in rescaled if line.startswith("| 1 |") or line.startswith("| 100 |")]
    # the same function: test error and log P(f) identical; the top eigenvalue moves
    assert rows[0][2] == rows[1][2] and rows[0][6] == rows[1][6]
    assert float(rows[1][3]) > 10 * float(rows[0][3])
    assert (tmp_path / "flatness_vs_volume.png").stat().st_size > 20_000
