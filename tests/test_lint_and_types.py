"""The linter, the formatter and the type checker run inside the tests: a change that breaks any of
them fails like a broken test (configured in ``pyproject.toml``: ``[tool.ruff]``, ``[tool.mypy]``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKED = ["lightning_landscape", "tests", "example_projects", "benchmarks", "docs"]


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    "command", [("ruff", "check", *CHECKED), ("ruff", "format", "--check", *CHECKED)], ids=["check", "format"]
)
def test_ruff_passes_on_the_package_tests_examples_and_benchmarks(command):
    done = _run(*command)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]


def test_mypy_passes_on_the_package():
    done = _run("mypy", "--no-incremental")
    assert done.returncode == 0, done.stdout[-4000:]
    assert "Success: no issues found" in done.stdout


def test_the_checks_can_fail(tmp_path):
    """The same commands on a planted defect fail (so a pass above means something)."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\ndef f(x: int) -> str:\n    return x\n")
    assert _run("ruff", "check", "--no-cache", "--isolated", str(bad)).returncode != 0
    assert _run("mypy", "--no-incremental", "--config-file", os.devnull, str(bad)).returncode != 0
