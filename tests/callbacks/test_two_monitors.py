"""Two monitors of one kind in one Trainer (issue 25, item 2): with their own tags and different
settings each keeps its own files and values and the run ends FINISHED; a tag given twice is
refused at setup, before the first training step; a resumed run still reproduces the
uninterrupted one."""

from __future__ import annotations

import os

import pytest
import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.trainer.states import TrainerStatus
from problems import LitClassifier, fit_classifier

from lightning_landscape import (
    LandscapeResult,
    LossLandscapeMonitor,
    NoiseScaleMonitor,
    SharpnessMonitor,
    SharpnessReport,
    TrajectoryMonitor,
    TrajectoryResult,
    VolumeMonitor,
)

SMALL = dict(num_samples=32, eval_batch_size=16)


def _pairs():
    """Per kind: two monitors with their own tags and different settings."""
    return {
        "LossLandscapeMonitor": (
            LossLandscapeMonitor(every_n_epochs=1, dims=2, num_points=3, **SMALL),
            LossLandscapeMonitor(every_n_epochs=1, dims=1, num_points=5, tag="landscape_1d", **SMALL),
        ),
        "TrajectoryMonitor": (  # both spill every snapshot to files
            TrajectoryMonitor(num_points=3, snapshot_memory_mb=1e-6, **SMALL),
            TrajectoryMonitor(
                num_points=3,
                snapshot_memory_mb=1e-6,
                snapshot_dtype="float16",
                params="net.5.*",
                tag="trajectory_head",
                **SMALL,
            ),
        ),
        "SharpnessMonitor": (
            SharpnessMonitor(every_n_epochs=1, measures=["top_eigenvalue"], **SMALL),
            SharpnessMonitor(every_n_epochs=1, measures=["keskar"], tag="sharpness_keskar", **SMALL),
        ),
        "NoiseScaleMonitor": (
            NoiseScaleMonitor(every_n_epochs=1, **SMALL),
            NoiseScaleMonitor(every_n_epochs=1, measure_gradient_noise=False, tag="noise_g", **SMALL),
        ),
        "VolumeMonitor": (
            VolumeMonitor(every_n_epochs=1, num_inputs=8, num_init_samples=50, method="monte_carlo", **SMALL),
            VolumeMonitor(every_n_epochs=1, num_inputs=8, prior_precision=2.0, tag="volume_b", **SMALL),
        ),
    }


@pytest.mark.parametrize("kind", sorted(_pairs()))
def test_two_monitors_of_a_kind_keep_their_own_files_and_values(kind, tmp_path):
    first, second = _pairs()[kind]
    model = LitClassifier() if kind != "VolumeMonitor" else _BinaryClassifier()
    trainer, _ = fit_classifier(tmp_path, [first, second], seed=0, model=model, max_epochs=2)
    assert trainer.state.status == TrainerStatus.FINISHED
    assert first.last_result is not None and second.last_result is not None
    logged = set(trainer.callback_metrics)
    for monitor in (first, second):
        assert any(name.startswith(f"{monitor.tag}/") for name in logged), (monitor.tag, logged)
        assert all(os.path.basename(path).startswith(f"{monitor.tag}-") for path in monitor.saved_files)
    assert not set(first.saved_files) & set(second.saved_files)
    if kind == "LossLandscapeMonitor":
        assert [LandscapeResult.load(p).dims for p in first.saved_files] == [2, 2]
        assert [LandscapeResult.load(p).dims for p in second.saved_files] == [1, 1]
    if kind == "SharpnessMonitor":
        assert set(SharpnessReport.load(first.saved_files[-1]).values) >= {"top_eigenvalue"}
        assert "keskar" in SharpnessReport.load(second.saved_files[-1]).values
    if kind == "TrajectoryMonitor":
        spilled = [set(m.snapshots.spilled_files) for m in (first, second)]
        assert all(len(files) == 3 for files in spilled) and not spilled[0] & spilled[1]
        assert {os.path.basename(os.path.dirname(f)) for f in spilled[1]} == {
            "trajectory_head-snapshots-rank0"
        }
        assert all(t.dtype == torch.float16 for t in second.snapshots[0].values())
        assert set(second.snapshots[0]) == {"net.5.weight", "net.5.bias"}
        (whole,), (head,) = ([TrajectoryResult.load(p) for p in m.saved_files] for m in (first, second))
        assert set(head.pca.directions[0]) == {"net.5.weight", "net.5.bias"}
        assert len(whole.pca.directions[0]) > 2


@pytest.mark.parametrize("kind", sorted(_pairs()))
def test_a_tag_given_twice_is_refused_at_setup(kind, tmp_path):
    first, second = _pairs()[kind]
    second.tag = first.tag  # the same tag, other settings
    model = LitClassifier() if kind != "VolumeMonitor" else _BinaryClassifier()
    with pytest.raises(ValueError, match=f"`tag` '{first.tag}' is given to two monitors"):
        fit_classifier(tmp_path, [first, second], seed=0, model=model, max_epochs=1)
    assert model.trainer.global_step == 0  # refused before the first training step


def test_identical_twins_are_refused_by_lightning_when_the_trainer_is_made(tmp_path):
    """Two monitors alike in every setting share a checkpoint key, which Lightning refuses."""
    with pytest.raises(RuntimeError, match="state_key` must be unique"):
        fit_classifier(tmp_path, [NoiseScaleMonitor(), NoiseScaleMonitor()], seed=0, max_epochs=1)


def test_a_tag_is_one_namespace_across_kinds(tmp_path):
    monitors = [LossLandscapeMonitor(tag="curvature", **SMALL), SharpnessMonitor(tag="curvature", **SMALL)]
    with pytest.raises(ValueError, match="LossLandscapeMonitor and SharpnessMonitor"):
        fit_classifier(tmp_path, monitors, seed=0, max_epochs=1)


def test_two_trajectory_monitors_resumed_draw_the_paths_of_the_uninterrupted_run(tmp_path):
    def monitors():
        return _pairs()["TrajectoryMonitor"]

    def model():
        return LitClassifier(dropout=0.0)  # no dropout: training itself is deterministic on resume

    whole = monitors()
    fit_classifier(tmp_path / "whole", list(whole), seed=7, model=model(), shuffle=False, max_epochs=4)
    part = monitors()
    trainer, _ = fit_classifier(
        tmp_path / "part", list(part), seed=7, model=model(), shuffle=False, max_epochs=2
    )
    checkpoint = str(tmp_path / "part" / "after-epoch-2.ckpt")
    trainer.save_checkpoint(checkpoint)
    resumed = monitors()
    trainer, _ = fit_classifier(
        tmp_path / "part",
        list(resumed),
        seed=7,
        model=model(),
        ckpt_path=checkpoint,
        shuffle=False,
        max_epochs=4,
    )
    assert trainer.state.status == TrainerStatus.FINISHED
    for a, b in zip(whole, resumed):
        assert b.snapshots.epochs == [0, 1, 2, 3, 4]
        for i in range(len(a.snapshots)):
            for name, tensor in a.snapshots[i].items():
                assert torch.equal(tensor, b.snapshots[i][name]), (a.tag, i, name)
        torch.testing.assert_close(a.last_result.landscape.loss, b.last_result.landscape.loss, rtol=0, atol=0)
        torch.testing.assert_close(a.last_result.pca.coords, b.last_result.pca.coords, rtol=0, atol=0)


class _BinaryClassifier(LightningModule):
    """Two classes (VolumeMonitor measures binary functions), folded from the five of the random
    images by a batch hook; it saves its hyperparameters, so the monitor can draw networks at
    initialization (unseeded: a new one at each call)."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(16, width), torch.nn.ReLU(), torch.nn.Linear(width, 2)
        )

    def forward(self, x):
        return self.net(x)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        x, y = batch
        return x, y % 2

    def training_step(self, batch, batch_idx):
        return torch.nn.functional.cross_entropy(self(batch[0]), batch[1])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)
