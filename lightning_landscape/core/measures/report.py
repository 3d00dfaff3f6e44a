"""What a sharpness run measured, typed: each measure's result, the per-layer and per-batch views,
the spectral density and the eigenvalue-ratio map, as the functions returned them.

``SharpnessMonitor`` and ``lightning-landscape sharpness`` build a :class:`SharpnessReport`, log its
:meth:`~SharpnessReport.scalars`, save it (one self-describing ``.npz``, read back by
:func:`~lightning_landscape.core.base.results.load_result`) and draw it with
:func:`lightning_landscape.plotting.sharpness_figures`, which takes the typed parts as they are.
Files of earlier versions hold a :class:`~lightning_landscape.core.base.results.SharpnessRecord`
(values plus named arrays); :meth:`SharpnessReport.from_record` reads what of it a figure needs.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..base.distributed import sharded
from ..base.losses import LossSpec
from ..base.results import ResultFile, SharpnessRecord
from ..curvature.blocks import Blockwise, blockwise
from ..curvature.density import SpectralDensity
from ..curvature.eigenvalues import EigenvalueResult, PerBatchEigenvalues, hessian_eigenvalues
from ..curvature.eigenvalues import hessian_eigenvalues_per_batch as _per_batch_eigenvalues
from ..curvature.trace import hessian_trace
from ..landscapes.ratio_map import EigenvalueRatioMap
from ..linalg.spectrum import SLQNodes, TraceEstimate
from .registry import BasinVolumeResult, SharpnessResult

__all__ = ["PER_LAYER_MEASURES", "SharpnessReport", "per_batch", "per_layer"]

PER_LAYER_MEASURES = ("top_eigenvalue", "trace")
"""The measures a per-layer view gives, block by block."""

_LANCZOS_OPTIONS = ("tol", "max_iter", "min_iter", "params")
_TRACE_OPTIONS = ("num_probes", "method", "params")


def block_value(result: EigenvalueResult | TraceEstimate) -> float:
    """The number a block's result stands for: its top eigenvalue, or its trace."""
    return float(result.eigenvalues[0]) if isinstance(result, EigenvalueResult) else float(result.estimate)


@dataclass(frozen=True, eq=False)
class SharpnessReport(ResultFile):
    """What one sharpness run measured.

    Attributes:
        measures: measure name → its :class:`SharpnessResult` (a :class:`BasinVolumeResult` for
            ``"basin_volume"``).
        settings: what reproduces it: measures, their options, seed, number of samples, loss.
        per_layer: ``"top_eigenvalue"`` / ``"trace"`` → its :class:`Blockwise` results (one
            ``EigenvalueResult`` / ``TraceEstimate`` per block).
        per_batch: the top eigenvalue of each batch on its own.
        density: the Hessian's spectral density.
        ratio_map: Li et al.'s eigenvalue-ratio map.
        epoch: training epoch, when known.
        global_step: training step, when known.

    Example:
        >>> report = SharpnessReport({"keskar": SharpnessResult("keskar", 0.5, 0.1)}, {"seed": 0})
        >>> report.scalars()
        {'keskar': 0.5, 'center_loss': 0.1}
    """

    measures: dict[str, SharpnessResult]
    settings: dict[str, Any]
    per_layer: dict[str, Blockwise] = field(default_factory=dict)
    per_batch: PerBatchEigenvalues | None = None
    density: SpectralDensity | None = None
    ratio_map: EigenvalueRatioMap | None = None
    epoch: int | None = None
    global_step: int | None = None

    def scalars(self) -> dict[str, float]:
        """Every logged number: each measure's (:meth:`SharpnessResult.scalars`),
        ``per_layer/<measure>/<block>`` and ``per_batch_top_eigenvalue/<statistic>``."""
        values: dict[str, float] = {}
        for result in self.measures.values():
            values.update(result.scalars())
        for measure, blocks in self.per_layer.items():
            values.update({f"per_layer/{measure}/{b}": block_value(r) for b, r in blocks.items()})
        if self.per_batch is not None:
            values.update({f"per_batch_top_eigenvalue/{k}": v for k, v in self.per_batch.scalars().items()})
        return values

    @property
    def values(self) -> dict[str, float]:
        """The same as :meth:`scalars`."""
        return self.scalars()

    @classmethod
    def from_record(cls, record: SharpnessRecord) -> SharpnessReport:
        """The typed parts a :class:`SharpnessRecord` (a file of an earlier version) holds the data
        of; arrays that make no whole part (a density without its weights, say) are left out."""
        values, arrays, settings = record.values, record.arrays, record.settings
        center = values.get("center_loss", math.nan)
        measures: dict[str, SharpnessResult] = {
            name: SharpnessResult(name, values[name], center, values.get(f"{name}_stderr"))
            for name in settings.get("measures", [])
            if name in values and name != "basin_volume"
        }
        if "basin/radii" in arrays and "basin/crossed" in arrays:
            measures["basin_volume"] = BasinVolumeResult(
                "basin_volume",
                values.get("basin_volume", math.nan),
                center,
                extra=dict(settings.get("basin", {})),
                radii=arrays["basin/radii"],
                crossed=arrays["basin/crossed"],
            )
        return cls(
            measures=measures,
            settings=dict(settings),
            per_layer=_legacy_per_layer(arrays, settings),
            per_batch=_legacy_per_batch(arrays),
            density=_legacy_density(arrays, settings),
            ratio_map=_legacy_ratio_map(arrays, settings),
            epoch=record.epoch,
            global_step=record.global_step,
        )


def _legacy_density(
    arrays: Mapping[str, torch.Tensor], settings: Mapping[str, Any]
) -> SpectralDensity | None:
    if "density/nodes" not in arrays or "density/weights" not in arrays:
        return None
    nodes = arrays["density/nodes"]
    found = {"num_probes": nodes.shape[0], "num_steps": nodes.shape[-1], "seed": 0, "dim": 0}
    found.update(settings.get("density", {}))
    quadrature = SLQNodes(nodes=nodes, weights=arrays["density/weights"], dim=found["dim"])
    return SpectralDensity(quadrature, found["num_probes"], found["num_steps"], found["seed"])


def _legacy_ratio_map(
    arrays: Mapping[str, torch.Tensor], settings: Mapping[str, Any]
) -> EigenvalueRatioMap | None:
    keys = ("ratio_map/coords/0", "ratio_map/coords/1", "ratio_map/lambda_max", "ratio_map/lambda_min")
    if not all(k in arrays for k in keys):
        return None
    coords = (arrays[keys[0]], arrays[keys[1]])
    return EigenvalueRatioMap(coords, arrays[keys[2]], arrays[keys[3]], int(settings.get("seed", 0)))


def _legacy_per_batch(arrays: Mapping[str, torch.Tensor]) -> PerBatchEigenvalues | None:
    if "per_batch/top_eigenvalue" not in arrays:
        return None
    values = arrays["per_batch/top_eigenvalue"].reshape(-1, 1)
    sizes = arrays.get("per_batch/batch_sizes", torch.zeros(values.shape[0], dtype=torch.int64))
    # files of earlier versions did not record convergence per batch
    return PerBatchEigenvalues(values, sizes, torch.ones(values.shape[0], dtype=torch.bool), "largest")


def _legacy_per_layer(
    arrays: Mapping[str, torch.Tensor], settings: Mapping[str, Any]
) -> dict[str, Blockwise]:
    blocks = dict(settings.get("per_layer", {}).get("blocks", {}))
    found: dict[str, Blockwise] = {}
    for measure in PER_LAYER_MEASURES:
        values = arrays.get(f"per_layer/{measure}")
        if values is None or values.numel() != len(blocks):
            continue
        results: dict[str, Any] = {}
        for block, value in zip(blocks, values.tolist()):
            if measure == "trace":
                results[block] = TraceEstimate(value, math.nan, 0, "unknown")
            else:  # earlier files kept the value only
                one = torch.tensor([value], dtype=torch.float64)
                results[block] = EigenvalueResult(one, True, torch.full_like(one, math.nan), 0, "largest")
        found[measure] = Blockwise(blocks=blocks, results=results)
    return found


def _view_options(
    options: Mapping[str, Mapping[str, Any]], name: str, allowed: Iterable[str]
) -> dict[str, Any]:
    """The options of ``name`` that a per-layer or per-batch view takes too (its tolerances and
    iteration counts), so that every view of a measure agrees with the measure itself."""
    return {k: v for k, v in options.get(name, {}).items() if k in allowed}


def per_layer(
    model: nn.Module,
    batches: Iterable[Any],
    measures: Iterable[str],
    blocks: Any,
    *,
    loss_fn: LossSpec = None,
    seed: int = 0,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Blockwise]:
    """The top eigenvalue and the trace (those of ``measures``) of every diagonal block of the
    Hessian (``blocks``, as for :func:`~lightning_landscape.core.curvature.blocks.blockwise`).
    ``options``: measure → its options (as ``measure_kwargs``)."""
    options = options or {}
    found: dict[str, Blockwise] = {}
    if "top_eigenvalue" in measures:
        lanczos = _view_options(options, "top_eigenvalue", _LANCZOS_OPTIONS)
        found["top_eigenvalue"] = blockwise(
            hessian_eigenvalues, model, batches, blocks=blocks, loss_fn=loss_fn, seed=seed, k=1, **lanczos
        )
    if "trace" in measures:
        trace = _view_options(options, "trace", _TRACE_OPTIONS)
        found["trace"] = blockwise(
            hessian_trace, model, batches, blocks=blocks, loss_fn=loss_fn, seed=seed, **trace
        )
    return found


def per_batch(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    loss_fn: LossSpec = None,
    seed: int = 0,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> PerBatchEigenvalues:
    """The top eigenvalue of the loss on each batch on its own (on this process). One batch has no
    spread: a warning says so."""
    lanczos = _view_options(options or {}, "top_eigenvalue", _LANCZOS_OPTIONS)
    with sharded(None):  # each batch on its own, on this process
        result = _per_batch_eigenvalues(model, batches, k=1, loss_fn=loss_fn, seed=seed, **lanczos)
    if result.eigenvalues.shape[0] < 2:
        warnings.warn(
            f"per-batch curvature of {result.eigenvalues.shape[0]} batch: no spread to show; draw more "
            "samples or use smaller batches.",
            RuntimeWarning,
            stacklevel=2,
        )
    return result
