"""Ship figures, scalars, tables, histograms, meshes, animations and files to a trainer's loggers.

Callers decide *whether* to report (global rank zero only); this module decides *where*, each
logger in its own way (:func:`sinks`, one :class:`Sink` per logger that shows pictures):

- TensorBoard (``add_figure``, ``add_histogram``, ``add_text``, ``add_mesh``);
- Weights & Biases (``WandbLogger.log_image``, ``wandb.Histogram``, ``wandb.Table``,
  ``wandb.Video`` for animations), at the step of the scalars (``trainer/global_step``);
- MLflow (``log_figure``, tables and animations as artifacts), as ``<tag>/step=SSSSSS.png``;
- Comet and Neptune through their loggers' own experiment APIs.

W&B, MLflow, Comet and Neptune are imported only when such a logger is present. Where no logger
shows pictures (the CSV logger, or no logger) figures are saved as PNG files under
``<output folder>/<subdir>/`` instead; scalars go to every logger through ``log_metrics``; result
files go under the output folder: the first logger's version folder (beside the TensorBoard event
files or the CSV logger's ``metrics.csv``), or, without a logger, a fresh
``<default_root_dir>/landscape_logs/version_N`` chosen once per trainer (never an earlier run's).
"""

from __future__ import annotations

import os
import re
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = [
    "FALLBACK_DIR",
    "Sink",
    "epoch_index",
    "log_animation",
    "log_figures",
    "log_histograms",
    "log_mesh",
    "log_scalars",
    "log_table",
    "logging_step",
    "output_dir",
    "prepare_output_dir",
    "rendered",
    "sinks",
]


class Sink:
    """Where one logger takes what a monitor reports; a kind of logger overrides what it shows
    (the base shows nothing)."""

    def __init__(self, logger: Any) -> None:
        self.logger = logger

    def image(self, tag: str, image: Any, step: int) -> None:
        """A figure, rendered once for every logger (a PIL image, RGB)."""

    def histogram(self, tag: str, values: torch.Tensor, step: int) -> None:
        """The histogram of a tensor's values."""

    def table(self, tag: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int) -> None:
        """A table of rows under named columns."""

    def mesh(self, tag: str, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, step: int) -> bool:
        """A triangle mesh; whether it was taken."""
        return False

    def animation(self, tag: str, path: str, step: int) -> None:
        """An animated GIF written at ``path``."""


class TensorBoardSink(Sink):
    """TensorBoard's ``SummaryWriter``: figures, histograms, text (a markdown table) and meshes."""

    def image(self, tag: str, image: Any, step: int) -> None:
        self.logger.experiment.add_image(tag, np.asarray(image), global_step=step, dataformats="HWC")

    def histogram(self, tag: str, values: torch.Tensor, step: int) -> None:
        self.logger.experiment.add_histogram(tag, values.detach().float().cpu(), global_step=step)

    def table(self, tag: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int) -> None:
        self.logger.experiment.add_text(tag, markdown_table(columns, rows), global_step=step)

    def mesh(self, tag: str, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, step: int) -> bool:
        self.logger.experiment.add_mesh(
            tag,
            vertices=torch.from_numpy(vertices).unsqueeze(0),
            colors=torch.from_numpy((colors * 255).astype(np.uint8)).unsqueeze(0),
            faces=torch.from_numpy(faces).unsqueeze(0),
            global_step=step,
        )
        return True


class WandbSink(Sink):
    """Weights & Biases through Lightning's ``WandbLogger``: images, histograms, tables and GIFs at
    the scalars' ``trainer/global_step``."""

    def image(self, tag: str, image: Any, step: int) -> None:
        self.logger.log_image(key=tag, images=[image], step=step)

    def histogram(self, tag: str, values: torch.Tensor, step: int) -> None:
        import wandb

        self.logger.log_metrics({tag: wandb.Histogram(values.detach().double().cpu().tolist())}, step=step)

    def table(self, tag: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int) -> None:
        self.logger.log_table(key=tag, columns=list(columns), data=[list(r) for r in rows], step=step)

    def animation(self, tag: str, path: str, step: int) -> None:
        import wandb

        self.logger.log_metrics({tag: wandb.Video(path, format="gif")}, step=step)


class MLflowSink(Sink):
    """MLflow through Lightning's ``MLFlowLogger``: figures, tables (markdown) and GIFs as artifacts
    of the run, ``<tag>/step=SSSSSS.<ext>``."""

    def _name(self, tag: str, step: int, suffix: str) -> str:
        return f"{tag}/step={step:06d}.{suffix}"

    def image(self, tag: str, image: Any, step: int) -> None:
        self.logger.experiment.log_image(
            self.logger.run_id, image, artifact_file=self._name(tag, step, "png")
        )

    def table(self, tag: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int) -> None:
        text = markdown_table(columns, rows)
        self.logger.experiment.log_text(self.logger.run_id, text, self._name(tag, step, "md"))

    def animation(self, tag: str, path: str, step: int) -> None:
        self.logger.experiment.log_artifact(self.logger.run_id, path, artifact_path=tag)


class CometSink(Sink):
    """Comet through Lightning's ``CometLogger`` (its experiment's ``log_figure``, ``log_histogram_3d``,
    ``log_table``, ``log_image``)."""

    def image(self, tag: str, image: Any, step: int) -> None:
        self.logger.experiment.log_image(image, name=tag, step=step)

    def histogram(self, tag: str, values: torch.Tensor, step: int) -> None:
        self.logger.experiment.log_histogram_3d(values.detach().double().cpu().numpy(), name=tag, step=step)

    def table(self, tag: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int) -> None:
        self.logger.experiment.log_table(
            f"{tag}-step={step:06d}.csv", tabular_data=list(rows), headers=list(columns)
        )

    def animation(self, tag: str, path: str, step: int) -> None:
        self.logger.experiment.log_image(path, name=tag, step=step)


class NeptuneSink(Sink):
    """Neptune through Lightning's ``NeptuneLogger`` (a run's series of files and strings)."""

    def image(self, tag: str, image: Any, step: int) -> None:
        from neptune.types import File

        self.logger.run[tag].append(File.as_image(image), step=step)

    def table(self, tag: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int) -> None:
        self.logger.run[tag].append(markdown_table(columns, rows), step=step)

    def animation(self, tag: str, path: str, step: int) -> None:
        from neptune.types import File

        self.logger.run[tag].upload(File(path))


_SINKS = {
    "WandbLogger": WandbSink,
    "MLFlowLogger": MLflowSink,
    "CometLogger": CometSink,
    "NeptuneLogger": NeptuneSink,
}


def sinks(trainer: pl.Trainer) -> list[Sink]:
    """One :class:`Sink` per logger of ``trainer`` that shows pictures (TensorBoard: any logger
    whose experiment has ``add_figure``; W&B, MLflow, Comet, Neptune by their Lightning logger
    classes, subclasses included); the CSV logger shows none."""
    found: list[Sink] = []
    for logger in trainer.loggers:
        kinds = {c.__name__ for c in type(logger).__mro__}
        kind = next((sink for name, sink in _SINKS.items() if name in kinds), None)
        if kind is not None:
            found.append(kind(logger))
        elif callable(getattr(getattr(logger, "experiment", None), "add_figure", None)):
            found.append(TensorBoardSink(logger))
    return found


def rendered(figure: Figure) -> Any:
    """The figure drawn once (Agg, at its own dpi, as TensorBoard's ``add_figure`` draws it), as an
    RGB PIL image for every logger: each would draw it again, and a 3D surface takes a tenth of a
    second."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB")


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table (what TensorBoard's text tab and an ``.md`` artifact show).

    >>> print(markdown_table(["epoch", "loss"], [[0, 1.5]]))
    | epoch | loss |
    |---|---|
    | 0 | 1.5 |
    """
    lines = ["| " + " | ".join(map(str, columns)) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


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
    """Without a logger that has a version folder (TensorBoard, CSV), choose this trainer's fresh
    ``landscape_logs/version_N`` folder now (an output folder's name, never the package's: a run
    from our source tree writes nothing into the package; W&B and MLflow keep their own stores).

    Call it on every process at the same time (``setup``): rank zero picks the first free version
    and the choice is broadcast, so every process writes to the same folder.
    """
    if any(_has_version_folder(logger) for logger in trainer.loggers) or trainer in _RUN_DIRS:
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
    versioned = [logger for logger in trainer.loggers if _has_version_folder(logger)]
    if versioned:
        return os.path.join(getattr(versioned[0], "log_dir", None) or trainer.default_root_dir, subdir)
    prepare_output_dir(trainer)  # W&B, MLflow... keep their own stores: our files go beside, not in them
    return os.path.join(_RUN_DIRS[trainer], subdir)


def result_file_name(tag: str, epoch: int, step: int) -> str:
    """The name of a monitor's result file: ``{tag}-epoch=EEE-step=SSSSSS.npz``, read back by
    :func:`result_files`."""
    return f"{tag}-epoch={epoch:03d}-step={step:06d}.npz"


def result_files(log_dir: str, subdir: str) -> dict[str, list[str]]:
    """A monitor tag → its result files in ``log_dir/subdir``, in the order of their steps."""
    folder = os.path.join(log_dir, subdir)
    found: dict[str, list[tuple[int, str]]] = {}
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        matched = _RESULT_FILE.fullmatch(name)
        if matched:
            found.setdefault(matched.group(1), []).append((int(matched.group(2)), os.path.join(folder, name)))
    return {tag: [path for _, path in sorted(files)] for tag, files in sorted(found.items())}


_RESULT_FILE = re.compile(r"(.+)-epoch=\d+-step=(\d+)\.npz")


def _has_version_folder(logger: Any) -> bool:
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    return isinstance(logger, (TensorBoardLogger, CSVLogger))


def _safe_name(tag: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", tag)


def log_figures(
    trainer: pl.Trainer, figures: Mapping[str, Figure], step: int, *, fallback_subdir: str
) -> list[str]:
    """Log ``figures`` (tag → figure) at ``step`` to every logger that shows pictures, each in its
    own way; closes them.

    Returns:
        The PNG paths written when no logger shows pictures (empty when one did).
    """
    shown = sinks(trainer)
    paths = []
    for tag, fig in figures.items():
        if shown:
            image = rendered(fig)
            for sink in shown:
                sink.image(tag, image, step)
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
    """The histogram of every tensor, to every logger that shows histograms (TensorBoard, W&B, Comet)."""
    for sink in sinks(trainer):
        for name, tensor in tensors.items():
            sink.histogram(f"{prefix}/{name}", tensor, step)


def log_table(
    trainer: pl.Trainer, tag: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int
) -> None:
    """A table to every logger that shows one: TensorBoard's text tab (markdown), a W&B table, an
    MLflow artifact."""
    for sink in sinks(trainer):
        sink.table(tag, columns, rows, step)


def log_animation(trainer: pl.Trainer, tag: str, path: str, step: int) -> None:
    """An animated GIF (written at ``path``) to every logger that takes animations (W&B's video
    panel, MLflow and Comet artifacts, Neptune files)."""
    for sink in sinks(trainer):
        sink.animation(tag, path, step)


def log_mesh(
    trainer: pl.Trainer,
    tag: str,
    vertices: np.ndarray,
    faces: np.ndarray,
    heights: np.ndarray,
    step: int,
) -> int:
    """Log a triangle mesh to every logger that shows meshes (TensorBoard's mesh plugin: rotate it
    in the browser). Vertices are coloured by ``heights`` with viridis.

    Returns:
        The number of loggers that took it.
    """
    from matplotlib import colormaps

    span = float(np.ptp(heights)) or 1.0
    colors = colormaps["viridis"]((heights - heights.min()) / span)[:, :3]
    return sum(sink.mesh(tag, vertices, faces, colors, step) for sink in sinks(trainer))
