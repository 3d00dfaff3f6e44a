"""A diverging run (weights × 1e30 from epoch 1) with every monitor and every measure trains to the
end; the monitors record NaN/inf as values and count them, and never stop training."""

from __future__ import annotations

import math

import torch
from lightning.pytorch import Callback, Trainer, seed_everything
from lightning.pytorch.loggers import TensorBoardLogger
from problems import trainer_kwargs
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from user_modules import ImageData, SmallCNN

from lightning_landscape import (
    LossLandscapeMonitor,
    NoiseScaleMonitor,
    SharpnessMonitor,
    TrajectoryMonitor,
    VolumeMonitor,
)
from lightning_landscape.core.measures.registry import measure_names


class Explode(Callback):
    """Multiplies every weight by 1e30 at the end of every epoch (before the monitors run): from the
    second epoch on the float32 weights are infinite."""

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        with torch.no_grad():
            for p in pl_module.parameters():
                p.mul_(1e30)


def test_a_diverging_run_trains_to_the_end_and_the_nan_is_logged_and_counted(tmp_path):
    seed_everything(0)
    quick = dict(num_samples=32, eval_batch_size=16, every_n_epochs=1)
    monitors = [
        LossLandscapeMonitor(dims=2, num_points=3, progress_bar=False, **quick),
        SharpnessMonitor(
            measures=list(measure_names()),
            measure_kwargs={
                "keskar": {"num_ascent_steps": 2},
                "adaptive_worst": {"num_ascent_steps": 2},
                "average": {"num_probes": 2},
                "trace": {"num_probes": 6},
                "basin_volume": {"num_probes": 2, "num_scan": 3, "num_bisect": 2},
            },
            density=True,
            density_steps=4,
            eigenvalue_ratio_map=True,
            ratio_map_points=2,
            progress_bar=False,
            **quick,
        ),
        TrajectoryMonitor(num_points=3, progress_bar=False, **quick),
        NoiseScaleMonitor(num_samples=8, every_n_epochs=1),
        VolumeMonitor(
            num_inputs=4, num_init_samples=8, num_samples=32, curvature="hessian", every_n_epochs=1
        ),
    ]
    logger = TensorBoardLogger(str(tmp_path), name="tb")
    trainer = Trainer(
        callbacks=[Explode(), *monitors], **trainer_kwargs(tmp_path, max_epochs=3, logger=logger)
    )
    trainer.fit(SmallCNN(), datamodule=ImageData())
    assert trainer.current_epoch == 3 and not trainer.interrupted  # trained to the end
    events = EventAccumulator(logger.log_dir, size_guidance={"scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    for tag in ("landscape", "sharpness", "trajectory", "noise_scale", "volume"):
        assert f"{tag}/num_nonfinite" in scalars, tag
        assert events.Scalars(f"{tag}/num_nonfinite")[-1].value > 0, tag
    assert math.isnan(events.Scalars("sharpness/top_eigenvalue")[-1].value)
    assert not math.isfinite(events.Scalars("landscape/center_loss")[-1].value)
