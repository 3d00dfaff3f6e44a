"""SharpnessMonitor(per_layer=..., per_batch=True) in a real Trainer run (issue 19, items 1 and 4)."""

import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from problems import assert_same_training_end, fit_classifier, training_end
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_landscape import (
    SharpnessMonitor,
    SharpnessReport,
    blockwise,
    hessian_eigenvalues,
    hessian_eigenvalues_per_batch,
    hessian_trace,
)

QUICK = {
    "num_samples": 48,
    "eval_batch_size": 16,
    "every_n_epochs": 1,
    "measure_kwargs": {"trace": {"num_probes": 6}},
}


def test_per_layer_and_per_batch_curvature_are_logged_and_training_is_untouched(tmp_path):
    _, plain = fit_classifier(tmp_path / "plain", [], seed=11)
    monitor = SharpnessMonitor(measures=["top_eigenvalue", "trace"], per_layer=True, per_batch=True, **QUICK)
    logger = TensorBoardLogger(str(tmp_path / "watched"), name="tb")
    _, watched = fit_classifier(tmp_path / "watched", [monitor], seed=11, logger=logger)
    assert_same_training_end(training_end(plain), training_end(watched))
    report = SharpnessReport.load(monitor.saved_files[-1])
    blocks = report.per_layer["top_eigenvalue"].blocks
    assert blocks and all(
        f"per_layer/top_eigenvalue/{b}" in report.values and f"per_layer/trace/{b}" in report.values
        for b in blocks
    )
    assert report.per_batch.eigenvalues.shape == (3, 1)  # 48 samples in batches of 16
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    images, scalars = set(events.Tags()["images"]), set(events.Tags()["scalars"])
    assert {"sharpness/per_layer", "sharpness/per_batch_top_eigenvalue"} <= images
    assert {f"sharpness/per_layer/top_eigenvalue/{b}" for b in blocks} <= scalars
    assert {"sharpness/per_batch_top_eigenvalue/median", "sharpness/per_batch_top_eigenvalue/max"} <= scalars


def test_per_layer_values_equal_the_core_functions_on_the_same_batches():
    from problems import mlp, vector_batches

    model, batches = mlp(), vector_batches()
    monitor = SharpnessMonitor(
        measures=["top_eigenvalue", "trace"], per_layer={"first": ["0.*"], "rest": ["2.*"]}
    )
    monitor.loss_function = lambda module: None
    parts = {}
    monitor._per_layer(model, batches, None, parts)
    top = blockwise(hessian_eigenvalues, model, batches, blocks={"first": ["0.*"], "rest": ["2.*"]})
    trace = blockwise(hessian_trace, model, batches, blocks={"first": ["0.*"], "rest": ["2.*"]})
    values = SharpnessReport({}, {}, per_layer=parts["per_layer"]).scalars()
    assert list(parts["per_layer"]["top_eigenvalue"].blocks) == ["first", "rest"]
    for block in ("first", "rest"):
        assert values[f"per_layer/top_eigenvalue/{block}"] == float(top[block].eigenvalues[0])
        assert values[f"per_layer/trace/{block}"] == trace[block].estimate


def test_per_layer_is_checked_when_the_monitor_is_built():
    with pytest.raises(ValueError, match="`per_layer` gives 'top_eigenvalue' and 'trace' per block"):
        SharpnessMonitor(measures=["keskar"], per_layer=True)
    with pytest.raises(ValueError, match="`per_layer` must be 'module', 'parameter' or a non-empty mapping"):
        SharpnessMonitor(per_layer="layers")
    with pytest.raises(TypeError, match="`per_batch` must be True or False"):
        SharpnessMonitor(per_batch=1)


def test_on_a_users_dict_batch_regression_the_views_give_its_own_loss_curvature(tmp_path):
    """A regression module whose loss lives in training_step, on dict batches: per layer, per batch
    and the Hessian plane measure that loss (the explicit ``dict_mse`` gives the same numbers)."""
    from lightning.pytorch import Trainer, seed_everything
    from user_modules import RegressionData, RegressionModule, dict_mse

    from lightning_landscape import LossLandscapeMonitor, compute_landscape

    seed_everything(0)
    module = RegressionModule(dict_batches=True)
    views = SharpnessMonitor(measures=["top_eigenvalue", "trace"], per_layer=True, per_batch=True, **QUICK)
    plane = LossLandscapeMonitor(
        every_n_epochs=1, directions="hessian", num_points=3, num_samples=48, eval_batch_size=16
    )
    trainer = Trainer(
        max_epochs=1,
        callbacks=[views, plane],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(module, RegressionData(dict_batches=True))
    batches = views.evaluation_batches(trainer, module)
    per_layer = blockwise(hessian_eigenvalues, module, batches, loss_fn=dict_mse, blocks="module")
    per_batch = hessian_eigenvalues_per_batch(module, batches, loss_fn=dict_mse)
    values = views.last_values
    for block, result in per_layer.results.items():
        assert values[f"per_layer/top_eigenvalue/{block}"] == pytest.approx(
            float(result.eigenvalues[0]), rel=1e-5
        )
    assert values["per_batch_top_eigenvalue/max"] == pytest.approx(
        float(per_batch.eigenvalues.max()), rel=1e-5
    )
    expected = compute_landscape(module, batches, loss_fn=dict_mse, directions="hessian", num_points=3)
    torch.testing.assert_close(plane.last_result.loss, expected.loss, rtol=1e-5, atol=1e-7)
