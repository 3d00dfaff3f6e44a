"""Smith & Le's two experiments (example_projects/bayes_evidence) run end to end, shrunk."""

import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("sklearn")

FOLDER = pathlib.Path(__file__).resolve().parents[2] / "example_projects" / "bayes_evidence"


def run(script: str, *args: str) -> None:
    completed = subprocess.run(
        [sys.executable, str(FOLDER / script), *args], capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-3000:]


def test_evidence_sweep_writes_figure_and_table_and_the_evidence_picks_a_sensible_prior(tmp_path):
    run("evidence.py", "--out", str(tmp_path), "--num-points", "7")
    table = (tmp_path / "evidence.md").read_text().splitlines()
    cells = [[c.strip() for c in line.strip(" |").split("|")] for line in table[2:]]
    rows = {tuple(c[:2]): c for c in cells}
    assert set(rows) == {("informative", "50"), ("informative", "400"), ("random", "50"), ("random", "400")}
    # informative labels: the model beats the null model clearly, with more data by far more
    assert 0 < float(rows["informative", "50"][3]) < float(rows["informative", "400"][3])
    # weak prior: random labels are memorized (N = 50 < 65 parameters) but tested at chance
    train, test = (float(v.strip(" %")) for v in rows["random", "50"][-1].split("/"))
    assert train == 100.0 and 35.0 < test < 65.0
    assert (tmp_path / "evidence.png").stat().st_size > 20_000


def test_batch_size_sweep_writes_figure_and_table_with_the_logged_noise_scale(tmp_path):
    run(
        "batch_size.py",
        "--out",
        str(tmp_path),
        "--seeds",
        "1",
        "--steps",
        "20",
        "--batch-sizes",
        "4",
        "100",
        "--workers",
        "1",
    )
    table = (tmp_path / "batch_size.md").read_text()
    assert table.count("| digits |") == 3 and table.count("| swiss_roll |") == 3
    # ε = 0.05, N = 200: the best of B ∈ {4, 100}; g = ε (N/B − 1) as NoiseScaleMonitor logged it
    assert any(f"| digits | 0.05 | 200 | {b} | {0.05 * (200 / b - 1):.3g} |" in table for b in (4, 100))
    assert (tmp_path / "batch_size.png").stat().st_size > 20_000
