"""Any LightningModule as it is: the users' own modules (tests/user_modules.py), trained from
LightningCLI YAML configs with every monitor that applies and no loss code of ours.

In each row the monitors' centre loss equals the module's own loss on the same data computed
independently (plain formulas in ``reference_loss``), and training ends with the same weights as
the same config without the monitors.
"""

from __future__ import annotations

import textwrap

import pytest
import torch
import yaml
from lightning.pytorch.cli import LightningCLI
from user_modules import ImageData, RegressionData, TokenData, expected_grid_loss

MONITORS = """
- class_path: lightning_landscape.LossLandscapeMonitor
  init_args:
    {{dims: 1, num_points: 3, num_samples: 64, eval_batch_size: 32, progress_bar: false,
      every_n_epochs: 1{loss}}}
- class_path: lightning_landscape.SharpnessMonitor
  init_args:
    every_n_epochs: 1
    measures: [top_eigenvalue, keskar]
    measure_kwargs: {{keskar: {{num_ascent_steps: 2}}}}
    num_samples: 64
    eval_batch_size: 32
    progress_bar: false{loss_line}
- class_path: lightning_landscape.TrajectoryMonitor
  init_args: {{num_points: 3, num_samples: 64, eval_batch_size: 32, progress_bar: false{loss}}}
- class_path: lightning_landscape.NoiseScaleMonitor
  init_args: {{num_samples: 8, every_n_epochs: 1{loss}}}
"""
VOLUME = """
- class_path: lightning_landscape.VolumeMonitor
  init_args:
    {{num_inputs: 6, num_init_samples: 16, num_samples: 64, curvature: {curvature}, every_n_epochs: 1{loss}}}
"""
CRITERION = "{class_path: torch.nn.CrossEntropyLoss, init_args: {label_smoothing: 0.2}}"

# row: model, data, trainer overrides, loss_fn (YAML flow text or None), volume curvature, reference
ROWS = {
    "regression_dict_batches": (
        "user_modules.RegressionModule",
        {"dict_batches": True},
        "user_modules.RegressionData",
        {"dict_batches": True},
        {},
        None,
        None,
    ),
    "regression_n_by_1_outputs": (
        "user_modules.RegressionModule",
        {},
        "user_modules.RegressionData",
        {},
        {},
        None,
        None,
    ),
    "cnn_label_smoothing_in_step": (
        "user_modules.SmallCNN",
        {"label_smoothing": 0.2},
        "user_modules.ImageData",
        {},
        {},
        None,
        "hessian",
    ),
    "cnn_criterion_from_yaml": (
        "user_modules.SmallCNN",
        {},
        "user_modules.ImageData",
        {},
        {},
        CRITERION,
        "hessian",
    ),
    "frozen_backbone": (
        "user_modules.SmallCNN",
        {"freeze_backbone": True},
        "user_modules.ImageData",
        {},
        {},
        None,
        "ggn",
    ),
    "lstm_language_model_tied": (
        "user_modules.LSTMLanguageModel",
        {},
        "user_modules.TokenData",
        {},
        {},
        None,
        None,
    ),
    "transformer_language_model": (
        "user_modules.TransformerLanguageModel",
        {},
        "user_modules.TokenData",
        {},
        {},
        None,
        None,
    ),
    "preprocessing_in_on_after_batch_transfer": (
        "user_modules.StandardizingRegression",
        {},
        "user_modules.RegressionData",
        {"offset": 50.0},
        {},
        None,
        None,
    ),
    "iterable_dataset_without_len": (
        "user_modules.SmallCNN",
        {},
        "user_modules.StreamData",
        {},
        {},
        None,
        "ggn",
    ),
    "accumulate_grad_batches_2": (
        "user_modules.SmallCNN",
        {},
        "user_modules.ImageData",
        {},
        {"accumulate_grad_batches": 2},
        None,
        "ggn",
    ),
}


def config(tmp_path, row: str, *, watched: bool) -> str:
    model, model_args, data, data_args, trainer_args, loss, curvature = ROWS[row]
    callbacks = "[]"
    if watched:
        loss_text = "" if loss is None else f", loss_fn: {loss}"
        loss_line = "" if loss is None else f"\n    loss_fn: {loss}"
        callbacks = MONITORS.format(loss=loss_text, loss_line=loss_line)
        if curvature is not None:
            callbacks += VOLUME.format(curvature=curvature, loss=loss_text)
        callbacks = textwrap.indent(callbacks, "    ")
    trainer = {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": 2,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "deterministic": True,
        "default_root_dir": str(tmp_path),
        **trainer_args,
    }
    text = yaml.safe_dump(
        {
            "seed_everything": 7,
            "trainer": trainer,
            "model": {"class_path": model, "init_args": model_args},
            "data": {"class_path": data, "init_args": data_args},
        }
    )
    text = text.replace("trainer:\n", f"trainer:\n  callbacks:{callbacks if watched else ' []'}\n", 1)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def run_cli(path: str) -> LightningCLI:
    return LightningCLI(args=["fit", "--config", path], save_config_callback=None)


def reference_batches(row: str):
    """The evaluation subset, built independently: all 64 samples in data-set order."""
    if row.startswith("regression") or row.startswith("preprocessing"):
        data = RegressionData(
            dict_batches=row == "regression_dict_batches", offset=50.0 * row.startswith("pre")
        )
        dataset = data.dataset()
        if row == "regression_dict_batches":
            return [{"features": dataset.features, "target": dataset.target}]
        return [dataset.tensors]
    if "language" in row:
        return [(TokenData().tokens(),)]
    return [ImageData.tensors()]


@pytest.mark.parametrize("row", list(ROWS))
def test_monitors_measure_the_modules_own_loss_and_leave_training_alone(tmp_path, row):
    plain_cli = run_cli(config(tmp_path / "plain", row, watched=False))
    plain = plain_cli.model
    cli = run_cli(config(tmp_path / "watched", row, watched=True))
    watched, monitors = cli.model, {type(c).__name__: c for c in cli.trainer.callbacks}

    for name, tensor in plain.state_dict().items():  # the final weights are bit-identical
        assert torch.equal(tensor, watched.state_dict()[name]), name
    # what the module logs itself (a torchmetrics accuracy updated in training_step) is untouched
    for name, value in plain_cli.trainer.callback_metrics.items():
        assert torch.equal(value, cli.trainer.callback_metrics[name]), name

    smoothing = 0.2 if ROWS[row][5] == CRITERION else None
    reference = (
        (lambda batch: watched.reference_loss(batch, label_smoothing=smoothing))
        if smoothing is not None
        else watched.reference_loss
    )
    expected = expected_grid_loss(reference_batches(row), reference)
    landscape = monitors["LossLandscapeMonitor"].last_result
    assert landscape.center_loss == pytest.approx(expected, rel=1e-5)
    assert monitors["SharpnessMonitor"].last_values["center_loss"] == pytest.approx(expected, rel=1e-5)
    trajectory = monitors["TrajectoryMonitor"].last_result
    assert float(trajectory.snapshot_loss[-1]) == pytest.approx(expected, rel=1e-5)
    assert torch.isfinite(torch.tensor(monitors["SharpnessMonitor"].last_values["top_eigenvalue"]))
    noise = monitors["NoiseScaleMonitor"].last_values
    assert noise["noise_scale/b_simple"] > 0
    if "SmallCNN" in ROWS[row][0] and smoothing is None:  # the step's dict's "acc" is the accuracy
        assert landscape.accuracy is not None and 0.0 <= landscape.center_accuracy <= 1.0
        # the dict's other scalars are logged beside the centre loss
        x, y = reference_batches(row)[0]
        with torch.no_grad():
            logits = watched.eval()(x)
        margin = (logits.gather(1, y.unsqueeze(1)) - logits.gather(1, 1 - y.unsqueeze(1))).mean()
        assert float(cli.trainer.callback_metrics["landscape/center_margin"]) == pytest.approx(
            float(margin), rel=1e-4
        )
    if row == "accumulate_grad_batches_2":  # B = 16 per batch × 2 accumulated, N = 64, momentum 0.9
        assert noise["noise_scale/g/group_0"] == pytest.approx(0.05 * (64 / 32 - 1) / (1 - 0.9))
    if row == "iterable_dataset_without_len":  # N counted over the first epoch
        assert noise["noise_scale/g/group_0"] == pytest.approx(0.05 * (64 / 16 - 1) / (1 - 0.9))
    if "VolumeMonitor" in monitors:
        values = monitors["VolumeMonitor"].last_values
        assert set(values) >= {"volume/log_prior", "volume/log_evidence"}
    for name in ("landscape/center_loss", "sharpness/top_eigenvalue"):  # logged at epoch end
        assert name in cli.trainer.callback_metrics


@pytest.mark.parametrize(
    ("loss_fn", "smoothing"),
    [
        ("user_modules.smoothed_cross_entropy", 0.1),  # a function without a return annotation
        ("compute_loss", 0.0),  # a method of the module
        ("cross_entropy", 0.0),  # the fused path, with accuracy
    ],
)
def test_loss_fn_forms_from_yaml(tmp_path, loss_fn, smoothing):
    path = config(tmp_path, "cnn_criterion_from_yaml", watched=False)
    text = (
        open(path)
        .read()
        .replace(
            "callbacks: []",
            "callbacks:\n  - class_path: lightning_landscape.LossLandscapeMonitor\n    init_args: "
            f"{{dims: 1, num_points: 3, num_samples: 64, progress_bar: false, loss_fn: {loss_fn}}}",
        )
    )
    open(path, "w").write(text)
    cli = run_cli(path)
    monitor = cli.trainer.callbacks[0]
    expected = expected_grid_loss(reference_batches("cnn"), lambda b: cli.model.reference_loss(b, smoothing))
    assert monitor.last_result.center_loss == pytest.approx(expected, rel=1e-5)
    assert (monitor.last_result.accuracy is not None) == (loss_fn == "cross_entropy")


def test_the_subset_can_come_from_the_validation_loader(tmp_path):
    from lightning.pytorch import Trainer
    from problems import trainer_kwargs
    from user_modules import SmallCNN

    from lightning_landscape import LossLandscapeMonitor

    class Validated(SmallCNN):
        def validation_step(self, batch, batch_idx):
            self.log("val_loss", self.compute_loss(batch))

    monitor = LossLandscapeMonitor(dims=1, num_points=3, num_samples=64, data="val", progress_bar=False)
    trainer = Trainer(callbacks=[monitor], **trainer_kwargs(tmp_path, max_epochs=1, num_sanity_val_steps=0))
    model = Validated()
    trainer.fit(model, datamodule=ImageData(with_val=True))
    x, y = ImageData.tensors(seed=2, n=32)  # the validation set, all 32 samples
    assert monitor.last_result.num_samples == 32
    assert monitor.last_result.center_loss == pytest.approx(float(model.reference_loss((x, y))), rel=1e-5)
