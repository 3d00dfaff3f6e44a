"""``SharpnessMonitor``: curvature and sharpness measures every few epochs."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from typing_extensions import override

from .._checks import check_bool, check_int
from ..core import measures as registry
from ..core.blocks import check_blocks
from ..core.curvature import eigenvalue_ratio_map, hessian_density
from ..core.evaluation import evaluation_subset, total_samples
from ..core.landscape import check_grid_size, progress_reporter
from ..core.measures import MEASURES, check_measure_options
from ..core.params import selected_parameters
from ..core.results import SharpnessRecord
from ..core.spectrum import check_slq_size
from ..plotting.curvature import sharpness_figures
from ..reporting import epoch_index, output_dir, result_file_name
from ..user_module import CROSS_ENTROPY, LossSpec, batch_transfer, describe_loss
from ._base import EpochMonitor

__all__ = ["SharpnessMonitor"]

MeasureName = Literal[
    "top_eigenvalue",
    "trace",
    "keskar",
    "adaptive_worst",
    "average",
    "filter_normalized_eigenvalue",
    "basin_volume",
]
# the options of "top_eigenvalue" that its per-layer and per-batch views take too
_Parts = tuple[dict[str, float], dict[str, Any], dict[str, torch.Tensor]]  # scalars, settings, arrays


class SharpnessMonitor(EpochMonitor):
    """Log Hessian curvature and sharpness measures at epoch ends, within a time budget.

    Measures (any subset, in ``measures``):

    - ``"top_eigenvalue"``: largest Hessian eigenvalue (Lanczos; :func:`hessian_eigenvalues`), and
      ``{tag}/top_eigenvalue_converged`` (1 when Lanczos met its tolerance within ``max_iter``);
    - ``"trace"``: Hutch++ trace estimate and its standard error (:func:`hessian_trace`);
    - ``"keskar"``, ``"adaptive_worst"``, ``"average"``, ``"filter_normalized_eigenvalue"``,
      ``"basin_volume"``: see :func:`lightning_landscape.sharpness`.

    Options of a measure go in ``measure_kwargs``, e.g. ``{"keskar": {"epsilon": 5e-4}}``; they
    are checked against the function's signature when the callback is built. Everything runs on the
    training accelerator, on a fixed subset of the training data, in eval mode, without touching the
    model, its gradients or any random stream.

    Scalars ``{tag}/<measure>`` (plus ``{tag}/trace_stderr``, ``{tag}/average_stderr``,
    ``{tag}/center_loss``) go through ``pl_module.log``, so ``ModelCheckpoint(monitor=
    "sharpness/top_eigenvalue")`` and ``EarlyStopping`` can use them. Logged on global rank zero at
    the step of Lightning's epoch-end metrics: with ``density=True`` the
    figure ``{tag}/hessian_density`` (stochastic Lanczos quadrature, log scale); with
    ``"basin_volume"`` the figure ``{tag}/basin_radii``; with ``eigenvalue_ratio_map=True`` the figure
    ``{tag}/eigenvalue_ratio_map`` (``|λ_min/λ_max|`` over a coarse 2D filter-normalized grid, Li et
    al.); and ``<log_dir>/sharpness/{tag}-epoch=EEE-step=SSSSSS.npz``, a self-describing
    :class:`~lightning_landscape.SharpnessRecord` (values, the arrays of the figures, settings,
    epoch, versions) that ``SharpnessRecord.load`` and ``lightning-landscape plot`` read.

    Args:
        every_n_epochs: run after every ``every_n_epochs``-th epoch, whatever it costs; ``None``
            (default): the budgeted schedule.
        budget: with ``every_n_epochs=None`` (the default), the share of training time the monitors
            of the trainer may spend together: a run that is due is skipped when it would exceed it
            (see :mod:`lightning_landscape.callbacks._base`); ``None``: every epoch.
        measures: which measures to compute.
        measure_kwargs: per-measure options.
        density: also log the Hessian spectral density.
        density_probes: SLQ probes for the density.
        density_steps: Lanczos steps per probe.
        eigenvalue_ratio_map: also log Li et al.'s eigenvalue-ratio map.
        ratio_map_points: grid points per axis of that map (each costs two Lanczos runs).
        per_layer: curvature per layer: ``True`` (one block per module with parameters), or a
            partition (``"parameter"``, or block name → parameter-name patterns; see
            :func:`~lightning_landscape.core.blocks.parameter_blocks`). For ``"top_eigenvalue"``
            and ``"trace"`` (those of them in ``measures``) the value of every diagonal block of
            the Hessian is logged as ``{tag}/per_layer/<measure>/<block>``, with the bar chart
            ``{tag}/per_layer``.
        per_batch: also the top eigenvalue of the loss on each batch of the evaluation subset on
            its own, in batches of the training loader's batch size (the batches an optimizer
            step sees; the "λ_max spectra" of the ViT landscape papers): the histogram
            ``{tag}/per_batch_top_eigenvalue`` and its ``mean``/``median``/``min``/``max``/``std``
            as ``{tag}/per_batch_top_eigenvalue/<stat>``. With several processes, each measures
            its own batches and global rank zero's are drawn.
        num_samples: size of the fixed evaluation subset of the training data.
        eval_batch_size: batch size for that subset.
        seed: seed of the subset and of every random start.
        at_train_end: also run when training ends.
        loss_fn: ``None`` (default: the module's own ``training_step`` loss), ``"cross_entropy"``,
            a method name, a function ``loss_fn(model, batch)`` or its dotted path, or a loss module
            (see :mod:`lightning_landscape.user_module`).
        save_results: write the ``.npz`` files.
        progress_bar: show a progress bar over the measures.
        tag: prefix of the logged tags and file names.
        data: draw the evaluation subset from the ``"train"`` or ``"val"`` loader.
        params: measure over the trainable parameters matching these glob patterns only (e.g.
            ``"*.lora_*"``; every measure, per layer and per batch too, unless a measure's own
            ``measure_kwargs`` give ``params``); default all of them.

    Example:
        >>> monitor = SharpnessMonitor(measures=["top_eigenvalue", "keskar"],
        ...                            measure_kwargs={"keskar": {"epsilon": 5e-4}})
        >>> SharpnessMonitor(measure_kwargs={"keskar": {"epsilonn": 1e-3}})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: `measure_kwargs['keskar']` has unknown option(s) ['epsilonn']; allowed: ['epsilon', ...
    """

    def __init__(
        self,
        every_n_epochs: int | None = None,
        measures: Sequence[MeasureName] = ("top_eigenvalue", "trace", "keskar"),
        measure_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        density: bool = False,
        density_probes: int = 4,
        density_steps: int = 40,
        eigenvalue_ratio_map: bool = False,
        ratio_map_points: int = 5,
        per_layer: bool | str | Mapping[str, Sequence[str]] = False,
        per_batch: bool = False,
        num_samples: int = 1024,
        eval_batch_size: int = 256,
        seed: int = 0,
        at_train_end: bool = True,
        loss_fn: LossSpec = None,
        save_results: bool = True,
        progress_bar: bool = True,
        tag: str = "sharpness",
        data: Literal["train", "val"] = "train",
        budget: float | None = 0.1,
        params: str | Sequence[str] | None = None,
    ) -> None:
        super().__init__(
            every_n_epochs=every_n_epochs,
            budget=budget,
            at_train_end=at_train_end,
            num_samples=num_samples,
            eval_batch_size=eval_batch_size,
            seed=seed,
            loss_fn=loss_fn,
            log_scale=False,
            save_results=save_results,
            progress_bar=progress_bar,
            tag=tag,
            data=data,
            params=params,
        )
        if isinstance(measures, str) or not measures or any(m not in MEASURES for m in measures):
            raise ValueError(f"`measures` must be a non-empty list drawn from {MEASURES}, got {measures!r}.")
        self.measures = tuple(dict.fromkeys(measures))
        self.measure_kwargs = _checked_kwargs({} if measure_kwargs is None else measure_kwargs, self.measures)
        if self.measure_kwargs.get("trace", {}).get("method") == "exact_ggn" and loss_fn != CROSS_ENTROPY:
            raise ValueError(
                "`measure_kwargs['trace']['method']` 'exact_ggn' is the Gauss-Newton trace of the fused "
                f"cross-entropy: it needs `loss_fn='cross_entropy'`, got `loss_fn={loss_fn!r}`."
            )
        self.density = check_bool("density", density)
        self.density_probes = check_int("density_probes", density_probes, minimum=1)
        self.density_steps = check_int("density_steps", density_steps, minimum=2)
        self.eigenvalue_ratio_map = check_bool("eigenvalue_ratio_map", eigenvalue_ratio_map)
        self.ratio_map_points = check_int("ratio_map_points", ratio_map_points, minimum=2)
        check_grid_size("ratio_map_points", ratio_map_points, 2)
        if per_layer is not False:
            check_blocks("per_layer", "module" if per_layer is True else per_layer)
            if not {"top_eigenvalue", "trace"} & set(self.measures):
                raise ValueError(
                    "`per_layer` gives 'top_eigenvalue' and 'trace' per block: put at least one of them "
                    f"in `measures`, got {self.measures}."
                )
        self.per_layer = "module" if per_layer is True else (per_layer or None)
        self.per_batch = check_bool("per_batch", per_batch)
        self._training_batches: tuple[Any, list[Any]] | None = None  # per_batch's subset, training-sized

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(tag=self.tag, measures=self.measures)

    def cost_units(self) -> float:
        """A rough count, corrected by every measured run: 60 forward-pass equivalents per measure
        (tens of Hessian-vector products or ascent steps), three per Lanczos step of the density,
        and two Lanczos runs per point of the ratio map."""
        units = 60.0 * len(self.measures)
        if self.density:
            units += 3.0 * self.density_probes * self.density_steps
        if self.eigenvalue_ratio_map:
            units += 120.0 * self.ratio_map_points**2
        if self.per_layer is not None:
            units += 120.0 * 4  # a few blocks of a Lanczos run and a trace each
        if self.per_batch:
            units += 60.0 * 4
        return units

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if self.density:  # its quadrature arrays must fit: refused now, not after the first epoch
            chosen = selected_parameters(pl_module, self.params)
            dim = sum(p.numel() for p in chosen.values())
            check_slq_size(self.density_probes, self.density_steps, dim, name="density_probes")
        trainable = {n for n, p in pl_module.named_parameters() if p.requires_grad}
        for measure, options in self.measure_kwargs.items():
            unknown = sorted(set(options.get("names") or ()) - trainable)
            if unknown:
                raise ValueError(
                    f"`measure_kwargs[{measure!r}]['names']` {unknown} are not trainable parameters of "
                    f"{type(pl_module).__name__}; trainable: {sorted(trainable)[:10]}..."
                )

    @property
    def last_record(self) -> SharpnessRecord | None:
        """The last run's record (``last_result``)."""
        return self.last_result

    @property
    def last_values(self) -> dict[str, float]:
        """The last run's values by measure name (empty before the first run)."""
        return {} if self.last_result is None else self.last_result.values

    @override
    def report(self, trainer: pl.Trainer, record: SharpnessRecord) -> None:
        tagged = {f"{self.tag}/{name}": fig for name, fig in sharpness_figures(record).items()}
        if tagged:
            self.report_figures(trainer, tagged, self.logging_step(trainer), "sharpness")
        if self.save_results:
            name = result_file_name(self.tag, epoch_index(trainer), trainer.global_step)
            self.saved_files.append(record.save(os.path.join(output_dir(trainer, "sharpness"), name)))

    @override
    def compute(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> SharpnessRecord:
        """Every configured measure at the current weights, as a self-describing record (values,
        the arrays its figures are drawn from, the settings that reproduce it)."""
        batches = self.evaluation_batches(trainer, pl_module)
        tasks = [partial(self._measure, measure) for measure in self.measures]
        if self.density:
            tasks.append(self._density)
        if self.eigenvalue_ratio_map:
            tasks.append(self._ratio_map)
        if self.per_layer is not None:
            tasks.append(self._per_layer)
        if self.per_batch:
            tasks.append(partial(self._per_batch, trainer))
        values: dict[str, float] = {}
        settings: dict[str, Any] = {
            "measures": list(self.measures),
            "measure_kwargs": self.measure_kwargs,
            "seed": self.seed,
            "num_samples": total_samples(batches),
            "loss": describe_loss(self.loss_fn),
            "data": self.data,
        }
        arrays: dict[str, torch.Tensor] = {}
        with progress_reporter(self.shows_progress(trainer), len(tasks), "sharpness") as on_point:
            for done, task in enumerate(tasks, start=1):
                more_values, more_settings, more_arrays = task(pl_module, batches)
                values.update(more_values)
                settings.update(more_settings)
                arrays.update(more_arrays)
                if on_point:
                    on_point(done)
        return SharpnessRecord(
            values, arrays, settings, epoch=epoch_index(trainer), global_step=trainer.global_step
        )

    def _options(self, measure: str) -> dict[str, Any]:
        """``measure_kwargs[measure]``, with the monitor's ``params`` unless they choose their own."""
        options = dict(self.measure_kwargs.get(measure, {}))
        if self.params is not None and "params" not in options and "names" not in options:
            options["params"] = self.params
        return options

    def _measure(self, name: str, pl_module: pl.LightningModule, batches: list[Any]) -> _Parts:
        outcome = registry.measure(
            pl_module,
            batches,
            name,
            loss_fn=self.loss_function(pl_module),
            seed=self.seed,
            **self._options(name),
        )
        return outcome.values, outcome.settings, outcome.arrays

    def _density(self, pl_module: pl.LightningModule, batches: list[Any]) -> _Parts:
        spectrum = hessian_density(
            pl_module,
            batches,
            num_probes=self.density_probes,
            num_steps=self.density_steps,
            loss_fn=self.loss_function(pl_module),
            seed=self.seed,
        )
        arrays = {"density/nodes": spectrum.quadrature.nodes, "density/weights": spectrum.quadrature.weights}
        settings = {
            "density": {
                "num_probes": spectrum.num_probes,
                "num_steps": spectrum.num_steps,
                "seed": spectrum.seed,
                "dim": spectrum.quadrature.dim,
            }
        }
        return {}, settings, arrays

    def _ratio_map(self, pl_module: pl.LightningModule, batches: list[Any]) -> _Parts:
        ratio = eigenvalue_ratio_map(
            pl_module,
            batches,
            num_points=self.ratio_map_points,
            loss_fn=self.loss_function(pl_module),
            seed=self.seed,
        )
        arrays = {
            "ratio_map/coords/0": ratio.coords[0],
            "ratio_map/coords/1": ratio.coords[1],
            "ratio_map/lambda_max": ratio.lambda_max,
            "ratio_map/lambda_min": ratio.lambda_min,
        }
        return {}, {}, arrays

    def _view_options(self) -> dict[str, dict[str, Any]]:
        return {measure: self._options(measure) for measure in ("top_eigenvalue", "trace")}

    def _per_layer(self, pl_module: pl.LightningModule, batches: list[Any]) -> _Parts:
        outcome = registry.per_layer(
            pl_module,
            batches,
            self.measures,
            self.per_layer,
            loss_fn=self.loss_function(pl_module),
            seed=self.seed,
            options=self._view_options(),
        )
        return outcome.values, outcome.settings, outcome.arrays

    def _per_batch(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batches: list[Any]) -> _Parts:
        """The top eigenvalue of each training-sized batch of the subset: the same samples, in
        batches of the training loader's ``batch_size`` (the evaluation batch size without one)."""
        size = getattr(self.loader(trainer), "batch_size", None) or self.eval_batch_size
        if self._training_batches is None or self._training_batches[0] != (size, pl_module.device):
            subset = evaluation_subset(
                self.loader(trainer),
                self.num_samples,
                size,
                self.seed,
                pl_module.device,
                rank=trainer.global_rank,
                world_size=trainer.world_size,
                transfer=batch_transfer(pl_module, pl_module.device, trainer.datamodule),
            )
            self._training_batches = ((size, pl_module.device), subset)
        outcome = registry.per_batch(
            pl_module,
            self._training_batches[1],
            loss_fn=self.loss_function(pl_module),
            seed=self.seed,
            options=self._view_options(),
        )
        return outcome.values, outcome.settings, outcome.arrays


def _checked_kwargs(
    kwargs: Mapping[str, Mapping[str, Any]], measures: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Reject options for measures not asked for, and options the measure does not take."""
    if not isinstance(kwargs, Mapping) or not all(isinstance(o, Mapping) for o in kwargs.values()):
        raise TypeError(
            "`measure_kwargs` must be None or a dict measure name -> dict of its options (e.g. "
            f"{{'keskar': {{'epsilon': 5e-4}}}}), got {kwargs!r}."
        )
    checked = {}
    for name, options in kwargs.items():
        if name not in measures:
            raise ValueError(
                f"`measure_kwargs` names {name!r}, which is not in `measures` {tuple(measures)}."
            )
        checked[name] = check_measure_options(name, options)
    return checked
