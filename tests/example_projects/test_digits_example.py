"""The digits example's YAML config, run through LightningCLI (acceptance 5 and 6)."""

import glob
import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_landscape import LandscapeResult, LossLandscapeMonitor, TrajectoryMonitor

pytest.importorskip("sklearn")

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "example_projects" / "digits"


def _small_config(tmp_path) -> str:
    """The shipped config, shrunk: 2 epochs, landscapes every epoch on a 5-point grid."""
    config = yaml.safe_load((EXAMPLE / "config.yaml").read_text())
    config["trainer"]["max_epochs"] = 2
    config["trainer"]["enable_progress_bar"] = False
    config["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp_path / "logs")
    config["trainer"]["default_root_dir"] = str(tmp_path)
    for callback in config["trainer"]["callbacks"]:
        if callback["class_path"] == "lightning_landscape.LossLandscapeMonitor":
            callback["init_args"].update(every_n_epochs=1, num_points=5, num_samples=256)
        if callback["class_path"] == "lightning_landscape.TrajectoryMonitor":
            callback["init_args"].update(num_points=5, num_samples=256)
        if callback["class_path"] == "lightning_landscape.SharpnessMonitor":
            callback["init_args"].update(every_n_epochs=1, num_samples=128, density_steps=10)
            callback["init_args"]["measure_kwargs"]["basin_volume"].update(num_probes=4, num_scan=5)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _load_main():
    spec = importlib.util.spec_from_file_location("digits_main", EXAMPLE / "main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_config_uses_the_callback_through_class_path():
    config = yaml.safe_load((EXAMPLE / "config.yaml").read_text())
    paths = [c["class_path"] for c in config["trainer"]["callbacks"]]
    assert "lightning_landscape.LossLandscapeMonitor" in paths


def test_example_config_writes_tensorboard_images_scalars_and_results(tmp_path):
    cli = _load_main().main(args=["fit", "--config", _small_config(tmp_path)])
    trainer = cli.trainer
    monitors = [c for c in trainer.callbacks if isinstance(c, LossLandscapeMonitor)]
    trajectory = next(c for c in trainer.callbacks if isinstance(c, TrajectoryMonitor))
    assert trajectory.snapshots.epochs == [0, 1, 2]
    assert {m.dims for m in monitors} == {1, 2}
    log_dir = trainer.logger.log_dir
    events = EventAccumulator(log_dir, size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    images = set(events.Tags()["images"])
    assert {"landscape/2d/contour", "landscape/2d/contour_filled", "landscape/2d/surface_3d"} <= images
    assert any(tag.endswith("/1d/curve") for tag in images)
    scalars = set(events.Tags()["scalars"])
    assert {"landscape/center_loss", "landscape/max_loss_rise", "landscape/center_accuracy"} <= scalars
    assert "val/accuracy" in scalars
    assert "trajectory/pca_plane" in images and "trajectory/explained_variance_pc1" in scalars
    assert {"sharpness/hessian_density", "sharpness/basin_radii"} <= images
    for measure in ("top_eigenvalue", "trace", "keskar", "filter_normalized_eigenvalue", "basin_volume"):
        assert f"sharpness/{measure}" in scalars, measure
    assert any(tag.startswith("trajectory/weights/") for tag in events.Tags()["histograms"])
    for monitor in monitors:
        assert len(monitor.saved_files) == 2
        assert all(f.startswith(os.path.join(log_dir, "landscapes")) for f in monitor.saved_files)
        assert LandscapeResult.load(monitor.saved_files[-1]) == monitor.last_result
    assert monitors[0].last_result.num_samples == 256


def test_example_command_line_runs(tmp_path):
    """The README's command, as a user types it (with the shrunk config)."""
    completed = subprocess.run(
        [sys.executable, str(EXAMPLE / "main.py"), "fit", "--config", _small_config(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert len(glob.glob(str(tmp_path / "logs" / "digits" / "version_0" / "events.out.tfevents.*"))) == 1
    assert len(glob.glob(str(tmp_path / "logs" / "digits" / "version_0" / "landscapes" / "*.npz"))) == 4
    # the README's redraw command works on what the run saved, without the model
    redrawn = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE / "redraw.py"),
            str(tmp_path / "logs" / "digits" / "version_0"),
            "--out",
            str(tmp_path / "redrawn.png"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert redrawn.returncode == 0, redrawn.stderr[-3000:]
    assert (tmp_path / "redrawn.png").stat().st_size > 10_000


def test_the_curvature_config_draws_hessian_planes_and_curvature_per_layer_and_per_batch(tmp_path):
    config = yaml.safe_load((EXAMPLE / "curvature.yaml").read_text())
    config["trainer"].update(max_epochs=2, enable_progress_bar=False, default_root_dir=str(tmp_path))
    config["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp_path / "logs")
    for callback in config["trainer"]["callbacks"]:
        callback["init_args"].update(num_samples=256)
        if callback["class_path"] == "lightning_landscape.LossLandscapeMonitor":
            callback["init_args"].update(num_points=5)
    path = tmp_path / "curvature.yaml"
    path.write_text(yaml.safe_dump(config))
    cli = _load_main().main(args=["fit", "--config", str(path)])
    events = EventAccumulator(cli.trainer.logger.log_dir, size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    images, scalars = set(events.Tags()["images"]), set(events.Tags()["scalars"])
    assert {"hessian_plane/2d/contour", "sharpness/per_layer", "sharpness/per_batch_top_eigenvalue"} <= images
    layers = [t for t in scalars if t.startswith("sharpness/per_layer/top_eigenvalue/")]
    assert len(layers) >= 4  # the CNN's convolutions, BatchNorms and linear layers, one each
    assert {t.replace("top_eigenvalue", "trace") for t in layers} <= scalars
    assert "sharpness/per_batch_top_eigenvalue/median" in scalars


@pytest.mark.parametrize("extra", ["wandb.yaml", "mlflow.yaml"])
def test_the_wandb_and_mlflow_configs_add_their_logger_beside_tensorboard(tmp_path, monkeypatch, extra):
    """``--config config.yaml --config wandb.yaml`` (or ``mlflow.yaml``): the figures reach the
    second tool's own store too (W&B offline, MLflow's local files)."""
    pytest.importorskip("wandb" if extra == "wandb.yaml" else "mlflow")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.chdir(tmp_path)
    loggers = yaml.safe_load((EXAMPLE / extra).read_text())
    assert len(loggers["trainer"]["logger"]) == 2
    loggers["trainer"]["logger"][0]["init_args"]["save_dir"] = str(tmp_path / "logs")
    second = loggers["trainer"]["logger"][1]["init_args"]
    if "save_dir" in second:
        second["save_dir"] = str(tmp_path / "logs")
    (tmp_path / extra).write_text(yaml.safe_dump(loggers))
    cli = _load_main().main(
        args=["fit", "--config", _small_config(tmp_path), "--config", str(tmp_path / extra)]
    )
    if extra == "wandb.yaml":
        cli.trainer.loggers[1].experiment.finish()
        images = glob.glob(
            str(tmp_path / "logs" / "wandb" / "offline-run-*" / "files" / "media" / "images" / "**"),
            recursive=True,
        )
        assert any("contour" in p and p.endswith(".png") for p in images), images[:5]
    else:
        artifacts = glob.glob(
            str(tmp_path / "mlruns" / "*" / "*" / "artifacts" / "landscape" / "2d" / "contour" / "*.png")
        )
        assert artifacts
