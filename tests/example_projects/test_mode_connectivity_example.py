"""The mode-connectivity example runs end to end (shrunk) and writes its figure and table."""

import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("sklearn")

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "example_projects" / "mode_connectivity" / "main.py"


def test_the_example_writes_the_figure_and_the_barrier_table(tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--out",
            str(tmp_path),
            "--epochs",
            "3",
            "--steps",
            "60",
            "--num-points",
            "7",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    table = (tmp_path / "results.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [r.split("|")[1].strip() for r in rows] == [
        "straight line",
        "bezier curve, 1 bend",
        "polychain curve, 1 bend",
    ]
    barriers = [float(r.split("|")[2]) for r in rows]
    assert barriers[1] < barriers[0]  # even a short training bends the path below the ridge
    assert (tmp_path / "curve_vs_line.png").stat().st_size > 20_000
