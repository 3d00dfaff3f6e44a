"""Ship figures, scalars and result files to a trainer's loggers.

Callers decide *whether* to report (global rank zero only); these functions decide *where*:

- figures go to every logger whose experiment has ``add_figure`` (TensorBoard's
  ``SummaryWriter``); when none does, they are saved as PNG files under
  ``<output folder>/<subdir>/`` instead;
- scalars go to every logger through ``log_metrics``;
- result files go under the output folder: the first logger's version folder (beside the
  TensorBoard event files or CSV logger's ``metrics.csv``), or, without a logger, a fresh
  ``<default_root_dir>/landscape_logs/version_N`` chosen once per trainer (never an earlier
  run's).
"""

from __future__ import annotations

import os
import re
import weakref
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = [
    "FALLBACK_DIR",
    "epoch_index",
    "logging_step",
    "prepare_output_dir",
    "figure_writers",
    "log_figures",
    "log_histograms",
    "log_scalars",
    "log_text",
    "output_dir",
]


def figure_writers(trainer: pl.Trainer) -> list:
    """The experiments of ``trainer``'s loggers that accept matplotlib figures."""
    writers = []
    for logger in trainer.loggers:
        experiment = getattr(logger, "experiment", None)
        if callable(getattr(experiment, "add_figure", None)):
            writers.append(experiment)
    return writers


_RUN_DIRS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

FALLBACK_DIR = "landscape_logs"
"""The folder under ``default_root_dir`` that holds a logger-less run's ``version_N`` folders."""


def logging_step(trainer: pl.Trainer) -> int:
    """The step at which Lightning logs its epoch-end metrics (one less than the batches that
    stepped the optimizer), so that our figures sit at the same step as the scalars."""
    loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
    stepped = getattr(loop, "_batches_that_stepped", None)
    return max(0, (trainer.global_step if stepped is None else stepped) - 1)


def epoch_index(trainer: pl.Trainer) -> int:
    """The index of the epoch a run belongs to, as Lightning's checkpoints name it (``epoch=2`` for
    the third): the epoch ending at an epoch end, the last one begun when training ends (Lightning
    counts ``current_epoch`` one further after a finished last epoch)."""
    progress = getattr(getattr(trainer, "fit_loop", None), "epoch_progress", None)
    if progress is None:
        return trainer.current_epoch
    return max(0, progress.current.ready - 1)


def prepare_output_dir(trainer: pl.Trainer) -> None:
    """Without a logger, choose this trainer's fresh ``landscape_logs/version_N`` folder now
    (an output folder's name, never the package's: a run from our source tree writes nothing into
    the package).

    Call it on every process at the same time (``setup``): rank zero picks the first free version
    and the choice is broadcast, so every process writes to the same folder.
    """
    if trainer.loggers or trainer in _RUN_DIRS:
        return
    root = os.path.join(trainer.default_root_dir, FALLBACK_DIR)
    chosen = None
    if trainer.is_global_zero:
        version = 0
        while chosen is None:  # another run may take a version between the check and the creation
            candidate = os.path.join(root, f"version_{version}")
            try:
                os.makedirs(candidate)
                chosen = candidate
            except FileExistsError:
                version += 1
    if trainer.world_size > 1:
        chosen = trainer.strategy.broadcast(chosen)
    _RUN_DIRS[trainer] = chosen


def output_dir(trainer: pl.Trainer, subdir: str) -> str:
    """``<log_dir>/<subdir>``: beside the event files (a fresh versioned folder without logger).

    ``log_dir`` is what ``trainer.log_dir`` gives, read from the first logger on this process:
    ``trainer.log_dir`` itself broadcasts from rank zero, a collective that would hang when called
    on rank zero alone, which is where files are written. Without a logger it is the folder
    :func:`prepare_output_dir` chose (chosen here on first use if it was not called).
    """
    if trainer.loggers:
        logger = trainer.loggers[0]
        root = getattr(logger, "log_dir", None) if _has_version_folder(logger) else logger.save_dir
        return os.path.join(root or trainer.default_root_dir, subdir)
    prepare_output_dir(trainer)
    return os.path.join(_RUN_DIRS[trainer], subdir)


def _has_version_folder(logger: Any) -> bool:
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    return isinstance(logger, (TensorBoardLogger, CSVLogger))


def _safe_name(tag: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", tag)


def log_figures(
    trainer: pl.Trainer, figures: Mapping[str, Figure], step: int, *, fallback_subdir: str
) -> list[str]:
    """Log ``figures`` (tag → figure) at ``step``; closes them.

    Returns:
        The PNG paths written when no logger takes figures (empty when a logger took them).
    """
    writers = figure_writers(trainer)
    paths = []
    for tag, fig in figures.items():
        if writers:
            for writer in writers:
                writer.add_figure(tag, fig, global_step=step, close=False)
        else:
            folder = output_dir(trainer, fallback_subdir)
            os.makedirs(folder, exist_ok=True)
            # named by the training step, as the result files and Lightning's checkpoints are
            path = os.path.join(folder, f"{_safe_name(tag)}-step={trainer.global_step:06d}.png")
            fig.savefig(path, dpi=100)
            paths.append(path)
        fig.clear()
    return paths


def log_scalars(trainer: pl.Trainer, metrics: Mapping[str, float], step: int) -> None:
    """Send ``metrics`` to every logger at ``step``."""
    for logger in trainer.loggers:
        logger.log_metrics(dict(metrics), step=step)


def log_histograms(
    trainer: pl.Trainer, tensors: Mapping[str, torch.Tensor], step: int, *, prefix: str
) -> None:
    """``add_histogram`` of every tensor to every logger that takes histograms (TensorBoard)."""
    for logger in trainer.loggers:
        experiment = getattr(logger, "experiment", None)
        if callable(getattr(experiment, "add_histogram", None)):
            for name, tensor in tensors.items():
                experiment.add_histogram(f"{prefix}/{name}", tensor.detach().float().cpu(), global_step=step)


def log_text(trainer: pl.Trainer, tag: str, text: str, step: int) -> None:
    """``add_text`` (markdown) to every logger that takes text (TensorBoard)."""
    for logger in trainer.loggers:
        experiment = getattr(logger, "experiment", None)
        if callable(getattr(experiment, "add_text", None)):
            experiment.add_text(tag, text, global_step=step)


def log_mesh(
    trainer: pl.Trainer,
    tag: str,
    vertices: np.ndarray,
    faces: np.ndarray,
    heights: np.ndarray,
    step: int,
) -> int:
    """Log a triangle mesh to every logger whose experiment has ``add_mesh`` (TensorBoard's mesh
    plugin: rotate it in the browser). Vertices are coloured by ``heights`` with viridis.

    Returns:
        The number of loggers that took it.
    """
    from matplotlib import colormaps

    span = float(np.ptp(heights)) or 1.0
    colors = colormaps["viridis"]((heights - heights.min()) / span)[:, :3]
    taken = 0
    for logger in trainer.loggers:
        experiment = getattr(logger, "experiment", None)
        if callable(getattr(experiment, "add_mesh", None)):
            experiment.add_mesh(
                tag,
                vertices=torch.from_numpy(vertices).unsqueeze(0),
                colors=torch.from_numpy((colors * 255).astype(np.uint8)).unsqueeze(0),
                faces=torch.from_numpy(faces).unsqueeze(0),
                global_step=step,
            )
            taken += 1
    return taken
