"""``LossLandscapeMonitor``: filter-normalized loss landscapes at epoch boundaries."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from typing_extensions import override

from .._checks import check_bool, check_choice, check_int, check_positive_float, check_span
from ..core.base.evaluation import evaluation_sums
from ..core.base.params import observing
from ..core.base.results import LandscapeResult
from ..core.curvature.eigenvalues import check_hessian_directions
from ..core.landscapes._grid import check_grid_size, check_points_per_forward
from ..core.landscapes._plan import DIRECTION_KINDS
from ..core.landscapes.directions import check_span_fits
from ..core.landscapes.landscape import compute_landscape
from ..core.landscapes.normalization import NORMALIZATIONS
from ..export import surface_mesh
from ..plotting.animation import landscape_frames, write_gif
from ..plotting.landscape import landscape_figures
from ..reporting import epoch_index, log_animation, log_mesh, output_dir, result_file_name
from ._base import ResultMonitor, is_fast_dev_run

__all__ = ["LossLandscapeMonitor"]


class LossLandscapeMonitor(ResultMonitor):
    """Log a filter-normalized loss landscape (Li et al. 2018) every few epochs.

    At the end of an epoch when the budget allows it (by default the monitors of a trainer spend at
    most a tenth of the training time; a 21×21 plane costs 441 forward passes over ``num_samples``)
    or of every ``every_n_epochs``-th epoch, and at the end of training, the landscape around the
    current weights is computed on the training accelerator, on a fixed subset
    of ``num_samples`` training samples, in eval mode (BatchNorm on running statistics, dropout
    off), along directions drawn from ``seed``; the same seed gives the same raw directions at every
    epoch, re-normalized to the current weights, so pictures over training are comparable. Training
    is not perturbed: weights, buffers, flags, gradients, optimizer state and random streams are
    exactly as without the callback.

    Scalars are logged through ``pl_module.log`` (see :mod:`lightning_landscape.callbacks._base`);
    on global rank zero it logs, at the step of Lightning's epoch-end metrics:

    - figures (TensorBoard ``add_figure``): ``{tag}/1d/curve`` (loss and accuracy) for ``dims=1``;
      ``{tag}/2d/contour`` (labeled contour lines), ``{tag}/2d/contour_filled`` and
      ``{tag}/2d/surface_3d`` for ``dims=2``. With no logger that takes figures they are saved as
      PNGs under ``<default_root_dir>/landscapes/`` and a warning is given once;
    - for ``dims=2``, the surface as a mesh (TensorBoard ``add_mesh``, the *Mesh* tab, where it can
      be rotated): ``{tag}/2d/mesh``;
    - scalars: ``{tag}/center_loss``, ``{tag}/max_loss_rise`` (largest finite loss on the grid minus
      the centre loss), ``{tag}/num_nonfinite``, ``{tag}/center_accuracy`` when the loss reports an
      accuracy (the fused ``"cross_entropy"``, or an ``"acc"``/``"accuracy"`` entry of the dict
      ``training_step`` returns) and ``{tag}/center_<name>`` for every other scalar of that dict
      (single process);
    - the result as ``<log_dir>/landscapes/{tag}-epoch=EEE-step=SSSSSS.npz`` (reload it with
      :meth:`LandscapeResult.load <lightning_landscape.LandscapeResult.load>` to redraw figures).

    Diverging grid points (NaN/inf loss) are recorded, masked in the figures and never stop training.

    Args:
        dims: 1 or 2 directions.
        num_points: grid points per axis (>= 2; odd puts a point exactly on the weights).
        span: ``(low, high)`` coefficient range per axis.
        normalization: ``"filter"``, ``"layer"`` or ``None``.
        directions: ``"random"`` (default: seeded Gaussian directions, normalized), ``"hessian"``
            (the top ``dims`` eigenvectors of the loss Hessian on the evaluation subset, found
            afresh at every run) or ``"hessian_extremes"`` (the top and the bottom one; ``dims=2``).
            Hessian axes are unit vectors used as they are (``normalization`` does not apply).
        ignore_bias_and_norm: hold biases and norm-layer affine parameters fixed (paper's biasbn).
        log_scale: draw log10 of the loss.
        points_per_forward: grid points per forward pass (``"auto"``: as many as
            ``points_memory_mb`` holds), mapped with ``torch.vmap``; worth it on a GPU with a small
            model, slower on a CPU (see ``benchmarks/README.md``). Default 1.
        points_memory_mb: memory for one batched forward.
        autocast: ``"bf16"``/``"fp16"`` evaluation under ``torch.autocast`` (changes the loss by
            ~1e-3/1e-4 relative); default full precision.
        compile: evaluate through ``torch.compile`` (one point per forward).
        animate: at the end of training, also the landscape epoch by epoch as an animated GIF,
            ``<log_dir>/landscapes/{tag}-epochs.gif`` (every run on one colour scale), logged as
            ``{tag}/{dims}d/animation`` where a logger takes animations (W&B, MLflow).

        **kwargs: the options every monitor shares, declared once in
            :class:`~lightning_landscape.callbacks._base.ResultMonitor`: ``every_n_epochs``,
            ``budget``, ``at_train_end``, ``num_samples``, ``eval_batch_size``, ``seed``, ``loss_fn``,
            ``data``, ``params``, ``save_results``, ``progress_bar``, ``tag``.
    Example:
        >>> from lightning.pytorch import Trainer
        >>> monitor = LossLandscapeMonitor(every_n_epochs=5, dims=1, num_points=31)
        >>> trainer = Trainer(max_epochs=20, callbacks=[monitor], logger=False,
        ...                   enable_progress_bar=False, enable_model_summary=False)
        >>> LossLandscapeMonitor(num_points=1)
        Traceback (most recent call last):
        ...
        ValueError: `num_points` must be an integer >= 2, got 1.
    """

    DEFAULT_TAG = "landscape"

    def __init__(
        self,
        dims: Literal[1, 2] = 2,
        num_points: int = 21,
        span: tuple[float, float] = (-1.0, 1.0),
        normalization: Literal["filter", "layer"] | None = "filter",
        ignore_bias_and_norm: bool = True,
        points_per_forward: int | Literal["auto"] = 1,
        points_memory_mb: float = 1024.0,
        autocast: Literal["bf16", "fp16"] | None = None,
        compile: bool = False,
        directions: Literal["random", "hessian", "hessian_extremes"] = "random",
        animate: bool = False,
        log_scale: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            **kwargs,
        )
        self.log_scale = check_bool("log_scale", log_scale)
        self.dims = check_choice("dims", dims, (1, 2))
        self.num_points = check_int("num_points", num_points, minimum=2)
        check_grid_size("num_points", num_points, self.dims)
        self.span = check_span("span", span)
        self.normalization = check_choice("normalization", normalization, NORMALIZATIONS)
        self.ignore_bias_and_norm = check_bool("ignore_bias_and_norm", ignore_bias_and_norm)
        self.points_per_forward = check_points_per_forward(points_per_forward)
        self.points_memory_mb = check_positive_float("points_memory_mb", points_memory_mb, maximum=2.0**30)
        self.autocast = check_choice("autocast", autocast, (None, "bf16", "fp16"))
        self.compile = check_bool("compile", compile)
        self.directions = check_choice("directions", directions, DIRECTION_KINDS)
        if directions != "random":
            check_hessian_directions(directions, self.dims)
        self.animate = check_bool("animate", animate)
        self._runs: list[LandscapeResult] = []  # what the animation draws without saved files

    @property
    @override
    def state_key(self) -> str:
        if self.directions != "random":
            return self._generate_state_key(
                tag=self.tag, dims=self.dims, seed=self.seed, directions=self.directions
            )
        return self._generate_state_key(tag=self.tag, dims=self.dims, seed=self.seed)

    def cost_units(self) -> float:
        """One forward pass per grid point (and one more for the centre's metrics)."""
        return float(self.num_points**self.dims + 1)

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        check_span_fits("span", self.span, pl_module.parameters())  # before training, not at epoch end

    # ------------------------------------------------------------------ work
    @override
    def scalars(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, result: LandscapeResult
    ) -> dict[str, float]:
        scalars = super().scalars(trainer, pl_module, result)
        if trainer.world_size == 1:
            scalars.update(self._center_metrics(trainer, pl_module))
        return scalars

    def _center_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        """``{tag}/center_<name>``: the other scalars the loss function returns, at the weights."""
        loss = self.loss_function(pl_module)
        if loss is None:
            return {}
        batches = self.evaluation_batches(trainer, pl_module)
        with observing(pl_module), torch.inference_mode(False):
            metrics = evaluation_sums(pl_module, batches, loss).metrics
        return {f"{self.tag}/center_{name}": float(value) for name, value in metrics.items()}

    @override
    def compute(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> LandscapeResult:
        """The landscape of ``pl_module`` now, on the monitor's evaluation subset."""
        return compute_landscape(
            pl_module,
            self.evaluation_batches(trainer, pl_module),
            dims=self.dims,
            num_points=self.num_points,
            span=self.span,
            normalization=self.normalization,
            ignore_bias_and_norm=self.ignore_bias_and_norm,
            seed=self.seed,
            loss_fn=self.loss_function(pl_module),
            directions=self.directions,
            params=self.params,
            progress_bar=self.shows_progress(trainer),
            points_per_forward=self.points_per_forward,
            points_memory_mb=self.points_memory_mb,
            autocast=self.autocast,
            compile=self.compile,
            epoch=epoch_index(trainer),
            global_step=trainer.global_step,
        )

    @override
    def report(self, trainer: pl.Trainer, result: LandscapeResult) -> None:
        step = self.logging_step(trainer)
        figures = landscape_figures(result, log_scale=self.log_scale)
        tagged = {f"{self.tag}/{self.dims}d/{name}": fig for name, fig in figures.items()}
        self.report_figures(trainer, tagged, step, "landscapes")
        if self.dims == 2:
            vertices, faces, _ = surface_mesh(result, log_scale=self.log_scale)
            log_mesh(trainer, f"{self.tag}/2d/mesh", vertices, faces, vertices[:, 2], step)
        if self.save_results:
            name = result_file_name(self.tag, epoch_index(trainer), trainer.global_step)
            self.saved_files.append(result.save(os.path.join(output_dir(trainer, "landscapes"), name)))
        if self.animate and not self.save_results:  # the frames, without the directions
            self._runs.append(dataclasses.replace(result, directions=tuple({} for _ in result.directions)))

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if self.animate and trainer.is_global_zero and not is_fast_dev_run(trainer):
            self.write_animation(trainer)

    def write_animation(self, trainer: pl.Trainer) -> str | None:
        """The runs so far as ``{tag}-epochs.gif`` (from the saved result files, so a resumed run
        draws the epochs before it too), logged where a logger takes animations."""
        runs = [LandscapeResult.load(p) for p in self.saved_files] if self.save_results else self._runs
        if not runs:
            return None
        path = os.path.join(output_dir(trainer, "landscapes"), f"{self.tag}-epochs.gif")
        write_gif(landscape_frames(runs, log_scale=self.log_scale), path)
        log_animation(trainer, f"{self.tag}/{self.dims}d/animation", path, self.logging_step(trainer))
        return path
