"""``TrajectoryMonitor``: the optimizer's path on the loss landscape of its PCA plane."""

from __future__ import annotations

import os
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from typing_extensions import override

from .._checks import (
    check_bool,
    check_choice,
    check_int,
    check_optional_int,
    check_positive_float,
)
from ..core.base.params import selected_parameters
from ..core.landscapes._grid import check_grid_size
from ..core.landscapes.trajectory import SnapshotBuffer, TrajectoryResult, trajectory_landscape
from ..plotting.animation import trajectory_frames, write_gif
from ..plotting.trajectory import plot_trajectory
from ..reporting import epoch_index, log_animation, log_histograms, log_table, output_dir, result_file_name
from ._base import ResultMonitor, is_fast_dev_run

__all__ = ["TrajectoryMonitor"]

_DTYPES = {"float32": torch.float32, "float16": torch.float16}


class TrajectoryMonitor(ResultMonitor):
    """Snapshot the weights during training and draw their path on its PCA plane (Li et al. 2018).

    The trainable weights are copied to the CPU when training starts (epoch label 0) and after every
    ``every_n_epochs``-th epoch (label = completed epochs), never kept on the accelerator. At the end
    of training (and every ``plot_every_n_epochs`` epochs, if set) the differences ``θ_i − θ_final``
    are reduced to their two principal directions (centred PCA, as in the paper's code), the loss is
    evaluated on a grid of the plane covering the path, and on global rank zero it logs:

    - the figure ``{tag}/pca_plane`` (path over the plane's loss contours, axes "PC1 (xx.x%)");
    - scalars ``{tag}/explained_variance_pc1``, ``{tag}/explained_variance_pc2``,
      ``{tag}/max_residual`` (largest distance of a snapshot from the plane) and
      ``{tag}/max_plane_loss_gap`` (largest ``|loss at projection − loss at snapshot|``);
    - a text table ``{tag}/snapshots`` with every snapshot's epoch, coordinates, true loss, loss at
      its projection and residual;
    - with ``log_histograms=True``, a histogram of every weight tensor at each snapshot
      (``{tag}/weights/<name>``, Li et al. Fig. 3);
    - the result as ``<log_dir>/trajectory/{tag}-epoch=EEE-step=SSSSSS.npz``
      (:meth:`TrajectoryResult.load <lightning_landscape.TrajectoryResult.load>`).

    Snapshots are kept in memory up to ``snapshot_memory_mb`` and spill to files under
    ``<log_dir>/trajectory/{tag}-snapshots-rank<R>/`` beyond it. They are part of the callback's
    ``state_dict`` (spilled ones by path), so a run resumed from a checkpoint draws the same path.

    Args:
        every_n_epochs: snapshot after every ``every_n_epochs``-th epoch (a copy of the weights:
            cheap, never budgeted).
        plot_every_n_epochs: also draw the plane every so many epochs (``None``: at the end only,
            or as the budget allows).
        budget: with ``plot_every_n_epochs=None``, also draw the plane at epoch ends while the
            monitors of the trainer stay within this share of the training time (see
            :mod:`lightning_landscape.callbacks._base`); ``None`` (default): at the end only.
        num_points: grid points per axis of the plane.
        margin: room around the projected path, as a fraction of its extent.
        snapshot_dtype: ``"float32"`` or ``"float16"`` storage of the snapshots.
        snapshot_memory_mb: snapshots kept in memory before spilling to disk; the PCA at the end works
            in chunks of a quarter of it (at most 16 MB), so its peak stays near the budget.
        center: centre the differences before the PCA.
        ignore_bias_and_norm: leave 1-D tensors (biases, norm layers) out of the PCA.
        log_histograms: log weight histograms at every snapshot.
        log_scale: draw log10 of the loss.
        animate: at the end of training, also the path growing over the final plane's contours
            as an animated GIF, one frame per snapshot, ``<log_dir>/trajectory/{tag}-path.gif``,
            logged as ``{tag}/path_animation`` where a logger takes animations (W&B, MLflow).

        **kwargs: the options every monitor shares, declared once in
            :class:`~lightning_landscape.callbacks._base.ResultMonitor`: ``at_train_end``,
            ``num_samples``, ``eval_batch_size``, ``seed``, ``loss_fn``, ``data``, ``params``,
            ``save_results``, ``progress_bar``, ``tag``.
    Example:
        >>> from lightning.pytorch import Trainer
        >>> trainer = Trainer(max_epochs=20, callbacks=[TrajectoryMonitor(log_histograms=True)],
        ...                   logger=False, enable_progress_bar=False, enable_model_summary=False)
    """

    DEFAULT_TAG = "trajectory"

    def __init__(
        self,
        plot_every_n_epochs: int | None = None,
        num_points: int = 21,
        margin: float = 0.2,
        snapshot_dtype: Literal["float32", "float16"] = "float32",
        snapshot_memory_mb: float = 1024.0,
        center: bool = True,
        ignore_bias_and_norm: bool = False,
        log_histograms: bool = False,
        animate: bool = False,
        log_scale: bool = False,
        *,
        every_n_epochs: int | None = 1,
        budget: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            every_n_epochs=every_n_epochs,
            budget=budget,
            **kwargs,
        )
        self.log_scale = check_bool("log_scale", log_scale)
        self.plot_every_n_epochs = check_optional_int("plot_every_n_epochs", plot_every_n_epochs, minimum=1)
        self.num_points = check_int("num_points", num_points, minimum=2)
        check_grid_size("num_points", num_points, 2)
        self.margin = check_positive_float("margin", margin, maximum=100.0)
        self.snapshot_dtype = check_choice("snapshot_dtype", snapshot_dtype, tuple(_DTYPES))
        self.snapshot_memory_mb = check_positive_float(
            "snapshot_memory_mb", snapshot_memory_mb, maximum=2.0**30
        )
        self.center = check_bool("center", center)
        self.ignore_bias_and_norm = check_bool("ignore_bias_and_norm", ignore_bias_and_norm)
        self.log_histograms = check_bool("log_histograms", log_histograms)
        self.animate = check_bool("animate", animate)
        self.snapshots = SnapshotBuffer(int(snapshot_memory_mb * 2**20), _DTYPES[snapshot_dtype])
        self.last_result: TrajectoryResult | None = None
        self._last_plot_step: int | None = None

    @property
    @override
    def state_key(self) -> str:
        # settings that tell two monitors apart join the key only when set (earlier keys still match)
        own = {"params": self.params, "snapshot_dtype": self.snapshot_dtype}
        given = {k: v for k, v in own.items() if v not in (None, "float32")}
        return self._generate_state_key(tag=self.tag, every_n_epochs=self.every_n_epochs, **given)

    # ------------------------------------------------------------------ hooks
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        folder = output_dir(trainer, "trajectory")
        self.snapshots.spill_dir = os.path.join(folder, f"{self.tag}-snapshots-rank{trainer.global_rank}")

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if len(self.snapshots) == 0 and not is_fast_dev_run(trainer):  # a resumed run has its snapshots
            self._snapshot(trainer, pl_module, completed_epochs=0)

    @property
    def is_budgeted(self) -> bool:
        """Its intermediate planes are, when ``budget`` is given without ``plot_every_n_epochs``."""
        return self.budget is not None and self.plot_every_n_epochs is None

    def cost_units(self) -> float:
        """One forward pass per point of the plane's grid and per snapshot (the PCA is not counted)."""
        return float(self.num_points**2 + len(self.snapshots))

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or is_fast_dev_run(trainer):
            return
        epoch = trainer.current_epoch + 1
        with self.in_hook("epoch_end"):
            if epoch % (self.every_n_epochs or 1) == 0:  # a weight copy: cheap, never budgeted
                with self.timed(trainer):
                    self._snapshot(trainer, pl_module, completed_epochs=epoch)
            plot_every = self.plot_every_n_epochs
            due = epoch % plot_every == 0 if plot_every else self.budget is not None
            if due and len(self.snapshots) >= 3 and (plot_every or self.budget_allows(trainer, pl_module)):
                with self.timed(trainer, self.work_units()):
                    self._plot(trainer, pl_module)
            self.log_overhead(trainer, pl_module)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if is_fast_dev_run(trainer) or len(self.snapshots) == 0:
            return
        with self.in_hook("train_end"):
            with self.timed(trainer, self.work_units()):
                if self.snapshots.steps[-1] != trainer.global_step:
                    self._snapshot(trainer, pl_module, completed_epochs=trainer.current_epoch)
                if self._last_plot_step != trainer.global_step:
                    self._plot(trainer, pl_module)
                if self.animate and trainer.is_global_zero and self.last_result is not None:
                    self.write_animation(trainer, self.last_result)
            self.log_overhead(trainer, pl_module)

    # ------------------------------------------------------------------ work
    def _snapshot(self, trainer: pl.Trainer, pl_module: pl.LightningModule, completed_epochs: int) -> None:
        weights = selected_parameters(pl_module, self.params)
        self.snapshots.append(weights, epoch=completed_epochs, step=trainer.global_step)
        self.mark_run(trainer)
        if self.log_histograms and trainer.is_global_zero:
            log_histograms(trainer, weights, self.logging_step(trainer), prefix=f"{self.tag}/weights")

    def _plot(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if len(self.snapshots) < 3:
            return  # a plane needs at least three points
        self.run(trainer, pl_module)  # compute, log its scalars, report: the monitors' template
        self._last_plot_step = trainer.global_step

    @override
    def compute(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> TrajectoryResult:
        """The trajectory so far, on its PCA plane around the current weights."""
        return trajectory_landscape(
            pl_module,
            self.evaluation_batches(trainer, pl_module),
            list(self.snapshots),
            epochs=self.snapshots.epochs,
            num_points=self.num_points,
            margin=self.margin,
            center=self.center,
            ignore_bias_and_norm=self.ignore_bias_and_norm,
            loss_fn=self.loss_function(pl_module),
            progress_bar=self.shows_progress(trainer),
            # the PCA's working memory (about four chunks) stays within the snapshot budget
            chunk_bytes=min(16 * 2**20, max(2**18, self.snapshots.budget_bytes // 4)),
            params=self.params,
        )

    @override
    def report(self, trainer: pl.Trainer, result: TrajectoryResult) -> None:
        step = self.logging_step(trainer)
        figure = plot_trajectory(result, log_scale=self.log_scale)
        self.report_figures(trainer, {f"{self.tag}/pca_plane": figure}, step, "trajectory")
        log_table(trainer, f"{self.tag}/snapshots", *_snapshot_table(result), step)
        if self.save_results:
            name = result_file_name(self.tag, epoch_index(trainer), trainer.global_step)
            self.saved_files.append(result.save(os.path.join(output_dir(trainer, "trajectory"), name)))

    def write_animation(self, trainer: pl.Trainer, result: TrajectoryResult) -> str:
        """The path growing over its plane as ``{tag}-path.gif``, logged where a logger takes
        animations."""
        path = os.path.join(output_dir(trainer, "trajectory"), f"{self.tag}-path.gif")
        write_gif(trajectory_frames(result, log_scale=self.log_scale), path)
        log_animation(trainer, f"{self.tag}/path_animation", path, self.logging_step(trainer))
        return path

    # ------------------------------------------------------------------ checkpointing
    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "snapshots": self.snapshots.state_dict(),
            "last_plot_step": self._last_plot_step,
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.snapshots.load_state_dict(state_dict["snapshots"])
        self._last_plot_step = state_dict.get("last_plot_step")


def _snapshot_table(result: TrajectoryResult) -> tuple[list[str], list[list[str]]]:
    """Columns and rows: every snapshot's epoch, coordinates, losses and distance from the plane."""
    columns = ["epoch", "PC1", "PC2", "loss at snapshot", "loss at projection", "distance from plane"]
    rows = []
    for i, epoch in enumerate(result.epochs):
        x, y = result.pca.coords[i].tolist()
        rows.append(
            [
                str(epoch),
                f"{x:.4g}",
                f"{y:.4g}",
                f"{float(result.snapshot_loss[i]):.5g}",
                f"{float(result.plane_loss[i]):.5g}",
                f"{float(result.pca.residuals[i]):.3g}",
            ]
        )
    return columns, rows
