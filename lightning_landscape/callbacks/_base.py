"""Scheduling and data plumbing shared by the monitors.

When a monitor runs (never during the sanity check or under ``fast_dev_run``):

- ``budget`` (the default, 0.1): at the end of an epoch, if what all the monitors of the trainer
  have spent so far, plus this run's estimated cost, stays within ``budget`` times the training
  time so far; otherwise the run is skipped (and counted in ``skipped_epochs`` and
  ``{tag}/num_skipped``). The estimate is the monitor's measured seconds per unit of work (a unit:
  one forward pass over one sample of the evaluation subset, so a 21×21 landscape on 1024 samples
  is 441 × 1024 units) times the units of the run; before the first run it comes from a timed
  pilot, one forward pass over the subset;
- ``every_n_epochs=N`` given: after every N-th epoch, whatever it costs (the budget is ignored);
- ``budget=None`` without ``every_n_epochs``: after every epoch;
- with ``at_train_end=True``, once more when training ends (unless it already ran at that step),
  whatever the schedule, so every run ends with a picture.

Every monitor charges its time to the trainer's ledger (:mod:`._budget`) and logs its own share of
the training time so far as ``{tag}/overhead``. Its evaluation subset is drawn once from the
training (or validation) data set (see :func:`lightning_landscape.core.base.batches.evaluation_subset`),
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
``<default_root_dir>/landscape_logs/version_N``.

Under DDP every process holds a disjoint shard of that subset and the sums over samples go through
``trainer.strategy.reduce`` (see :meth:`EpochMonitor.sharded`), so every process computes the
single-process numbers; a budgeted decision is taken on global rank zero and broadcast, the others
depend only on the epoch and step, which all processes share; figures and files are made on global
rank zero only.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader
from typing_extensions import override

from .._checks import (
    check_bool,
    check_choice,
    check_int,
    check_optional_int,
    check_params,
    check_positive_float,
    check_seed,
    check_tag,
)
from ..core.base._inputs import check_loss_fn
from ..core.base.batches import evaluation_subset
from ..core.base.distributed import guarded_sum, sharded
from ..core.base.evaluation import evaluation_sums
from ..core.base.losses import LossFn
from ..core.base.params import observing, selected_parameters
from ..reporting import log_figures, log_scalars, logging_step, prepare_output_dir
from ..user_module import LossSpec, batch_transfer, check_loss_spec, move_criterion, resolve_loss_fn
from . import _budget

_UNSUPPORTED_STRATEGIES = ("FSDP", "DeepSpeed", "ModelParallel", "XLA")


# Lightning's Trainer sets these in its connectors, where type checkers cannot see them.
def trainer_callbacks(trainer: pl.Trainer) -> list[Callback]:
    """The trainer's callbacks."""
    return list(getattr(trainer, "callbacks"))  # noqa: B009


def is_fast_dev_run(trainer: pl.Trainer) -> bool:
    """Whether the trainer runs ``fast_dev_run`` (no monitor runs then)."""
    return bool(getattr(trainer, "fast_dev_run", False))


def trainer_datamodule(trainer: pl.Trainer) -> Any:
    """The trainer's datamodule, or ``None``."""
    return getattr(trainer, "datamodule", None)


class EpochMonitor(Callback):
    """Base class: decides when to run and captures the fixed evaluation subset.

    Every monitor takes these shared options as keywords (declared once, here; LightningCLI and
    ``--help`` see them through each monitor's ``**kwargs``). A monitor whose default differs
    states that option itself. Monitors that write result files take :class:`ResultMonitor`'s
    options too.

    Args:
        every_n_epochs: run after every ``every_n_epochs``-th training epoch (a fixed schedule; the
            budget is then ignored); ``None``: the budgeted schedule.
        budget: with ``every_n_epochs=None``, the share of training time the monitors of the
            trainer may spend together (see the module docstring); ``None``: run every epoch.
        at_train_end: also run when training ends, if the last run was at an earlier step.
        num_samples: size of the evaluation subset drawn from the training data.
        eval_batch_size: batch size used to evaluate that subset.
        seed: seed for the subset and any random directions.
        loss_fn: ``None`` (the module's own ``training_step`` loss), ``"cross_entropy"`` (fused
            cross-entropy and accuracy on ``(x, y)`` batches of class logits), a method name, a
            function ``loss_fn(model, batch)`` or its dotted path, or a loss module
            ``criterion(outputs, targets)``.
        data: draw the evaluation subset from the ``"train"`` or the ``"val"`` loader.
        tag: prefix of the logged tags and file names (default: the monitor's
            :attr:`DEFAULT_TAG`); every monitor of a trainer needs its own (a tag given twice is
            refused at ``setup``).
    """

    DEFAULT_TAG: ClassVar[str] = "monitor"
    """The ``tag`` of a monitor built without one."""

    def __init__(
        self,
        *,
        every_n_epochs: int | None = None,
        budget: float | None = 0.1,
        at_train_end: bool = True,
        num_samples: int = 1024,
        eval_batch_size: int = 256,
        seed: int = 0,
        loss_fn: LossSpec = None,
        data: Literal["train", "val"] = "train",
        tag: str | None = None,
    ) -> None:
        super().__init__()
        self.every_n_epochs = check_optional_int("every_n_epochs", every_n_epochs, minimum=1)
        self.budget = None if budget is None else check_positive_float("budget", budget, maximum=100.0)
        self.at_train_end = check_bool("at_train_end", at_train_end)
        self.num_samples = check_int("num_samples", num_samples, minimum=1)
        self.eval_batch_size = check_int("eval_batch_size", eval_batch_size, minimum=1)
        self.seed = check_seed("seed", seed)
        self.loss_fn = check_loss_spec("loss_fn", loss_fn)
        self.data = check_choice("data", data, ("train", "val"))
        self.params: list[str] | None = None  # every trainable parameter (see ResultMonitor)
        self.save_results = False
        self.progress_bar = False
        self.tag = check_tag("tag", self.DEFAULT_TAG if tag is None else tag)
        self.saved_files: list[str] = []
        self.last_result: Any = None  # what the last run computed
        self._last_step: int | None = None
        self._warned_no_figure_logger = False
        self._batches: list[Any] | None = None
        self._batches_device: torch.device | None = None
        self._loss: LossFn | None = None
        self._resolved = False
        self._hook: str | None = None
        self.skipped_epochs: list[int] = []  # epochs whose due run the budget did not allow
        self.spent_seconds = 0.0  # this monitor's time, resumed runs included
        self._seconds_per_unit: float | None = None  # measured cost of one unit of work
        self._restored: tuple[float, float] | None = None  # (spent, training seconds) of a checkpoint
        self._training_seconds = 0.0  # the ledger's training time at the last epoch end
        self._overhead_step: int | None = None  # the step {tag}/overhead was last logged at

    @property
    def is_budgeted(self) -> bool:
        """Whether its epoch-end runs are decided by the budget."""
        return self.every_n_epochs is None and self.budget is not None

    @property
    def uses_loss(self) -> bool:
        """Whether this monitor evaluates the loss (checked when training starts)."""
        return True

    # ------------------------------------------------------------------ trainer checks
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        name = type(trainer.strategy).__name__
        if any(key in name for key in _UNSUPPORTED_STRATEGIES):
            raise ValueError(
                f"{type(self).__name__} does not support the sharded strategy {name}: it needs "
                "every parameter in full on each process. Supported: single device, DDP "
                "('ddp', 'ddp_spawn', 'ddp_find_unused_parameters_true')."
            )
        self.check_tag_is_own(trainer)
        if self.uses_loss:
            self._resolved = False
            self.loss_function(pl_module)
        if self.params is not None:  # a pattern that matches nothing fails before training
            selected_parameters(pl_module, self.params)
        if self.save_results:  # a monitor that writes no file makes no folder
            prepare_output_dir(trainer)
        if stage == "fit":
            _budget.new_ledger(trainer)
            self.check_watchers(trainer)

    def check_tag_is_own(self, trainer: pl.Trainer) -> None:
        """Refuse a ``tag`` that another monitor of the trainer has: the tag names every value it
        logs and every file it writes, which would mix."""
        for other in trainer_callbacks(trainer):
            if other is not self and isinstance(other, EpochMonitor) and other.tag == self.tag:
                raise ValueError(
                    f"`tag` {self.tag!r} is given to two monitors of this Trainer ({type(self).__name__} "
                    f"and {type(other).__name__}): their logged values and files would mix. Give each "
                    "monitor its own `tag` (e.g. tag='landscape_1d')."
                )

    def check_watchers(self, trainer: pl.Trainer) -> None:
        """A budgeted monitor skips epochs: refuse an ``EarlyStopping`` or ``ModelCheckpoint`` that
        needs one of its values every epoch (they fail on a missing value), before training."""
        if not self.is_budgeted:
            return
        from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

        for callback in trainer_callbacks(trainer):
            monitored = getattr(callback, "monitor", None)
            strict = isinstance(callback, ModelCheckpoint) or getattr(callback, "strict", False)
            if not isinstance(callback, (EarlyStopping, ModelCheckpoint)) or not strict:
                continue
            if (
                isinstance(monitored, str)
                and monitored.startswith(f"{self.tag}/")
                and not monitored.endswith(("/overhead", "/num_skipped"))
            ):
                raise ValueError(
                    f"{type(callback).__name__}(monitor={monitored!r}) needs that value at every epoch, and "
                    f"{type(self).__name__}(tag={self.tag!r}) runs on its budget, skipping epochs: give the "
                    "monitor `every_n_epochs` (e.g. 1) for a fixed schedule."
                )

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start the ledger's clock; fail fast: evaluate the loss once on one evaluation batch."""
        ledger = _budget.ledger_of(trainer)
        if self._restored is not None:
            ledger.register(self.state_key, *self._restored)
            self._restored = None
        if self.is_budgeted:
            ledger.budgeted.add(self.state_key)
        ledger.start()
        if self.uses_loss:
            with self.timed(trainer):
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
    def should_run_at_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
        if trainer.sanity_checking or is_fast_dev_run(trainer):
            return False
        if self.every_n_epochs is not None:
            return (trainer.current_epoch + 1) % self.every_n_epochs == 0
        if self.budget is None:
            return True
        return self.budget_allows(trainer, pl_module)

    def cost_units(self) -> float:
        """Forward-pass equivalents over the evaluation subset one run costs (0: free, never
        skipped); the estimate is this times ``num_samples`` times the measured seconds per unit."""
        return 1.0

    def work_units(self) -> float:
        """A run's units of work: ``cost_units()`` forward passes over ``num_samples`` samples."""
        return self.cost_units() * self.num_samples

    def budget_allows(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
        """Whether the run due now fits the budget; decided on rank zero, the same on every process.

        A skipped run is recorded in ``skipped_epochs``.
        """
        units = self.work_units()
        if units == 0:
            return True
        if self._seconds_per_unit is None:
            self.pilot(trainer, pl_module)
        estimate = (self._seconds_per_unit or 0.0) * units
        ledger = _budget.ledger_of(trainer)
        take = trainer.is_global_zero and ledger.affords(self.state_key, self.budget or 0.0, estimate)
        if trainer.world_size > 1:
            take = bool(trainer.strategy.broadcast(take, src=0))
        if not take:
            self.skipped_epochs.append(trainer.current_epoch)
        return take

    def pilot(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The first estimate of the seconds per unit: :meth:`pilot_pass`, timed and charged."""
        with self.timed(trainer, units=float(self.num_samples)):
            self.pilot_pass(trainer, pl_module)

    def pilot_pass(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """One forward pass over the evaluation subset, on every process (a collective under DDP)."""
        batches = self.evaluation_batches(trainer, pl_module)
        with self.sharded(trainer), observing(pl_module), torch.inference_mode(False), torch.no_grad():
            evaluation_sums(pl_module, batches, self.loss_function(pl_module))

    @contextlib.contextmanager
    def timed(self, trainer: pl.Trainer, units: float = 0.0) -> Iterator[None]:
        """Charge the time inside to this monitor in the trainer's ledger; with ``units`` of work,
        measure the seconds per unit from it."""
        start = _budget.clock()
        try:
            yield
        finally:
            seconds = _budget.clock() - start
            self.spent_seconds += seconds
            _budget.ledger_of(trainer).charge(self.state_key, seconds)
            if units > 0:
                self._seconds_per_unit = seconds / units

    def log_overhead(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """``{tag}/overhead``: this monitor's time over the training time so far (and, budgeted,
        ``{tag}/num_skipped``); once per step (a run at the end of training at the step of the last
        epoch end adds nothing new to log)."""
        if self._overhead_step == trainer.global_step and self._hook == "train_end":
            return
        self._overhead_step = trainer.global_step
        training = self._training_seconds = _budget.ledger_of(trainer).training_seconds()
        values = {f"{self.tag}/overhead": self.spent_seconds / training if training > 0 else 0.0}
        if self.is_budgeted:
            values[f"{self.tag}/num_skipped"] = float(len(self.skipped_epochs))
        self._send(trainer, pl_module, values)

    def should_run_at_train_end(self, trainer: pl.Trainer) -> bool:
        if not self.at_train_end or is_fast_dev_run(trainer):
            return False
        return self._last_step != trainer.global_step

    def shows_progress(self, trainer: pl.Trainer) -> bool:
        """Whether this process draws a progress bar: asked for, rank zero, and the trainer shows one."""
        return self.progress_bar and trainer.is_global_zero and trainer.progress_bar_callback is not None

    # ------------------------------------------------------------------ hooks
    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        with self.in_hook("epoch_end"):
            if self.should_run_at_epoch_end(trainer, pl_module):
                with self.timed(trainer, self.work_units()):
                    self.run(trainer, pl_module)
            if not trainer.sanity_checking and not is_fast_dev_run(trainer):
                self.log_overhead(trainer, pl_module)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.should_run_at_train_end(trainer):
            with self.in_hook("train_end"):
                with self.timed(trainer, self.work_units()):
                    self.run(trainer, pl_module)
                self.log_overhead(trainer, pl_module)

    @contextlib.contextmanager
    def in_hook(self, hook: str):
        """Record which hook runs the monitor (``self.log`` is allowed at epoch end only)."""
        self._hook = hook
        try:
            yield
        finally:
            self._hook = None

    shards_compute = True
    """Whether :meth:`compute` runs inside the sum over processes (a subclass that mixes sharded
    and rank-zero work enters it itself)."""

    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """One run, the same for every monitor: :meth:`compute` (inside the sum over processes),
        record it, log :meth:`scalars` on every process, :meth:`report` on global rank zero."""
        with self.sharded(trainer) if self.shards_compute else contextlib.nullcontext():
            result = self.compute(trainer, pl_module)
        self.mark_run(trainer)
        self.last_result = result
        self.log_values(trainer, pl_module, self.scalars(trainer, pl_module, result))
        if trainer.is_global_zero:
            self.report(trainer, result)

    def compute(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Any:
        """The measurement at the current weights (subclasses implement it)."""
        raise NotImplementedError

    def scalars(self, trainer: pl.Trainer, pl_module: pl.LightningModule, result: Any) -> dict[str, float]:
        """The tagged scalars of a run: ``{tag}/<name>`` of ``result.scalars()``, or ``result``
        itself when it is already a mapping of tagged values."""
        if isinstance(result, Mapping):
            return dict(result)
        return {f"{self.tag}/{name}": value for name, value in result.scalars().items()}

    def report(self, trainer: pl.Trainer, result: Any) -> None:
        """Figures and files of a run, on global rank zero (none by default)."""

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
        self._send(trainer, pl_module, values)

    def _send(self, trainer: pl.Trainer, pl_module: pl.LightningModule, values: Mapping[str, float]) -> None:
        """``pl_module.log`` at epoch end, else straight to the loggers at the same step (rank zero)."""
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
                transfer=batch_transfer(pl_module, pl_module.device, trainer_datamodule(trainer)),
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
    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "last_step": self._last_step,
            "saved_files": list(self.saved_files),
            # the budget's ledger, so a resumed run keeps its budget
            "spent_seconds": self.spent_seconds,
            "training_seconds": self._training_seconds,
            "seconds_per_unit": self._seconds_per_unit,
            "skipped_epochs": list(self.skipped_epochs),
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._last_step = state_dict.get("last_step")
        self.saved_files = list(state_dict.get("saved_files", []))
        self.spent_seconds = float(state_dict.get("spent_seconds", 0.0))
        self._seconds_per_unit = state_dict.get("seconds_per_unit")
        self.skipped_epochs = list(state_dict.get("skipped_epochs", []))
        self._restored = (self.spent_seconds, float(state_dict.get("training_seconds", 0.0)))


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


class ResultMonitor(EpochMonitor):
    """A monitor that varies chosen parameters, shows its progress and writes result files: the
    options of :class:`EpochMonitor` and these three, declared once (``LossLandscapeMonitor``,
    ``SharpnessMonitor`` and ``TrajectoryMonitor`` take them through ``**kwargs``).

    Args:
        params: the parameters the monitor varies (directions, curvature, snapshots): the trainable
            ones matching these glob patterns (e.g. ``"*.lora_*"``); default all of them.
        save_results: write result files beside the logs.
        progress_bar: show a progress bar while computing (when the trainer shows one).
        **kwargs: the options of :class:`EpochMonitor`.
    """

    def __init__(
        self,
        *,
        params: str | Sequence[str] | None = None,
        save_results: bool = True,
        progress_bar: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.params = check_params("params", params)
        self.save_results = check_bool("save_results", save_results)
        self.progress_bar = check_bool("progress_bar", progress_bar)
