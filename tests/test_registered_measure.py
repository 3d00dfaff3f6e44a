"""A sharpness measure registered from outside the package (``tests/user_measures.py``, as a
user's own module) is computed by ``sharpness()``, by a ``SharpnessMonitor`` built from a
LightningCLI YAML config, and by ``lightning-landscape sharpness``, with its options checked as
ours are; the never-perturbs table holds it too (``test_observing_never_perturbs.py``)."""

import json
import os
import subprocess
import sys

import pytest
import torch
import user_measures
import yaml
from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningCLI
from problems import GlobalRNG, assert_same_state, snapshot
from user_modules import RegressionData

import lightning_landscape as ll

HERE = os.path.dirname(os.path.abspath(__file__))


def _batches():
    return [RegressionData().dataset().tensors]


def test_sharpness_computes_it_and_leaves_the_model_as_it_was():
    model = user_measures.MeasuredRegression()
    before, rng = snapshot(model), GlobalRNG.capture()
    result = ll.sharpness(model, _batches(), measure="random_step", sigma=0.05, seed=3)
    assert_same_state(before, model)  # the measure wrote into the weights and flags: undone
    assert GlobalRNG.capture().equals(rng)  # it reseeded the global stream: undone
    moved = user_measures.MeasuredRegression()
    moved.load_state_dict(model.state_dict())
    torch.manual_seed(3)
    with torch.no_grad():
        for p in moved.parameters():
            p.add_(0.05 * torch.randn_like(p))
    expected = ll.evaluate(moved, _batches()).loss - ll.evaluate(model, _batches()).loss
    assert result.value == pytest.approx(expected, rel=1e-6) and result.extra == {"sigma": 0.05}
    with pytest.raises(ValueError, match="`sigma` must be a finite number > 0, got 0"):
        ll.sharpness(model, _batches(), measure="random_step", sigma=0)


def _config(tmp_path, monitor_args):
    config = {
        "seed_everything": 7,
        "trainer": {
            "accelerator": "cpu",
            "max_epochs": 1,
            "logger": False,
            "enable_checkpointing": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": str(tmp_path),
            "callbacks": [{"class_path": "lightning_landscape.SharpnessMonitor", "init_args": monitor_args}],
        },
        "model": {"class_path": "user_measures.MeasuredRegression"},
        "data": {"class_path": "user_modules.RegressionData"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_a_sharpness_monitor_built_from_yaml_logs_it(tmp_path):
    arguments = {
        "measures": ["random_step", "top_eigenvalue"],
        "measure_kwargs": {"random_step": {"sigma": 0.05}},
        "every_n_epochs": 1,
        "num_samples": 32,
        "save_results": True,
    }
    cli = LightningCLI(args=["fit", "--config", _config(tmp_path, arguments)], save_config_callback=None)
    monitor = next(c for c in cli.trainer.callbacks if isinstance(c, ll.SharpnessMonitor))
    report = monitor.last_result
    assert report.measures["random_step"].extra == {"sigma": 0.05}
    assert float(cli.trainer.callback_metrics["sharpness/random_step"]) == pytest.approx(
        report.measures["random_step"].value
    )
    assert ll.SharpnessReport.load(monitor.saved_files[-1]).measures["random_step"].value == pytest.approx(
        report.measures["random_step"].value
    )
    bad = {**arguments, "measure_kwargs": {"random_step": {"sigma": -1.0}}}
    with pytest.raises(ValueError, match=r"`measure_kwargs\['random_step'\]`: `sigma` must be"):
        LightningCLI(args=["--config", _config(tmp_path, bad)], save_config_callback=None, run=False)


def test_the_command_line_computes_it_for_a_checkpoint_of_the_users_module(tmp_path):
    model = user_measures.MeasuredRegression()
    trainer = Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=str(tmp_path))  # fmt: skip
    trainer.fit(model, RegressionData())
    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)
    (tmp_path / "config.yaml").write_text("model: {}\ndata: {}\n")
    command = [
        sys.executable, "-m", "lightning_landscape.cli", "sharpness",
        "--model_config", str(tmp_path / "config.yaml"), "--ckpt_path", str(ckpt),
        "--model_class", "user_measures.MeasuredRegression", "--data_class", "user_modules.RegressionData",
        "--measures", "[random_step]", "--measure_kwargs", '{"random_step": {"sigma": 0.05}}',
        "--num_samples", "32", "--accelerator", "cpu", "--output_dir", str(tmp_path / "out"),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": HERE + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "random_step" in done.stdout  # the table
    values = json.loads((tmp_path / "out" / "sharpness.json").read_text())["values"]
    loaded = user_measures.MeasuredRegression.load_from_checkpoint(ckpt)
    batches = ll.core.base.batches.evaluation_subset(
        RegressionData().train_dataloader(), 32, 256, 0, torch.device("cpu")
    )
    expected = ll.sharpness(loaded, batches, measure="random_step", sigma=0.05)
    assert values["random_step"] == pytest.approx(expected.value, rel=1e-6)
    wrong = [
        *command[: command.index("--measure_kwargs") + 1],
        '{"random_step": {"sigma": 0}}',
        *command[command.index("--measure_kwargs") + 2 :],
    ]
    done = subprocess.run(wrong, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2 and "`sigma` must be a finite number > 0" in done.stderr
