"""``SharpnessMonitor``: curvature and sharpness measures every few epochs."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import lightning.pytorch as pl
from typing_extensions import override

from .._checks import check_bool, check_int
from ..core.base.batches import evaluation_subset, total_samples
from ..core.base.params import selected_parameters
from ..core.base.progress import progress_reporter
from ..core.curvature.blocks import check_blocks
from ..core.curvature.density import hessian_density
from ..core.landscapes._grid import check_grid_size
from ..core.landscapes.ratio_map import eigenvalue_ratio_map
from ..core.linalg.spectrum import check_slq_size
from ..core.measures.registry import check_measure_kwargs, measure_names
from ..core.measures.report import PER_LAYER_MEASURES, SharpnessReport, per_batch, per_layer
from ..core.measures.sharpness import sharpness
from ..plotting.curvature import sharpness_figures
from ..reporting import epoch_index, output_dir, result_file_name
from ..user_module import CROSS_ENTROPY, batch_transfer, describe_loss
from ._base import ResultMonitor, trainer_datamodule

__all__ = ["SharpnessMonitor"]


class SharpnessMonitor(ResultMonitor):
    """Log Hessian curvature and sharpness measures at epoch ends, within a time budget.

    Measures (any subset, in ``measures``):

    - ``"top_eigenvalue"``: largest Hessian eigenvalue (Lanczos; :func:`hessian_eigenvalues`), and
      ``{tag}/top_eigenvalue_converged`` (1 when Lanczos met its tolerance within ``max_iter``);
    - ``"trace"``: the Hessian's trace and its standard error (:func:`hessian_trace`: exact for
      piecewise-linear networks under the cross-entropy, a Hutch++ estimate otherwise);
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
    :class:`~lightning_landscape.SharpnessReport` (each measure's result, the density, the ratio
    map, the per-layer and per-batch results, the settings, epoch and step) that
    ``load_result`` and ``lightning-landscape plot`` read.

    Args:
        measures: which measures to compute.
        measure_kwargs: per-measure options.
        density: also log the Hessian spectral density.
        density_probes: SLQ probes for the density.
        density_steps: Lanczos steps per probe.
        eigenvalue_ratio_map: also log Li et al.'s eigenvalue-ratio map.
        ratio_map_points: grid points per axis of that map (each costs two Lanczos runs).
        per_layer: curvature per layer: ``True`` (one block per module with parameters), or a
            partition (``"parameter"``, or block name → parameter-name patterns; see
            :func:`~lightning_landscape.core.curvature.blocks.parameter_blocks`). For ``"top_eigenvalue"``
            and ``"trace"`` (those of them in ``measures``) the value of every diagonal block of
            the Hessian is logged as ``{tag}/per_layer/<measure>/<block>``, with the bar chart
            ``{tag}/per_layer``.
        per_batch: also the top eigenvalue of the loss on each batch of the evaluation subset on
            its own, in batches of the training loader's batch size (the batches an optimizer
            step sees; the "λ_max spectra" of the ViT landscape papers): the histogram
            ``{tag}/per_batch_top_eigenvalue`` and its ``mean``/``median``/``min``/``max``/``std``
            as ``{tag}/per_batch_top_eigenvalue/<stat>``. With several processes, each measures
            its own batches and global rank zero's are drawn.

        **kwargs: the options every monitor shares, declared once in
            :class:`~lightning_landscape.callbacks._base.ResultMonitor`: ``every_n_epochs``,
            ``budget``, ``at_train_end``, ``num_samples``, ``eval_batch_size``, ``seed``, ``loss_fn``,
            ``data``, ``params``, ``save_results``, ``progress_bar``, ``tag``.
    Example:
        >>> monitor = SharpnessMonitor(measures=["top_eigenvalue", "keskar"],
        ...                            measure_kwargs={"keskar": {"epsilon": 5e-4}})
        >>> SharpnessMonitor(measure_kwargs={"keskar": {"epsilonn": 1e-3}})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: `measure_kwargs['keskar']` has unknown option(s) ['epsilonn']; allowed: ['epsilon', ...
    """

    DEFAULT_TAG = "sharpness"

    def __init__(
        self,
        measures: Sequence[str] = ("top_eigenvalue", "trace", "keskar"),
        measure_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        density: bool = False,
        density_probes: int = 4,
        density_steps: int = 40,
        eigenvalue_ratio_map: bool = False,
        ratio_map_points: int = 5,
        per_layer: bool | str | Mapping[str, Sequence[str]] = False,
        per_batch: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            **kwargs,
        )
        if isinstance(measures, str) or not measures or any(m not in measure_names() for m in measures):
            raise ValueError(
                f"`measures` must be a non-empty list drawn from the registered measures {measure_names()}, "
                f"got {measures!r}."
            )
        self.measures = tuple(dict.fromkeys(measures))
        self.measure_kwargs = {
            name: options
            for name, options in check_measure_kwargs(measure_kwargs, self.measures).items()
            if options
        }
        exact_ggn = self.measure_kwargs.get("trace", {}).get("method") == "exact_ggn"
        if exact_ggn and self.loss_fn != CROSS_ENTROPY:
            raise ValueError(
                "`measure_kwargs['trace']['method']` 'exact_ggn' is the Gauss-Newton trace of the fused "
                f"cross-entropy: it needs `loss_fn='cross_entropy'`, got `loss_fn={self.loss_fn!r}`."
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
        for measure, options in self.measure_kwargs.items():  # a pattern matching nothing fails now
            if options.get("params") is not None:
                selected_parameters(
                    pl_module, options["params"], name=f"measure_kwargs[{measure!r}]['params']"
                )

    @property
    def last_report(self) -> SharpnessReport | None:
        """The last run's report (``last_result``)."""
        return self.last_result

    @property
    def last_values(self) -> dict[str, float]:
        """The last run's values by name (empty before the first run)."""
        return {} if self.last_result is None else self.last_result.scalars()

    @override
    def report(self, trainer: pl.Trainer, report: SharpnessReport) -> None:
        tagged = {f"{self.tag}/{name}": fig for name, fig in sharpness_figures(report).items()}
        if tagged:
            self.report_figures(trainer, tagged, self.logging_step(trainer), "sharpness")
        if self.save_results:
            name = result_file_name(self.tag, epoch_index(trainer), trainer.global_step)
            self.saved_files.append(report.save(os.path.join(output_dir(trainer, "sharpness"), name)))

    @override
    def compute(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> SharpnessReport:
        """Every configured measure and view at the current weights, as a typed report (each
        function's own result, and the settings that reproduce them)."""
        batches = self.evaluation_batches(trainer, pl_module)
        loss_fn = self.loss_function(pl_module)
        parts: dict[str, Any] = {"measures": {}}
        tasks: list[Callable[..., None]] = [partial(self._measure, name) for name in self.measures]
        if self.density:
            tasks.append(self._density)
        if self.eigenvalue_ratio_map:
            tasks.append(self._ratio_map)
        if self.per_layer is not None:
            tasks.append(self._per_layer)
        if self.per_batch:
            tasks.append(partial(self._per_batch, trainer))
        with progress_reporter(self.shows_progress(trainer), len(tasks), "sharpness") as on_point:
            for done, task in enumerate(tasks, start=1):
                task(pl_module, batches, loss_fn, parts)
                if on_point:
                    on_point(done)
        settings = {
            "measures": list(self.measures),
            "measure_kwargs": self.measure_kwargs,
            "seed": self.seed,
            "num_samples": total_samples(batches),
            "loss": describe_loss(self.loss_fn),
            "data": self.data,
        }
        return SharpnessReport(
            settings=settings, epoch=epoch_index(trainer), global_step=trainer.global_step, **parts
        )

    def _options(self, measure: str) -> dict[str, Any]:
        """``measure_kwargs[measure]``, with the monitor's ``params`` unless they choose their own."""
        options = dict(self.measure_kwargs.get(measure, {}))
        if self.params is not None and "params" not in options:
            options["params"] = self.params
        return options

    def _measure(
        self, name: str, pl_module: pl.LightningModule, batches: list[Any], loss_fn: Any, parts
    ) -> None:
        options = self._options(name)
        parts["measures"][name] = sharpness(
            pl_module, batches, measure=name, loss_fn=loss_fn, seed=self.seed, **options
        )

    def _density(self, pl_module: pl.LightningModule, batches: list[Any], loss_fn: Any, parts) -> None:
        parts["density"] = hessian_density(
            pl_module,
            batches,
            num_probes=self.density_probes,
            num_steps=self.density_steps,
            loss_fn=loss_fn,
            seed=self.seed,
            params=self.params,
        )

    def _ratio_map(self, pl_module: pl.LightningModule, batches: list[Any], loss_fn: Any, parts) -> None:
        parts["ratio_map"] = eigenvalue_ratio_map(
            pl_module, batches, num_points=self.ratio_map_points, loss_fn=loss_fn, seed=self.seed
        )

    def _view_options(self) -> dict[str, dict[str, Any]]:
        return {measure: self._options(measure) for measure in PER_LAYER_MEASURES}

    def _per_layer(self, pl_module: pl.LightningModule, batches: list[Any], loss_fn: Any, parts) -> None:
        parts["per_layer"] = per_layer(
            pl_module,
            batches,
            self.measures,
            self.per_layer,
            loss_fn=loss_fn,
            seed=self.seed,
            options=self._view_options(),
        )

    def _per_batch(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batches: list[Any], loss_fn: Any, parts
    ) -> None:
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
                transfer=batch_transfer(pl_module, pl_module.device, trainer_datamodule(trainer)),
            )
            self._training_batches = ((size, pl_module.device), subset)
        parts["per_batch"] = per_batch(
            pl_module,
            self._training_batches[1],
            loss_fn=loss_fn,
            seed=self.seed,
            options=self._view_options(),
        )
