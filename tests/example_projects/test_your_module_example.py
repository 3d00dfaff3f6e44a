"""example_projects/your_module: a user's regression (dict batches, preprocessing in a batch hook) and
a user's tiny Transformer language model, watched by the monitors from YAML with no loss code of ours."""

import importlib.util
import pathlib
import sys

import pytest
import torch
import yaml

from lightning_landscape import LossLandscapeMonitor, SharpnessMonitor, TrajectoryMonitor

pytest.importorskip("sklearn")

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "example_projects" / "your_module"


def _load(name: str):
    sys.path.insert(0, str(EXAMPLE))
    spec = importlib.util.spec_from_file_location(f"your_module_{name}", EXAMPLE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _small_config(tmp_path, name: str) -> str:
    """The shipped config, shrunk: 2 epochs, every monitor every epoch on small grids."""
    config = yaml.safe_load((EXAMPLE / f"{name}.yaml").read_text())
    assert all("loss_fn" not in c["init_args"] for c in config["trainer"]["callbacks"])  # no loss of ours
    config["trainer"].update(max_epochs=2, enable_progress_bar=False, default_root_dir=str(tmp_path))
    config["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp_path / "logs")
    for callback in config["trainer"]["callbacks"]:
        args = callback["init_args"]
        args["every_n_epochs"] = 1
        if "num_points" in args:
            args["num_points"] = 3
        if "measures" in args:  # fewer Hessian-vector products
            args.update(measure_kwargs={"trace": {"num_probes": 6}}, density_probes=1, density_steps=5)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _monitors(cli):
    return {(type(c).__name__, getattr(c, "tag", "")): c for c in cli.trainer.callbacks}


def test_regression_with_dict_batches_is_measured_on_its_own_loss(tmp_path):
    models = _load("models")
    cli = _load("main").main(args=["fit", "--config", _small_config(tmp_path, "regression")])
    data = models.DiabetesData()
    data.setup()
    module = cli.model.cpu().eval()
    x = (data.train_set.features - module.mean) / module.std  # the hook's preprocessing, by hand
    y = (data.train_set.target - module.TARGET_MEAN) / module.TARGET_STD
    with torch.no_grad():
        expected = float(((module.net(x)[:, 0].double() - y.double()) ** 2).mean())
    monitors = _monitors(cli)
    landscape = monitors[("LossLandscapeMonitor", "landscape")].last_result
    assert landscape.center_loss == pytest.approx(expected, rel=1e-5)
    assert monitors[("SharpnessMonitor", "sharpness")].last_values["center_loss"] == pytest.approx(
        expected, rel=1e-5
    )
    trajectory = monitors[("TrajectoryMonitor", "trajectory")].last_result
    assert float(trajectory.snapshot_loss[-1]) == pytest.approx(expected, rel=1e-5)
    assert cli.trainer.callback_metrics["sharpness/top_eigenvalue"] > 0
    assert list((pathlib.Path(cli.trainer.logger.log_dir) / "checkpoints").glob("flattest-*.ckpt"))


def test_transformer_language_model_is_measured_on_its_own_loss(tmp_path):
    models = _load("models")
    cli = _load("main").main(args=["fit", "--config", _small_config(tmp_path, "language_model")])
    data = models.ZenData()
    data.setup()
    module = cli.model.cpu().eval()
    with torch.no_grad():
        logits = module(data.windows[:, :-1]).double()
    expected = float(-logits.log_softmax(-1).gather(-1, data.windows[:, 1:].unsqueeze(-1)).mean())
    monitors = _monitors(cli)
    for tag in ("landscape", "landscape_1d"):
        center = monitors[("LossLandscapeMonitor", tag)].last_result.center_loss
        assert center == pytest.approx(expected, rel=1e-5)
    assert isinstance(monitors[("SharpnessMonitor", "sharpness")], SharpnessMonitor)
    values = monitors[("SharpnessMonitor", "sharpness")].last_values
    assert values["top_eigenvalue"] > 0 and values["trace"] > 0
    assert isinstance(monitors[("TrajectoryMonitor", "trajectory")], TrajectoryMonitor)
    landscapes = [m for k, m in monitors.items() if k[0] == "LossLandscapeMonitor"]
    assert len(landscapes) == 2 and all(isinstance(m, LossLandscapeMonitor) for m in landscapes)
