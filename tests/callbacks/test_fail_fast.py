"""Every setup that cannot work fails before the first training step, naming the argument."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from problems import trainer_kwargs
from torch import nn
from user_modules import ImageData, ManualOptimization, RegressionData, RegressionModule, SmallCNN

from lightning_landscape import (
    LossLandscapeMonitor,
    NoiseScaleMonitor,
    SharpnessMonitor,
    TrajectoryMonitor,
    VolumeMonitor,
)

QUICK = dict(num_samples=16, eval_batch_size=8, progress_bar=False)


class CountSteps(Callback):
    def __init__(self) -> None:
        self.steps = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.steps += 1


class NoHparams(SmallCNN):
    def __init__(self) -> None:
        super().__init__()
        self._hparams = type(self.hparams)()  # as if save_hyperparameters() had never been called


def _fit(tmp_path, model, data, monitor, **overrides):
    spy = CountSteps()
    trainer = Trainer(callbacks=[monitor, spy], **trainer_kwargs(tmp_path, max_epochs=1, **overrides))
    try:
        trainer.fit(model, datamodule=data)
    finally:
        assert spy.steps == 0, "the error came after training had started"


def _vector_loss(model, batch):
    return model(batch[0]).flatten()


def _constant_loss(model, batch):
    return torch.tensor(1.0)


def _nan_loss(model, batch):
    return model(batch[0]).sum() * float("nan")


def _wrong_architecture():
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 3))


CASES = {
    "cross_entropy_on_regression_outputs": (
        RegressionModule,
        RegressionData,
        LossLandscapeMonitor,
        {"loss_fn": "cross_entropy"},
        r"`loss_fn` \(cross_entropy\).*needs outputs of shape \(N, C\) with C >= 2 and integer labels",
    ),
    "cross_entropy_on_dict_batches": (
        lambda: RegressionModule(dict_batches=True),
        lambda: RegressionData(dict_batches=True),
        SharpnessMonitor,
        {"loss_fn": "cross_entropy"},
        r"`loss_fn` \(cross_entropy\).*\(x, y, \.\.\.\)",
    ),
    "criterion_on_dict_batches": (
        lambda: RegressionModule(dict_batches=True),
        lambda: RegressionData(dict_batches=True),
        TrajectoryMonitor,
        {"loss_fn": nn.MSELoss()},
        r"`loss_fn` \(MSELoss\).*\(x, y, \.\.\.\)",
    ),
    "own_loss_of_manual_optimization": (
        ManualOptimization,
        ImageData,
        LossLandscapeMonitor,
        {},
        r"`loss_fn=None`.*manual optimization",
    ),
    "method_the_module_lacks": (
        SmallCNN,
        ImageData,
        NoiseScaleMonitor,
        {"loss_fn": "compute_los"},
        r"`loss_fn` 'compute_los'",
    ),
    "loss_that_is_not_a_scalar": (
        SmallCNN,
        ImageData,
        LossLandscapeMonitor,
        {"loss_fn": _vector_loss},
        r"`loss_fn`.*scalar tensor",
    ),
    "loss_that_ignores_the_weights": (
        SmallCNN,
        ImageData,
        LossLandscapeMonitor,
        {"loss_fn": _constant_loss},
        r"`loss_fn`.*does not depend",
    ),
    "loss_that_is_nan": (SmallCNN, ImageData, SharpnessMonitor, {"loss_fn": _nan_loss}, r"`loss_fn`.*finite"),
    "method_computed_without_gradients": (
        SmallCNN,
        ImageData,
        TrajectoryMonitor,
        {"loss_fn": "reference_loss"},
        r"`loss_fn` \(reference_loss\).*does not depend",
    ),
    "validation_data_without_a_loader": (
        SmallCNN,
        ImageData,
        LossLandscapeMonitor,
        {"data": "val"},
        r"data='val'.*no val_dataloader",
    ),
    "ggn_evidence_of_a_smoothed_loss": (
        lambda: SmallCNN(label_smoothing=0.2),
        ImageData,
        VolumeMonitor,
        {"num_inputs": 4, "num_init_samples": 8},
        r"curvature='ggn'.*`loss_fn='cross_entropy'`",
    ),
    "volume_factory_of_another_architecture": (
        SmallCNN,
        ImageData,
        VolumeMonitor,
        {"num_inputs": 4, "num_init_samples": 8, "model_factory": _wrong_architecture},
        r"`model_factory` builds a network with outputs of shape \(2, 3\)",
    ),
    "volume_of_a_module_without_hyperparameters": (
        NoHparams,
        ImageData,
        VolumeMonitor,
        {"num_inputs": 4, "num_init_samples": 8},
        r"needs `model_factory`",
    ),
    "volume_on_dict_batches": (
        lambda: RegressionModule(dict_batches=True),
        lambda: RegressionData(dict_batches=True),
        VolumeMonitor,
        {"num_inputs": 4, "num_init_samples": 8, "curvature": "hessian"},
        r"VolumeMonitor measures the function",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fails_before_the_first_training_step(tmp_path, case):
    model, data, monitor_class, kwargs, match = CASES[case]
    options = {**(QUICK if monitor_class is not NoiseScaleMonitor else {"num_samples": 16}), **kwargs}
    if monitor_class is VolumeMonitor:
        options.pop("progress_bar", None)
        options.pop("eval_batch_size", None)
    with pytest.raises(ValueError, match=match):
        _fit(tmp_path, model(), data(), monitor_class(**options))


def test_exact_gauss_newton_trace_needs_the_fused_cross_entropy_at_construction():
    with pytest.raises(ValueError, match=r"`measure_kwargs\['trace'\]\['method'\]` 'exact_ggn'.*`loss_fn"):
        SharpnessMonitor(measure_kwargs={"trace": {"method": "exact_ggn"}})
    SharpnessMonitor(measure_kwargs={"trace": {"method": "exact_ggn"}}, loss_fn="cross_entropy")


# ---------------------------------------------------------------- values refused at construction
@pytest.mark.parametrize(
    ("monitor", "kwargs", "match"),
    [
        (
            SharpnessMonitor,
            {"measure_kwargs": {"keskar": {"epsilon": -1}}},
            r"`measure_kwargs\['keskar'\]`: `epsilon`",
        ),
        (
            SharpnessMonitor,
            {"measures": ["basin_volume"], "measure_kwargs": {"basin_volume": {"num_scan": 0}}},
            r"`num_scan`",
        ),
        (
            SharpnessMonitor,
            {"measure_kwargs": {"top_eigenvalue": {"max_iter": 0}}},
            r"`max_iter`",
        ),
        (SharpnessMonitor, {"measure_kwargs": {"top_eigenvalue": {"params": []}}}, r"`params`"),
        (
            SharpnessMonitor,
            {"measure_kwargs": {"trace": {"num_probes": 2}}},
            r"`num_probes` must be an integer >= 3",
        ),
        (SharpnessMonitor, {"seed": 2**64}, r"`seed`"),
        (SharpnessMonitor, {"tag": "x" * 300}, r"`tag`"),
        (SharpnessMonitor, {"tag": "a\x00b"}, r"`tag`"),
        (
            LossLandscapeMonitor,
            {"points_memory_mb": 1e308, "points_per_forward": "auto"},
            r"`points_memory_mb`",
        ),
        (LossLandscapeMonitor, {"span": (-1e308, 1e308)}, r"`span`"),
        (TrajectoryMonitor, {"margin": 1e308}, r"`margin`"),
        (SharpnessMonitor, {"measure_kwargs": {"keskar": {"epsilon": 10**400}}}, r"`epsilon`.*401-digit"),
    ],
)
def test_bad_values_are_refused_at_construction(monitor, kwargs, match):
    with pytest.raises(ValueError, match=match):
        monitor(**kwargs)


def test_unknown_parameter_names_fail_at_setup(tmp_path):
    monitor = SharpnessMonitor(measure_kwargs={"top_eigenvalue": {"params": ["nope.*"]}}, **QUICK)
    with pytest.raises(
        ValueError, match=r"`measure_kwargs\['top_eigenvalue'\]\['params'\]` pattern 'nope\.\*' matches no"
    ):
        _fit(tmp_path, SmallCNN(), ImageData(), monitor)


def test_a_span_the_weights_cannot_hold_fails_at_setup(tmp_path):
    monitor = LossLandscapeMonitor(span=(-1e39, 1e39), **QUICK)  # beyond float32
    with pytest.raises(ValueError, match=r"`span` .* beyond the largest value of the model's dtype"):
        _fit(tmp_path, SmallCNN(), ImageData(), monitor)
