"""``NoiseScaleMonitor``: the SGD noise scale (Smith & Le) and the gradient noise scale (McCandlish)."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from typing_extensions import override

from .._checks import check_bool
from ..core.base.batches import batch_size
from ..core.measures.noise import gradient_noise_scale, sgd_noise_scale
from ._base import EpochMonitor

__all__ = ["NoiseScaleMonitor"]


class NoiseScaleMonitor(EpochMonitor):
    """Log the SGD noise scale of every optimizer param group and the measured gradient noise scale.

    - ``{tag}/g/group_<i>``: Smith & Le's ``g = ε (N/B − 1) / (1 − m)`` with the group's current
      learning rate ε, the training-set size N, the effective batch size
      ``B = batch size × accumulate_grad_batches × world size`` (the samples behind one optimizer
      step) and the group's SGD ``momentum`` m (0 for optimizers without one). N is the length of
      the training data set; for one without a length (an ``IterableDataset``) it is the number of
      training samples counted over the first epoch, and ``g`` is logged from the end of that epoch.
    - ``{tag}/b_simple``, ``{tag}/trace_covariance``, ``{tag}/gradient_norm_sq``: McCandlish et al.'s
      ``B_simple = tr Σ / |G|²`` from exact per-sample gradients of the loss (by default the
      module's own ``training_step`` on single-sample slices of each batch; ``"cross_entropy"`` is
      vectorized and much faster) on a fixed subset of ``num_samples`` training samples
      (``measure_gradient_noise=True``).

    It runs at epoch ends as the other monitors do (``every_n_epochs``, or by default within the
    trainers' monitor ``budget``: see :mod:`lightning_landscape.callbacks._base`); without
    ``measure_gradient_noise`` it costs nothing and runs every epoch.

    Args:
        measure_gradient_noise: also measure ``B_simple`` from per-sample gradients (else only
            Smith & Le's ``g``, which costs nothing).
        num_samples: training samples whose per-sample gradients give ``B_simple`` (at least 2).
        at_train_end: also run when training ends.
        **kwargs: the options every monitor shares, declared once in
            :class:`~lightning_landscape.callbacks._base.EpochMonitor`: ``every_n_epochs``,
            ``budget``, ``eval_batch_size``, ``seed``, ``loss_fn``, ``data``, ``tag``.

    Example:
        >>> from lightning.pytorch import Trainer
        >>> trainer = Trainer(callbacks=[NoiseScaleMonitor(every_n_epochs=2)], logger=False,
        ...                   enable_progress_bar=False, enable_model_summary=False)
    """

    DEFAULT_TAG = "noise_scale"

    def __init__(
        self,
        measure_gradient_noise: bool = True,
        *,
        num_samples: int = 256,
        at_train_end: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            num_samples=num_samples,
            at_train_end=at_train_end,
            **kwargs,
        )
        self.measure_gradient_noise = check_bool("measure_gradient_noise", measure_gradient_noise)
        if self.measure_gradient_noise and num_samples < 2:
            raise ValueError(
                f"`num_samples` must be at least 2 to estimate the variance of per-sample gradients "
                f"(B_simple), got {num_samples}; or set measure_gradient_noise=False."
            )
        self._counted = 0  # training samples seen on this process during the first epoch
        self._dataset_size: int | None = None

    def cost_units(self) -> float:
        """Free without per-sample gradients (never skipped); else about three forward passes."""
        return 3.0 if self.measure_gradient_noise else 0.0

    @property
    def uses_loss(self) -> bool:
        return self.measure_gradient_noise

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._dataset_size is None and trainer.current_epoch == 0:
            self._counted += batch_size(batch)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._dataset_size is None and trainer.current_epoch == 0:
            self._dataset_size = self.dataset_size(trainer)
        super().on_train_epoch_end(trainer, pl_module)

    def dataset_size(self, trainer: pl.Trainer) -> int:
        """N: the training data set's length, else the samples counted over the first epoch."""
        dataset: Any = getattr(self.loader(trainer), "dataset", None)
        try:
            return len(dataset)
        except TypeError:
            return self._counted * trainer.world_size

    def effective_batch_size(self, trainer: pl.Trainer) -> int:
        """B: the samples behind one optimizer step, over every process and accumulated batch."""
        loader = self.loader(trainer)
        return (
            (getattr(loader, "batch_size", None) or 1) * trainer.accumulate_grad_batches * trainer.world_size
        )

    @override
    def compute(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        values = {}
        size = self._dataset_size if self._dataset_size is not None else self.dataset_size(trainer)
        batch = self.effective_batch_size(trainer)
        for i, optimizer in enumerate(trainer.optimizers if size >= 1 else []):
            for j, group in enumerate(optimizer.param_groups):
                name = (
                    f"{self.tag}/g/group_{j}"
                    if len(trainer.optimizers) == 1
                    else f"{self.tag}/g/opt_{i}_group_{j}"
                )
                values[name] = sgd_noise_scale(
                    group["lr"], size, min(batch, size), float(group.get("momentum", 0.0) or 0.0)
                )
        if self.measure_gradient_noise:
            noise = gradient_noise_scale(
                pl_module, self.evaluation_batches(trainer, pl_module), loss_fn=self.loss_function(pl_module)
            )
            values[f"{self.tag}/b_simple"] = noise.b_simple
            values[f"{self.tag}/trace_covariance"] = noise.trace_covariance
            values[f"{self.tag}/gradient_norm_sq"] = noise.gradient_norm_sq
        return values

    @property
    def last_values(self) -> dict[str, float]:
        """The last run's tagged values (empty before the first run)."""
        return self.last_result or {}

    @property
    @override
    def state_key(self) -> str:
        own = {"every_n_epochs": self.every_n_epochs, "measure_gradient_noise": self.measure_gradient_noise}
        return self._generate_state_key(tag=self.tag, **own)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "dataset_size": self._dataset_size}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._dataset_size = state_dict.get("dataset_size")
