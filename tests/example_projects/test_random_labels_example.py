"""The random-labels example runs end to end (shrunk) and writes its figure and table."""

import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("sklearn")

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "example_projects" / "random_labels" / "run.py"


def test_random_labels_script_writes_figure_and_table(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--levels", "0", "1", "--max-epochs", "3"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    table = (tmp_path / "results.md").read_text()
    assert "| 0% | 3 |" in table and "| 100% | 3 |" in table
    assert (tmp_path / "random_labels.png").stat().st_size > 20_000
