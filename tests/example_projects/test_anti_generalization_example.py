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
            "--num-probes",
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
    basin = (tmp_path / "basin.md").read_text()  # Huang et al.'s report: log10 volume, radii, the gap
    assert "| swiss roll | good | 3488 |" in basin and "| digits | good − bad |" in basin


def test_lightning_cli_config_builds_and_trains_the_bad_minimum(tmp_path):
    import importlib.util

    import yaml

    from lightning_landscape import AntiGeneralizationModule, SharpnessMonitor

    folder = SCRIPT.parent
    config = yaml.safe_load((folder / "swiss_roll.yaml").read_text())
    config["trainer"].update(max_steps=20, check_val_every_n_epoch=10, default_root_dir=str(tmp_path))
    config["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp_path / "logs")
    for callback in config["trainer"]["callbacks"]:
        callback["init_args"]["every_n_epochs"] = 10
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    spec = importlib.util.spec_from_file_location("anti_main", folder / "main.py")
    main = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(main)
    cli = main.main(args=["fit", "--config", str(path)])
    assert isinstance(cli.model, AntiGeneralizationModule) and cli.model.beta == 0.3
    assert cli.trainer.global_step == 20
    assert {"train/rce", "distractor/accuracy", "val/accuracy"} <= set(cli.trainer.callback_metrics)
    monitor = next(c for c in cli.trainer.callbacks if isinstance(c, SharpnessMonitor))
    assert "top_eigenvalue" in monitor.last_values
