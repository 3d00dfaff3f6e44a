"""Scheduling and data plumbing shared by the monitors.

A monitor runs at the end of every ``every_n_epochs``-th training epoch and, with
``at_train_end=True``, once more when training ends (unless it already ran at that step). It never
runs during the sanity check or under ``fast_dev_run``. Its evaluation subset is drawn once from the
training (or validation) data set (see :func:`lightning_landscape.core.evaluation.evaluation_subset`),
passed through the module's and datamodule's batch hooks as training batches are, and kept on the
module's device.

The loss is the module's own by default (``loss_fn=None``: ``training_step``); the other forms are
those of :mod:`lightning_landscape.user_module`. At ``setup`` the form is resolved against the
module, and when training starts the loss is evaluated once on one evaluation batch (nothing of
the module or the random streams changes), so that a loss or a batch that cannot work fails
before the first training step, with an error naming ``loss_fn``.

Scalars go through ``pl_module.log`` at the end of an epoch (so they reach every logger, at the
step of Lightning's own epoch-end metrics, and ``trainer.callback_metrics``, where
``ModelCheckpoint`` and ``EarlyStopping`` find them); a run at the end of training, where
``self.log`` is not allowed, logs them straight to the loggers at that same step. Figures and files
go to the logger's version folder, or without a logger to a fresh
``<default_root_dir>/lightning_landscape/version_N``.

Under DDP every process holds a disjoint shard of that subset and the sums over samples go through
``trainer.strategy.reduce`` (see :meth:`EpochMonitor.sharded`), so every process computes the
single-process numbers; the decisions to run depend only on the epoch and step, which all processes
share, and figures and files are made on global rank zero only.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader

from .._checks import check_bool, check_choice, check_int, check_seed, check_tag
from ..core.distributed import guarded_sum, sharded
from ..core.evaluation import LossFn, evaluation_subset
from ..core.hessian import check_loss_fn
from ..reporting import log_figures, log_scalars, logging_step, prepare_output_dir
from ..user_module import LossSpec, batch_transfer, check_loss_spec, move_criterion, resolve_loss_fn

_UNSUPPORTED_STRATEGIES = ("FSDP", "DeepSpeed", "ModelParallel", "XLA")


class EpochMonitor(Callback):
    """Base class: decides when to run and captures the fixed evaluation subset.

    Args:
        every_n_epochs: run after every ``every_n_epochs``-th training epoch.
        at_train_end: also run when training ends, if the last run was at an earlier step.
        num_samples: size of the evaluation subset drawn from the training data.
        eval_batch_size: batch size used to evaluate that subset.
        seed: seed for the subset and any random directions.
        loss_fn: ``None`` (the module's own ``training_step`` loss), ``"cross_entropy"`` (fused
            cross-entropy and accuracy on ``(x, y)`` batches of class logits), a method name, a
            function ``loss_fn(model, batch)`` or its dotted path, or a loss module
            ``criterion(outputs, targets)``.
        data: draw the evaluation subset from the ``"train"`` or the ``"val"`` loader.
        log_scale: draw log10 of the loss.
        save_results: write result files beside the logs.
        progress_bar: show a progress bar while computing.
        tag: prefix of the logged tags and file names.
    """

    def __init__(
        self,
        *,
        every_n_epochs: int,
        at_train_end: bool,
        num_samples: int,
        eval_batch_size: int,
        seed: int,
        loss_fn: LossSpec,
        log_scale: bool,
        save_results: bool,
        progress_bar: bool,
        tag: str,
        data: Literal["train", "val"] = "train",
    ) -> None:
        super().__init__()
        self.every_n_epochs = check_int("every_n_epochs", every_n_epochs, minimum=1)
        self.at_train_end = check_bool("at_train_end", at_train_end)
        self.num_samples = check_int("num_samples", num_samples, minimum=1)
        self.eval_batch_size = check_int("eval_batch_size", eval_batch_size, minimum=1)
        self.seed = check_seed("seed", seed)
        self.loss_fn = check_loss_spec("loss_fn", loss_fn)
        self.data = check_choice("data", data, ("train", "val"))
        self.log_scale = check_bool("log_scale", log_scale)
        self.save_results = check_bool("save_results", save_results)
        self.progress_bar = check_bool("progress_bar", progress_bar)
        self.tag = check_tag("tag", tag)
        self.saved_files: list[str] = []
        self._last_step: int | None = None
        self._warned_no_figure_logger = False
        self._batches: list[Any] | None = None
        self._batches_device: torch.device | None = None
        self._loss: LossFn | None = None
        self._resolved = False
        self._hook: str | None = None

    @property
    def uses_loss(self) -> bool:
        """Whether this monitor evaluates the loss (checked when training starts)."""
        return True

    # ------------------------------------------------------------------ trainer checks
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        name = type(trainer.strategy).__name__
        if any(key in name for key in _UNSUPPORTED_STRATEGIES):
            raise ValueError(
                f"{type(self).__name__} does not support the sharded strategy {name}: it needs "
                "every parameter in full on each process. Supported: single device, DDP "
                "('ddp', 'ddp_spawn', 'ddp_find_unused_parameters_true')."
            )
        if self.uses_loss:
            self._resolved = False
            self.loss_function(pl_module)
        if self.save_results:  # a monitor that writes no file makes no folder
            prepare_output_dir(trainer)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Fail fast: evaluate the loss once on one evaluation batch, before the first step."""
        if self.uses_loss:
            self.check_loss(trainer, pl_module)

    def check_loss(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Evaluate the loss on the first evaluation batch; raise naming ``loss_fn`` when it cannot
        work. Under DDP a failure on one process fails every process (none waits in a collective)."""

        def check() -> torch.Tensor:
            batches = self.evaluation_batches(trainer, pl_module)
            if batches:  # a process whose shard is empty has nothing to check
                check_loss_fn(pl_module, batches[0], self.loss_function(pl_module))
            return torch.zeros(1)

        with self.sharded(trainer):
            guarded_sum(check, shape=(1,), dtype=torch.float64, device=pl_module.device)

    def loss_function(self, pl_module: pl.LightningModule) -> LossFn | None:
        """The core's ``loss_fn(model, batch)`` for this monitor's ``loss_fn`` (``None``: fused CE)."""
        if not self._resolved:
            self._loss = resolve_loss_fn(self.loss_fn, pl_module)
            self._resolved = True
        move_criterion(self.loss_fn, pl_module.device)
        return self._loss

    # ------------------------------------------------------------------ scheduling
    def should_run_at_epoch_end(self, trainer: pl.Trainer) -> bool:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return False
        return (trainer.current_epoch + 1) % self.every_n_epochs == 0

    def should_run_at_train_end(self, trainer: pl.Trainer) -> bool:
        if not self.at_train_end or trainer.fast_dev_run:
            return False
        return self._last_step != trainer.global_step

    def shows_progress(self, trainer: pl.Trainer) -> bool:
        """Whether this process draws a progress bar: asked for, rank zero, and the trainer shows one."""
        return self.progress_bar and trainer.is_global_zero and trainer.progress_bar_callback is not None

    # ------------------------------------------------------------------ hooks
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.should_run_at_epoch_end(trainer):
            with self.in_hook("epoch_end"):
                self.run(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.should_run_at_train_end(trainer):
            with self.in_hook("train_end"):
                self.run(trainer, pl_module)

    @contextlib.contextmanager
    def in_hook(self, hook: str):
        """Record which hook runs the monitor (``self.log`` is allowed at epoch end only)."""
        self._hook = hook
        try:
            yield
        finally:
            self._hook = None

    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Compute, record the step, report on rank zero (subclasses implement it)."""
        raise NotImplementedError

    def mark_run(self, trainer: pl.Trainer) -> None:
        self._last_step = trainer.global_step

    # ------------------------------------------------------------------ reporting
    def logging_step(self, trainer: pl.Trainer) -> int:
        """The step Lightning logs its epoch-end metrics at; figures and meshes use it too."""
        return logging_step(trainer)

    def log_values(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, values: Mapping[str, float]
    ) -> None:
        """Scalars, on every process: through ``pl_module.log`` at epoch end (``callback_metrics``,
        every logger, the epoch-end step), else straight to the loggers at that same step.

        Every process must call it with the same names (values agree: they are reduced). Adds
        ``{tag}/num_nonfinite``, the number of NaN/inf values among them (a diverged model's values
        are recorded, never raised), unless the monitor counts something more specific under it.
        """
        values = dict(values)
        values.setdefault(
            f"{self.tag}/num_nonfinite", float(sum(not math.isfinite(v) for v in values.values()))
        )
        if self._hook == "epoch_end":
            for name, value in values.items():
                pl_module.log(
                    name,
                    torch.tensor(float(value), dtype=torch.float64),
                    on_step=False,
                    on_epoch=True,
                    logger=bool(trainer.loggers),
                    sync_dist=trainer.world_size > 1,  # equal on every process: the mean is the value
                    batch_size=1,
                )
        elif trainer.is_global_zero:
            log_scalars(trainer, values, self.logging_step(trainer))

    def report_figures(self, trainer: pl.Trainer, figures: Mapping[str, Any], step: int, subdir: str) -> None:
        """Log ``figures`` (tag → figure); without a logger that takes figures, save PNGs and warn once."""
        pngs = log_figures(trainer, figures, step, fallback_subdir=subdir)
        if pngs and not self._warned_no_figure_logger:
            self._warned_no_figure_logger = True
            rank_zero_warn(
                f"{type(self).__name__}: no logger takes figures (use TensorBoardLogger); saving "
                f"PNGs under {os.path.dirname(pngs[0])} instead."
            )

    # ------------------------------------------------------------------ data
    def evaluation_batches(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> list[Any]:
        """The fixed evaluation subset, drawn on first use and cached on the module's device.

        Each batch goes through the batch hooks (``on_before_batch_transfer``,
        ``transfer_batch_to_device``, ``on_after_batch_transfer``) as training batches do.
        """
        if self._batches is None or self._batches_device != pl_module.device:
            loader = self.loader(trainer)
            self._batches_device = pl_module.device
            self._batches = evaluation_subset(
                loader,
                self.num_samples,
                self.eval_batch_size,
                self.seed,
                pl_module.device,
                rank=trainer.global_rank,
                world_size=trainer.world_size,
                transfer=batch_transfer(pl_module, pl_module.device, trainer.datamodule),
            )
        return self._batches

    def loader(self, trainer: pl.Trainer) -> Any:
        """The loader the evaluation subset is drawn from (``data``: training or validation)."""
        if self.data == "train":
            return _first_loader(trainer.train_dataloader)
        if trainer.val_dataloaders is None:  # no sanity check yet: set the validation data up now
            trainer.fit_loop.epoch_loop.val_loop.setup_data()
        if trainer.val_dataloaders is None:
            raise ValueError(
                f"{type(self).__name__}(data='val') needs a validation loader, and the trainer has none "
                "(no val_dataloader, or limit_val_batches=0): use data='train'."
            )
        return _first_loader(trainer.val_dataloaders)

    def sharded(self, trainer: pl.Trainer) -> contextlib.AbstractContextManager[None]:
        """Inside it, sums over the evaluation shards go through ``trainer.strategy.reduce``.

        With several processes each holds a shard of the evaluation subset (see
        :meth:`evaluation_batches`), so every per-sample sum, gradient and Hessian-vector product is
        summed over processes; with one process nothing changes.
        """
        if trainer.world_size <= 1:
            return contextlib.nullcontext()
        strategy = trainer.strategy

        def reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
            reduced = strategy.reduce(tensor.to(strategy.root_device), reduce_op="sum")
            return reduced.to(tensor.device)

        return sharded(reduce_sum)

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {"last_step": self._last_step, "saved_files": list(self.saved_files)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._last_step = state_dict.get("last_step")
        self.saved_files = list(state_dict.get("saved_files", []))


def _first_loader(loaders: Any) -> Any:
    """The training loader, or the first of several (a list, tuple or dict of loaders)."""
    if loaders is None:
        raise RuntimeError("the trainer has no training data loader yet.")
    if isinstance(loaders, DataLoader):
        return loaders
    if isinstance(loaders, Mapping) and loaders:
        return next(iter(loaders.values()))
    if isinstance(loaders, Sequence) and loaders:
        return loaders[0]
    return loaders
