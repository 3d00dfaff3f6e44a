"""SharpnessMonitor in real Trainer runs, and curvature from a validation hook."""

import math

import pytest
import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.loggers import TensorBoardLogger
from problems import (
    GlobalRNG,
    LitClassifier,
    assert_same_training_end,
    fit_classifier,
    image_loader,
    trainer_kwargs,
    training_end,
)
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_landscape import SharpnessMonitor, hessian_eigenvalues, sharpness

QUICK = {
    "measure_kwargs": {
        "basin_volume": {"num_probes": 3, "num_scan": 5, "num_bisect": 5},
        "average": {"num_probes": 3},
        "keskar": {"num_ascent_steps": 3},
        "adaptive_worst": {"num_ascent_steps": 3},
        "trace": {"num_probes": 6},
    },
    "num_samples": 48,
    "eval_batch_size": 16,
    "every_n_epochs": 1,
}
EVERYTHING = [
    "top_eigenvalue",
    "trace",
    "keskar",
    "adaptive_worst",
    "average",
    "filter_normalized_eigenvalue",
    "basin_volume",
]


def _fit(tmp_path, callbacks, **kwargs):
    return fit_classifier(tmp_path, callbacks, seed=11, **kwargs)


def test_training_ends_bit_identical_with_every_measure_running(tmp_path):
    _, plain = _fit(tmp_path / "plain", [])
    rng_plain = GlobalRNG.capture()
    plain_end = training_end(plain)
    monitor = SharpnessMonitor(
        measures=EVERYTHING,
        density=True,
        density_steps=5,
        eigenvalue_ratio_map=True,
        ratio_map_points=2,
        **QUICK,
    )
    logger = TensorBoardLogger(str(tmp_path / "watched"), name="run")
    _, watched = _fit(tmp_path / "watched", [monitor], logger=logger)
    assert set(EVERYTHING) <= set(monitor.last_values)
    assert_same_training_end(plain_end, training_end(watched))  # parameters, BN statistics, optimizer
    assert rng_plain.equals(GlobalRNG.capture())
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in watched.parameters())
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    images = set(events.Tags()["images"])
    assert {"sharpness/hessian_density", "sharpness/basin_radii", "sharpness/eigenvalue_ratio_map"} <= images
    scalars = set(events.Tags()["scalars"])
    assert {f"sharpness/{m}" for m in EVERYTHING} | {"sharpness/trace_stderr"} <= scalars
    logged = events.Scalars("sharpness/top_eigenvalue")[-1].value
    assert logged == pytest.approx(monitor.last_values["top_eigenvalue"], rel=1e-6)
    assert len(monitor.saved_files) == 3


class ValidationCurvature(LitClassifier):
    """Computes curvature inside a validation step: under no_grad during fit, under inference
    mode in ``trainer.validate``."""

    def __init__(self):
        super().__init__()
        self.contexts = []

    def validation_step(self, batch, batch_idx):
        if batch_idx == 0:
            self.contexts.append((torch.is_inference_mode_enabled(), torch.is_grad_enabled()))
            self.top = float(hessian_eigenvalues(self, [batch], k=1).eigenvalues[0])
            self.keskar = sharpness(self, [batch], measure="keskar", num_ascent_steps=3).value


def test_curvature_works_from_validation_hooks(tmp_path):
    seed_everything(11)
    model = ValidationCurvature()
    trainer = Trainer(**trainer_kwargs(tmp_path, max_epochs=1, num_sanity_val_steps=0))
    trainer.fit(model, image_loader(), val_dataloaders=image_loader(shuffle=False))
    trainer.validate(model, image_loader(shuffle=False), verbose=False)
    assert model.contexts == [(False, False), (True, False)]  # fit: no_grad; validate: inference mode
    assert math.isfinite(model.top) and model.keskar >= 0
    batch = next(iter(image_loader(shuffle=False)))
    assert model.top == pytest.approx(
        float(hessian_eigenvalues(model, [batch], k=1).eigenvalues[0]), rel=1e-4
    )


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"measures": ["volume"]}, "measures"),
        ({"measures": "keskar"}, "measures"),
        ({"measure_kwargs": {"average": {"rho": 0.1}}}, "measure_kwargs"),
        ({"measure_kwargs": {"keskar": {"epsilonn": 1.0}}}, "measure_kwargs"),
        ({"ratio_map_points": 1}, "ratio_map_points"),
        ({"every_n_epochs": 0}, "every_n_epochs"),
    ],
)
def test_invalid_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}"):
        SharpnessMonitor(**kwargs)


# ---------------------------------------------------------------- values where Lightning users look
def test_model_checkpoint_picks_the_flattest_epoch_from_callback_metrics_and_csv(tmp_path):
    import csv

    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    monitor = SharpnessMonitor(
        measures=["top_eigenvalue"], num_samples=48, eval_batch_size=16, every_n_epochs=1
    )
    checkpoint = ModelCheckpoint(
        dirpath=str(tmp_path / "ckpt"),
        monitor="sharpness/top_eigenvalue",
        mode="min",
        save_top_k=1,
        filename="{epoch}",
    )
    logger = CSVLogger(str(tmp_path), name="csv")
    trainer, _ = _fit(tmp_path, [monitor, checkpoint], logger=logger, enable_checkpointing=True, max_epochs=4)
    assert trainer.callback_metrics["sharpness/top_eigenvalue"] == pytest.approx(
        monitor.last_values["top_eigenvalue"]
    )
    logger.finalize("success")
    with open(f"{logger.log_dir}/metrics.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("sharpness/top_eigenvalue")]
    # one value per epoch, at the step of Lightning's epoch-end metrics (6 steps per epoch)
    assert [int(r["step"]) for r in rows] == [5, 11, 17, 23]
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    values = [float(r["sharpness/top_eigenvalue"]) for r in rows]
    best = min(range(4), key=values.__getitem__)
    assert checkpoint.best_model_path.endswith(f"epoch={best}.ckpt")
    assert float(checkpoint.best_model_score) == pytest.approx(values[best], rel=1e-6)


def test_early_stopping_reads_a_monitor_value(tmp_path):
    from lightning.pytorch.callbacks import EarlyStopping

    monitor = SharpnessMonitor(
        measures=["keskar"],
        measure_kwargs={"keskar": {"num_ascent_steps": 2}},
        num_samples=16,
        every_n_epochs=1,
    )
    stop = EarlyStopping(monitor="sharpness/center_loss", mode="min", stopping_threshold=1e9)
    trainer, _ = _fit(tmp_path, [monitor, stop], max_epochs=5)
    assert trainer.current_epoch == 1 and trainer.should_stop  # stopped after the first epoch


def test_result_files_are_self_describing_records_that_load_and_redraw(tmp_path):
    from lightning_landscape import SharpnessReport
    from lightning_landscape.cli import run as cli

    monitor = SharpnessMonitor(
        measures=["top_eigenvalue", "basin_volume"],
        density=True,
        density_steps=5,
        eigenvalue_ratio_map=True,
        ratio_map_points=2,
        measure_kwargs={"basin_volume": QUICK["measure_kwargs"]["basin_volume"]},
        num_samples=48,
        eval_batch_size=16,
        every_n_epochs=1,
    )
    trainer, _ = _fit(tmp_path, [monitor], max_epochs=1)
    report = SharpnessReport.load(monitor.saved_files[-1])
    assert report.values == pytest.approx(monitor.last_values)
    assert report.epoch == 0 and report.global_step == trainer.global_step  # as the landscape files
    assert report.settings["seed"] == 0 and report.settings["num_samples"] == 48
    assert report.settings["measures"] == ["top_eigenvalue", "basin_volume"]
    assert report.density.num_steps == 5 and report.ratio_map.lambda_max.shape == (2, 2)
    assert report.measures["basin_volume"].radii.numel() == 3  # the typed results, as computed
    assert torch.equal(report.density.quadrature.nodes, monitor.last_result.density.quadrature.nodes)
    written = cli(["plot", "--result", monitor.saved_files[-1], "--output_dir", str(tmp_path / "figures")])
    names = sorted(p.rsplit("-", 1)[-1] for p in written)
    assert names == ["basin_radii.png", "eigenvalue_ratio_map.png", "hessian_density.png"]
    with pytest.raises(ValueError, match="`kind` 'contour' does not fit this SharpnessReport"):
        cli(["plot", "--result", monitor.saved_files[-1], "--kind", "contour", "--output_dir", str(tmp_path)])
