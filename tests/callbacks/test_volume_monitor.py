"""VolumeMonitor in a Trainer run on a binary problem."""

import math

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule, Trainer, seed_everything
from lightning.pytorch.loggers import TensorBoardLogger
from problems import assert_same_training_end, training_end
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_landscape import VolumeMonitor, function_volume, log_evidence


class BinaryNet(LightningModule):
    """A ReLU net with one output; it saves its hyperparameters, so VolumeMonitor can rebuild it."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 2))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        return F.cross_entropy(self(batch[0]), batch[1])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)


def loader():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(96, 4, generator=g)
    return DataLoader(TensorDataset(x, (x[:, 0] + x[:, 1] > 0).long()), batch_size=16, shuffle=True)


def fit(tmp_path, callbacks, logger=False):
    seed_everything(0)
    model = BinaryNet()
    trainer = Trainer(
        default_root_dir=str(tmp_path),
        max_epochs=2,
        logger=logger,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        deterministic=True,
    )
    trainer.fit(model, loader())
    return trainer, model


def test_logs_log_prior_and_log_evidence_and_leaves_training_alone(tmp_path):
    _, plain = fit(tmp_path / "plain", [])
    monitor = VolumeMonitor(
        num_inputs=12, num_init_samples=200, num_samples=64, prior_precision=50.0, every_n_epochs=1
    )
    logger = TensorBoardLogger(str(tmp_path), name="tb")
    trainer, watched = fit(tmp_path / "watched", [monitor], logger=logger)
    assert_same_training_end(training_end(plain), training_end(watched))

    events = EventAccumulator(logger.log_dir, size_guidance={"scalars": 0})
    events.Reload()
    prior = events.Scalars("volume/log_prior")
    evidence = events.Scalars("volume/log_evidence")
    # at the step of Lightning's epoch-end metrics (one less than the global step)
    assert [e.step for e in prior] == [5, 11] and [e.step for e in evidence] == [5, 11]
    assert "volume/log_evidence_ratio" in events.Tags()["scalars"]

    # the last values are those of the public functions on the monitor's inputs and subset
    inputs = monitor.function_inputs(trainer, watched)
    expected = function_volume(lambda: BinaryNet(), inputs, model=watched, num_init_samples=200)
    assert monitor.last_values["volume/log_prior"] == pytest.approx(expected.log_probability, rel=1e-9)
    assert prior[-1].value == pytest.approx(expected.log_probability, rel=1e-6)
    batches = monitor.evaluation_batches(trainer, watched)
    assert sum(len(b[0]) for b in batches) == 64
    direct = log_evidence(watched, batches, prior_precision=50.0, curvature="ggn")
    assert monitor.last_values["volume/log_evidence"] == pytest.approx(direct.log_evidence, rel=1e-9)
    assert math.isfinite(direct.log_evidence) and direct.num_nonpositive == 0
    assert math.isfinite(expected.log_probability) and expected.log_probability < 0


def test_a_module_without_hyperparameters_needs_a_factory(tmp_path):
    class Plain(BinaryNet):
        def __init__(self) -> None:
            LightningModule.__init__(self)
            self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    trainer = Trainer(
        logger=False, max_epochs=1, callbacks=[VolumeMonitor(num_inputs=4, num_init_samples=10)]
    )
    with pytest.raises(ValueError, match="VolumeMonitor needs `model_factory`"):
        trainer.fit(Plain(), loader())


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_inputs": 0}, "num_inputs"),
        ({"method": "exact"}, "method"),
        ({"prior_precision": -1.0}, "prior_precision"),
        ({"evidence_method": "dense"}, "evidence_method"),
        ({"num_inputs": 100, "num_init_samples": 50}, "num_init_samples"),
        ({"curvature": "fisher"}, "curvature"),
        ({"loss_fn": lambda m, b: m(b[0]).sum()}, "curvature='ggn'"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        VolumeMonitor(**kwargs)
