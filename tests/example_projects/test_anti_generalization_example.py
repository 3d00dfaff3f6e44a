"""The anti-generalization example runs end to end (shrunk) and writes its figure and table."""

import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("sklearn")

SCRIPT = (
    pathlib.Path(__file__).resolve().parents[2] / "example_projects" / "anti_generalization" / "compare.py"
)


def test_comparison_script_writes_figure_and_table(tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--out",
            str(tmp_path),
            "--steps-scale",
            "0.02",
            "--num-directions",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    table = (tmp_path / "results.md").read_text()
    for row in ("| swiss roll | good |", "| swiss roll | bad |", "| digits | good |", "| digits | bad |"):
        assert row in table
    assert (tmp_path / "comparison.png").stat().st_size > 50_000
