"""LossLandscapeMonitor in real Trainer runs."""

import glob
import os
import warnings

import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from problems import (
    GlobalRNG,
    assert_same_training_end,
    fit_classifier,
    training_end,
)
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util.tensor_util import make_ndarray as tf_make_ndarray

from lightning_landscape import LandscapeResult, LossLandscapeMonitor

SMALL = dict(num_points=5, num_samples=48, eval_batch_size=16)


def _fit(tmp_path, callbacks, **kwargs):
    return fit_classifier(tmp_path, callbacks, seed=123, **kwargs)


def _events(log_dir):
    accumulator = EventAccumulator(log_dir, size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


# ---------------------------------------------------------------- acceptance 4: bit identity
def test_training_ends_bit_identical_with_and_without_the_monitor(tmp_path):
    _, plain = _fit(tmp_path / "plain", [])
    rng_plain = GlobalRNG.capture()
    plain_end = training_end(plain)
    monitor = LossLandscapeMonitor(every_n_epochs=1, dims=2, span=(-2.0, 2.0), **SMALL)
    logger = TensorBoardLogger(str(tmp_path / "watched"), name="run")
    _, watched = _fit(tmp_path / "watched", [monitor], logger=logger)
    rng_watched = GlobalRNG.capture()
    assert len(monitor.saved_files) == 3  # it really ran every epoch (train end: same step, skipped)
    assert_same_training_end(plain_end, training_end(watched))  # parameters, BN statistics, optimizer
    assert rng_plain.equals(rng_watched)


# ---------------------------------------------------------------- acceptance 5 (unit level)
def test_logs_figures_scalars_and_result_files_to_tensorboard(tmp_path):
    monitor = LossLandscapeMonitor(every_n_epochs=2, dims=2, loss_fn="cross_entropy", **SMALL)  # + accuracy
    line = LossLandscapeMonitor(every_n_epochs=2, dims=1, tag="line", **SMALL)  # the module's own loss
    logger = TensorBoardLogger(str(tmp_path), name="tb")
    trainer, model = _fit(tmp_path, [monitor, line], logger=logger, max_epochs=3)
    events = _events(logger.log_dir)
    images = events.Tags()["images"]
    assert {"landscape/2d/contour", "landscape/2d/contour_filled", "landscape/2d/surface_3d"} <= set(images)
    assert "line/1d/curve" in images
    # the surface as a mesh: vertices (one per grid point), faces (two per cell), colours
    tensors = set(events.Tags()["tensors"])
    assert {"landscape/2d/mesh_VERTEX", "landscape/2d/mesh_FACE", "landscape/2d/mesh_COLOR"} <= tensors
    vertices = tf_make_ndarray(events.Tensors("landscape/2d/mesh_VERTEX")[-1].tensor_proto)
    faces = tf_make_ndarray(events.Tensors("landscape/2d/mesh_FACE")[-1].tensor_proto)
    assert vertices.shape == (1, 25, 3) and faces.shape == (1, 32, 3)
    assert not any(t.startswith("line/") and t.endswith("_VERTEX") for t in tensors)
    # epoch 1 (every 2nd) and train end (global step 18): two images per tag, at the step of
    # Lightning's own epoch-end metrics (the global step less one)
    assert [e.step for e in events.Images("landscape/2d/contour")] == [11, 17]
    assert [e.step for e in events.Scalars("landscape/center_loss")] == [11, 17]
    # Lightning's own, beside ours: every monitor logs its overhead at every epoch end
    assert [e.step for e in events.Scalars("epoch")] == [5, 11, 17]
    assert [e.step for e in events.Scalars("landscape/overhead")][:3] == [5, 11, 17]
    scalars = events.Tags()["scalars"]
    for name in ("center_loss", "max_loss_rise", "num_nonfinite", "center_accuracy"):
        assert f"landscape/{name}" in scalars
    files = sorted(glob.glob(os.path.join(logger.log_dir, "landscapes", "landscape-*.npz")))
    assert [os.path.basename(f) for f in files] == [
        "landscape-epoch=001-step=000012.npz",
        "landscape-epoch=002-step=000018.npz",  # the last epoch's index, as Lightning's checkpoints name it
    ]
    loaded = LandscapeResult.load(files[-1])
    assert loaded == monitor.last_result
    assert loaded.num_samples == 48 and loaded.epoch == 2 and loaded.global_step == 18
    logged = events.Scalars("landscape/center_loss")[-1].value
    assert logged == pytest.approx(loaded.center_loss, rel=1e-6)


def test_monitor_result_matches_compute_landscape_on_the_same_subset(tmp_path):
    from lightning_landscape import compute_landscape

    monitor = LossLandscapeMonitor(every_n_epochs=1, dims=1, **SMALL)
    trainer, model = _fit(tmp_path, [monitor], max_epochs=1)
    batches = monitor.evaluation_batches(trainer, model)
    again = compute_landscape(model, batches, dims=1, num_points=5, loss_fn=monitor.loss_function(model))
    torch.testing.assert_close(again.loss, monitor.last_result.loss, rtol=0, atol=0)


def test_batched_monitor_matches_the_sequential_one(tmp_path):
    sequential = LossLandscapeMonitor(every_n_epochs=1, **SMALL)
    grouped = LossLandscapeMonitor(every_n_epochs=1, points_per_forward="auto", tag="batched", **SMALL)
    _fit(tmp_path, [sequential, grouped], max_epochs=1)
    torch.testing.assert_close(grouped.last_result.loss, sequential.last_result.loss, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- acceptance 8: divergence
def test_diverging_grid_is_drawn_and_training_continues(tmp_path):
    monitor = LossLandscapeMonitor(every_n_epochs=1, dims=2, span=(-1e38, 1e38), **SMALL)
    logger = TensorBoardLogger(str(tmp_path), name="tb")
    trainer, _ = _fit(tmp_path, [monitor], logger=logger, max_epochs=2)
    assert trainer.current_epoch == 2 and not trainer.interrupted
    assert monitor.last_result.num_nonfinite > 0
    events = _events(logger.log_dir)
    assert len(events.Images("landscape/2d/contour")) == 2
    assert events.Scalars("landscape/num_nonfinite")[-1].value > 0


# ---------------------------------------------------------------- acceptance 7: arguments
@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_points": 1}, "num_points"),
        ({"span": (1, -1)}, "span"),
        ({"normalization": "foo"}, "normalization"),
        ({"dims": 3}, "dims"),
        ({"every_n_epochs": 0}, "every_n_epochs"),
        ({"num_samples": 0}, "num_samples"),
        ({"eval_batch_size": 0}, "eval_batch_size"),
        ({"seed": -3}, "seed"),
        ({"tag": "a/b"}, "tag"),
        ({"points_per_forward": 0}, "points_per_forward"),
        ({"points_memory_mb": 0}, "points_memory_mb"),
        ({"autocast": "int8"}, "autocast"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        LossLandscapeMonitor(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"every_n_epochs": 1.5}, "every_n_epochs"),
        ({"log_scale": "yes"}, "log_scale"),
        ({"loss_fn": 3}, "loss_fn"),
        ({"compile": "yes"}, "compile"),
    ],
)
def test_wrong_types_raise_type_error_naming_the_argument(kwargs, name):
    with pytest.raises(TypeError, match=f"`{name}`"):
        LossLandscapeMonitor(**kwargs)


# ---------------------------------------------------------------- loggers without figures
def test_without_logger_pngs_are_saved_and_a_warning_given_once(tmp_path):
    monitor = LossLandscapeMonitor(every_n_epochs=1, dims=1, **SMALL)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _fit(tmp_path, [monitor], max_epochs=2)
    messages = [str(w.message) for w in caught if "no logger takes figures" in str(w.message)]
    assert len(messages) == 1
    folder = os.path.join(tmp_path, "landscape_logs", "version_0", "landscapes")  # a fresh folder
    pngs = sorted(glob.glob(os.path.join(folder, "*.png")))
    assert len(pngs) == 2 and all(os.path.getsize(p) > 1000 for p in pngs)
    assert len(glob.glob(os.path.join(folder, "*.npz"))) == 2  # results beside them
    # a second run without a logger never overwrites the first one's files
    second = LossLandscapeMonitor(every_n_epochs=1, dims=1, **SMALL)
    _fit(tmp_path, [second], max_epochs=1)
    assert all("version_1" in f for f in second.saved_files)
    assert len(glob.glob(os.path.join(folder, "*.npz"))) == 2


def test_csv_logger_gets_scalars_and_pngs_fall_back(tmp_path):
    monitor = LossLandscapeMonitor(every_n_epochs=1, dims=1, **SMALL)
    logger = CSVLogger(str(tmp_path), name="csv")
    with pytest.warns(UserWarning, match="no logger takes figures"):
        _fit(tmp_path, [monitor], logger=logger, max_epochs=1)
    logger.finalize("success")
    text = open(os.path.join(logger.log_dir, "metrics.csv")).read()
    assert "landscape/center_loss" in text
    assert glob.glob(os.path.join(logger.log_dir, "landscapes", "*.png"))  # in the version folder
    assert glob.glob(os.path.join(logger.log_dir, "landscapes", "*.npz"))


# ---------------------------------------------------------------- scheduling and state
def test_train_end_runs_once_more_only_when_needed(tmp_path):
    every3 = LossLandscapeMonitor(every_n_epochs=3, dims=1, tag="every3", **SMALL)
    never_at_end = LossLandscapeMonitor(every_n_epochs=3, dims=1, tag="no_end", at_train_end=False, **SMALL)
    every2 = LossLandscapeMonitor(every_n_epochs=2, dims=1, tag="every2", **SMALL)
    _fit(tmp_path, [every3, never_at_end, every2], max_epochs=4)
    steps = lambda m: [int(f.split("step=")[1][:6]) for f in m.saved_files]  # noqa: E731
    assert steps(every3) == [18, 24]  # epoch 3, then train end
    assert steps(never_at_end) == [18]
    assert steps(every2) == [12, 24]  # epoch 2 and epoch 4 = train end: no duplicate


def test_fast_dev_run_computes_nothing(tmp_path):
    monitor = LossLandscapeMonitor(every_n_epochs=1, dims=1, **SMALL)
    _fit(tmp_path, [monitor], fast_dev_run=True)
    assert monitor.last_result is None and monitor.saved_files == []


def test_state_dict_is_checkpointed_and_restored(tmp_path):
    monitor = LossLandscapeMonitor(every_n_epochs=1, dims=1, **SMALL)
    trainer, _ = _fit(tmp_path, [monitor], max_epochs=2)
    path = str(tmp_path / "last.ckpt")
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=False)
    state = checkpoint["callbacks"][monitor.state_key]
    assert state["last_step"] == 12 and len(state["saved_files"]) == 2
    resumed = LossLandscapeMonitor(every_n_epochs=1, dims=1, **SMALL)
    resumed.load_state_dict(state)
    assert resumed.saved_files == monitor.saved_files and resumed._last_step == 12


def test_two_monitors_need_distinct_state_keys():
    a = LossLandscapeMonitor(dims=1)
    b = LossLandscapeMonitor(dims=2)
    c = LossLandscapeMonitor(dims=2, tag="other")
    assert len({a.state_key, b.state_key, c.state_key}) == 3


def test_sharded_strategies_are_refused_in_setup():
    class FakeFSDPStrategy:
        pass

    class FakeTrainer:
        strategy = FakeFSDPStrategy()

    with pytest.raises(ValueError, match="FSDP"):
        LossLandscapeMonitor().setup(FakeTrainer(), None, "fit")


def test_custom_loss_function_and_no_accuracy(tmp_path):
    import torch.nn.functional as F

    def mse_to_one_hot(model, batch):
        x, y = batch
        return F.mse_loss(model(x).softmax(-1), F.one_hot(y, 5).float())

    monitor = LossLandscapeMonitor(every_n_epochs=1, dims=1, loss_fn=mse_to_one_hot, **SMALL)
    _fit(tmp_path, [monitor], max_epochs=1)
    assert monitor.last_result.accuracy is None
    assert monitor.last_result.loss_name.endswith("mse_to_one_hot")
    assert np.isfinite(monitor.last_result.center_loss)
