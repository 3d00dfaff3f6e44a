"""``NoiseScaleMonitor``: the SGD noise scale (Smith & Le) and the gradient noise scale (McCandlish)."""

from __future__ import annotations

import lightning.pytorch as pl

from .._checks import check_bool
from ..core.evaluation import LossFn
from ..core.noise import gradient_noise_scale, sgd_noise_scale
from ..reporting import log_scalars
from ._base import EpochMonitor, _first_loader

__all__ = ["NoiseScaleMonitor"]


class NoiseScaleMonitor(EpochMonitor):
    """Log the SGD noise scale of every optimizer param group and the measured gradient noise scale.

    - ``{tag}/g/group_<i>``: Smith & Le's ``g = ε (N/B − 1) / (1 − m)`` with the group's current
      learning rate ε, the training-set size N, the global batch size B (loader batch size × world
      size) and the group's SGD ``momentum`` m (0 for optimizers without one).
    - ``{tag}/b_simple``, ``{tag}/trace_covariance``, ``{tag}/gradient_norm_sq``: McCandlish et al.'s
      ``B_simple = tr Σ / |G|²`` from exact per-sample gradients on a fixed subset of
      ``num_samples`` training samples (``measure_gradient_noise=True``).

    Example:
        >>> from lightning.pytorch import Trainer
        >>> trainer = Trainer(callbacks=[NoiseScaleMonitor(every_n_epochs=2)], logger=False,
        ...                   enable_progress_bar=False, enable_model_summary=False)
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        measure_gradient_noise: bool = True,
        num_samples: int = 256,
        eval_batch_size: int = 256,
        seed: int = 0,
        at_train_end: bool = False,
        loss_fn: LossFn | None = None,
        tag: str = "noise_scale",
    ) -> None:
        super().__init__(
            every_n_epochs=every_n_epochs,
            at_train_end=at_train_end,
            num_samples=num_samples,
            eval_batch_size=eval_batch_size,
            seed=seed,
            loss_fn=loss_fn,
            log_scale=False,
            save_results=False,
            progress_bar=False,
            tag=tag,
        )
        self.measure_gradient_noise = check_bool("measure_gradient_noise", measure_gradient_noise)
        self.last_values: dict[str, float] = {}

    def compute(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        loader = _first_loader(trainer.train_dataloader)
        size = len(loader.dataset)
        batch = (loader.batch_size or 1) * trainer.world_size
        values = {}
        for i, optimizer in enumerate(trainer.optimizers):
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
                pl_module, self.evaluation_batches(trainer, pl_module), loss_fn=self.loss_fn
            )
            values[f"{self.tag}/b_simple"] = noise.b_simple
            values[f"{self.tag}/trace_covariance"] = noise.trace_covariance
            values[f"{self.tag}/gradient_norm_sq"] = noise.gradient_norm_sq
        return values

    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        with self.sharded(trainer):
            self.last_values = self.compute(trainer, pl_module)
        self.mark_run(trainer)
        if trainer.is_global_zero:
            log_scalars(trainer, self.last_values, trainer.global_step)
