"""TrajectoryMonitor in real Trainer runs: bit identity, resume, spilling, TensorBoard."""

import glob
import os

import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from problems import (
    GlobalRNG,
    LitClassifier,
    assert_same_training_end,
    fit_classifier,
    training_end,
)
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_landscape import TrajectoryMonitor, TrajectoryResult

SMALL = dict(num_points=5, num_samples=48, eval_batch_size=16)


def _fit(tmp_path, callbacks, **kwargs):
    return fit_classifier(tmp_path, callbacks, seed=7, **kwargs)


def _same_snapshots(a: TrajectoryMonitor, b: TrajectoryMonitor) -> None:
    assert a.snapshots.epochs == b.snapshots.epochs and a.snapshots.steps == b.snapshots.steps
    for i in range(len(a.snapshots)):
        for name, tensor in a.snapshots[i].items():
            assert torch.equal(tensor, b.snapshots[i][name]), (i, name)


def _same_figure_data(a: TrajectoryResult, b: TrajectoryResult) -> None:
    for x, y in [
        (a.pca.coords, b.pca.coords),
        (a.pca.explained_variance_ratio, b.pca.explained_variance_ratio),
        (a.landscape.loss, b.landscape.loss),
        (a.snapshot_loss, b.snapshot_loss),
        (a.plane_loss, b.plane_loss),
        *zip(a.landscape.coords, b.landscape.coords),
    ]:
        assert torch.equal(x, y)


def test_training_ends_bit_identical_with_and_without_the_monitor(tmp_path):
    _, plain = _fit(tmp_path / "plain", [])
    rng_plain = GlobalRNG.capture()
    plain_end = training_end(plain)
    monitor = TrajectoryMonitor(plot_every_n_epochs=2, log_histograms=True, **SMALL)
    logger = TensorBoardLogger(str(tmp_path / "watched"), name="run")
    _, watched = _fit(tmp_path / "watched", [monitor], logger=logger)
    assert monitor.snapshots.epochs == [0, 1, 2, 3] and len(monitor.saved_files) == 2
    assert_same_training_end(plain_end, training_end(watched))  # parameters, BN statistics, optimizer
    assert rng_plain.equals(GlobalRNG.capture())


def test_resumed_run_draws_the_same_path(tmp_path):
    def model():
        return LitClassifier(dropout=0.0)  # no dropout: training itself is deterministic on resume

    whole = TrajectoryMonitor(**SMALL)
    _fit(tmp_path / "whole", [whole], model=model(), shuffle=False, max_epochs=4)

    first = TrajectoryMonitor(**SMALL)
    trainer, _ = _fit(tmp_path / "part", [first], model=model(), shuffle=False, max_epochs=2)
    checkpoint = str(tmp_path / "part" / "after-epoch-2.ckpt")
    trainer.save_checkpoint(checkpoint)
    resumed = TrajectoryMonitor(**SMALL)
    _fit(tmp_path / "part", [resumed], model=model(), ckpt_path=checkpoint, shuffle=False, max_epochs=4)

    assert resumed.snapshots.epochs == [0, 1, 2, 3, 4]
    _same_snapshots(whole, resumed)
    _same_figure_data(whole.last_result, resumed.last_result)


def test_spilled_snapshots_give_the_same_result_and_never_live_on_the_model_device(tmp_path):
    roomy = TrajectoryMonitor(**SMALL)
    _fit(tmp_path / "roomy", [roomy], max_epochs=3)
    tight = TrajectoryMonitor(snapshot_memory_mb=0.001, **SMALL)  # ~1 KB: below one snapshot
    logger = TensorBoardLogger(str(tmp_path / "tight"), name="run")
    _fit(tmp_path / "tight", [tight], logger=logger, max_epochs=3)
    spilled = tight.snapshots.spilled_files
    assert len(spilled) == 4 and tight.snapshots.bytes_in_memory == 0
    assert all(path.startswith(os.path.join(logger.log_dir, "trajectory")) for path in spilled)
    _same_snapshots(roomy, tight)
    _same_figure_data(roomy.last_result, tight.last_result)
    for i in range(len(roomy.snapshots)):
        assert all(t.device.type == "cpu" for t in roomy.snapshots[i].values())
    params = {p.data_ptr() for p in roomy.snapshots[0].values()}
    assert not params & {p.data_ptr() for p in LitClassifier().parameters()}


def test_figure_histograms_scalars_and_file_reach_tensorboard(tmp_path):
    monitor = TrajectoryMonitor(log_histograms=True, **SMALL)
    logger = TensorBoardLogger(str(tmp_path), name="tb")
    _fit(tmp_path, [monitor], logger=logger, max_epochs=3)
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0, "histograms": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert "trajectory/pca_plane" in tags["images"]
    assert "trajectory/weights/net.0.weight" in tags["histograms"]
    assert len(events.Histograms("trajectory/weights/net.0.weight")) == 4  # init + 3 epochs
    for name in ("explained_variance_pc1", "explained_variance_pc2", "max_residual", "max_plane_loss_gap"):
        assert f"trajectory/{name}" in tags["scalars"]
    files = glob.glob(os.path.join(logger.log_dir, "trajectory", "trajectory-*.npz"))
    assert len(files) == 1
    loaded = TrajectoryResult.load(files[0])
    _same_figure_data(loaded, monitor.last_result)
    assert loaded.epochs == (0, 1, 2, 3)
    # the plane is honest about the snapshots: their true losses are what a plain evaluation gives
    assert float(loaded.snapshot_loss[-1]) == pytest.approx(float(loaded.plane_loss[-1]), rel=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"every_n_epochs": 0}, "every_n_epochs"),
        ({"plot_every_n_epochs": 0}, "plot_every_n_epochs"),
        ({"num_points": 1}, "num_points"),
        ({"margin": -1.0}, "margin"),
        ({"snapshot_dtype": "float64"}, "snapshot_dtype"),
        ({"snapshot_memory_mb": 0}, "snapshot_memory_mb"),
        ({"tag": ""}, "tag"),
    ],
)
def test_invalid_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        TrajectoryMonitor(**kwargs)


def test_a_run_resumed_from_another_working_directory_finds_its_spilled_snapshots(tmp_path, monkeypatch):
    def model():
        return LitClassifier(dropout=0.0)

    (tmp_path / "first").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "first")  # a relative save_dir, as in the README's configs
    first = TrajectoryMonitor(snapshot_memory_mb=0.001, **SMALL)
    logger = TensorBoardLogger("runs", name="tb")
    trainer, _ = _fit(tmp_path / "first", [first], model=model(), logger=logger, shuffle=False, max_epochs=2)
    assert len(first.snapshots.spilled_files) == 3
    checkpoint = str(tmp_path / "after-epoch-2.ckpt")
    trainer.save_checkpoint(checkpoint)

    monkeypatch.chdir(tmp_path / "elsewhere")
    resumed = TrajectoryMonitor(snapshot_memory_mb=0.001, **SMALL)
    logger = TensorBoardLogger("runs", name="tb")
    _fit(tmp_path / "elsewhere", [resumed], model=model(), logger=logger, ckpt_path=checkpoint, max_epochs=3)
    assert resumed.snapshots.epochs == [0, 1, 2, 3] and resumed.last_result is not None


def test_snapshots_that_are_truly_gone_are_reported_at_resume_time(tmp_path):
    first = TrajectoryMonitor(snapshot_memory_mb=0.001, **SMALL)
    trainer, _ = _fit(tmp_path, [first], max_epochs=2)
    state = first.state_dict()
    os.remove(first.snapshots.spilled_files[1])
    resumed = TrajectoryMonitor(snapshot_memory_mb=0.001, **SMALL)
    with pytest.warns(
        RuntimeWarning, match=r"1 spilled weight snapshot file\(s\) of the trajectory are gone"
    ):
        resumed.load_state_dict(state)
    assert resumed.snapshots.epochs == [0, 2]
    with pytest.raises(ValueError, match="`dtype` must be 'float32' or 'float16'"):
        resumed.snapshots.load_state_dict({**state["snapshots"], "dtype": "manual_seed"})
