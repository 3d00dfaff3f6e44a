"""The batch-size example: four LightningCLI runs (shrunk) and the comparison script."""

import importlib.util
import pathlib
import subprocess
import sys

import pytest
import yaml

pytest.importorskip("sklearn")

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "example_projects" / "batch_size"
RUNS = ("small_batch", "large_batch", "small_batch_wd", "large_batch_wd")


def test_four_runs_then_comparison(tmp_path):
    base = yaml.safe_load((EXAMPLE / "base.yaml").read_text())
    base["trainer"]["max_epochs"] = 2
    for callback in base["trainer"]["callbacks"]:
        if callback["class_path"].startswith("lightning_landscape."):
            callback["init_args"].update(num_points=5, num_samples=128)
            if callback["class_path"].endswith("LossLandscapeMonitor"):
                callback["init_args"]["every_n_epochs"] = 2
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    spec = importlib.util.spec_from_file_location("batch_size_main", EXAMPLE / "main.py")
    main = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(main)
    logs = tmp_path / "lightning_logs"
    for run in RUNS:
        config = yaml.safe_load((EXAMPLE / f"{run}.yaml").read_text())
        config["trainer"]["logger"]["init_args"]["save_dir"] = str(logs)
        (tmp_path / f"{run}.yaml").write_text(yaml.safe_dump(config))
        cli = main.main(
            args=["fit", "--config", str(tmp_path / "base.yaml"), "--config", str(tmp_path / f"{run}.yaml")]
        )
        expected_batch = 16 if run.startswith("small") else 600
        assert cli.datamodule.batch_size == expected_batch
        assert cli.model.hparams.weight_decay == (0.005 if run.endswith("_wd") else 0.0)
    out = tmp_path / "figures"
    completed = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE / "compare.py"),
            str(logs / "batch_size"),
            "--out",
            str(out),
            "--num-points",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    names = {p.name for p in out.iterdir()}
    assert {"interpolation.png", "interpolation_wd.png", "comparison.png", "results.md"} <= names
    assert {f"trajectory_{run}.png" for run in RUNS} <= names
    table = (out / "results.md").read_text()
    assert all(f"| {run} |" in table for run in RUNS)
    for line in table.splitlines()[2:]:  # the PCA plane's share of the path's variance, a percentage
        share = float(line.rstrip(" |").rsplit("| ", 1)[1].rstrip("%"))
        assert 0.0 < share <= 100.0
