"""One registry of the named curvature and sharpness measures.

``SharpnessMonitor(measures=[...])`` and ``lightning-landscape sharpness --measures [...]`` name
measures; this module is where a name becomes a computation: the function that computes it, the
checks of its options (run before any work, with the function's own defaults), and what it
reports (values, the settings that reproduce it, the arrays its figures are drawn from).

Example:
    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,)))]
    >>> sorted(measure(net, data, "trace", num_probes=4).values)
    ['trace', 'trace_stderr']
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .curvature import check_eigenvalue_options, check_trace_options, hessian_eigenvalues, hessian_trace
from .evaluation import LossFn
from .sharpness import MEASURE_FUNCTIONS, BasinVolumeResult, check_sharpness_options
from .sharpness import MEASURES as SHARPNESS_MEASURES

__all__ = ["MEASURES", "MeasureOutcome", "check_measure_options", "measure", "per_batch", "per_layer"]

MEASURES = ("top_eigenvalue", "trace", *SHARPNESS_MEASURES)
"""Every measure name, in the order figures and tables list them."""

_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "top_eigenvalue": hessian_eigenvalues,
    "trace": hessian_trace,
    **MEASURE_FUNCTIONS,  # each sharpness measure's own function: its options only
}
_CHECKS: dict[str, Callable[..., Any]] = {
    "top_eigenvalue": check_eigenvalue_options,
    "trace": check_trace_options,
    **dict.fromkeys(SHARPNESS_MEASURES, check_sharpness_options),
}
# arguments a measure's options may not set: the caller's (data, loss) or the measure's identity
_FIXED = {"model", "batches", "measure", "loss_fn", "return_eigenvectors", "k", "which", "num_samples"}


@dataclass(frozen=True)
class MeasureOutcome:
    """What one measure reports.

    Attributes:
        values: name → number (the measure itself under its name, and its companions:
            ``center_loss``, ``<measure>_stderr``, ``trace_stderr``, ``top_eigenvalue_converged``,
            ``basin_volume_not_crossed``: directions that never reached the threshold, which make
            the basin volume a lower bound).
        settings: by-products that reproduce and explain it (``basin``: the basin volume's details).
        arrays: the tensors its figures are drawn from (``basin/radii``, ``basin/crossed``).
    """

    values: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, torch.Tensor] = field(default_factory=dict)


def _defaults(function: Callable[..., Any]) -> dict[str, Any]:
    """The default value of every keyword argument of ``function`` that has one."""
    parameters = inspect.signature(function).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def check_measure_options(
    name: str, options: Mapping[str, Any], where: str = "measure_kwargs"
) -> dict[str, Any]:
    """Refuse an unknown measure, an option its function does not take, or a bad option value
    (through the checks the function itself runs, with its defaults), naming ``where[name]``.

    >>> check_measure_options("trace", {"num_probes": 0})
    Traceback (most recent call last):
    ...
    ValueError: `measure_kwargs['trace']`: `num_probes` must be an integer >= 3, got 0.
    """
    if name not in _FUNCTIONS:
        raise ValueError(f"`{where}` names an unknown measure {name!r}; choose from {MEASURES}.")
    allowed = sorted(set(inspect.signature(_FUNCTIONS[name]).parameters) - _FIXED)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"`{where}[{name!r}]` has unknown option(s) {unknown}; allowed: {allowed}.")
    try:
        _CHECKS[name](**{**_defaults(_FUNCTIONS[name]), **options, "measure": name})
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"`{where}[{name!r}]`: {exc}") from exc
    return dict(options)


def measure(
    model: nn.Module,
    batches: Iterable[Any],
    name: str,
    *,
    loss_fn: LossFn | None = None,
    seed: int = 0,
    **options: Any,
) -> MeasureOutcome:
    """The measure ``name`` of ``model`` at its current weights (``options``: its function's own).

    ``top_eigenvalue`` is :func:`~lightning_landscape.core.curvature.hessian_eigenvalues` with
    ``k=1``, ``trace`` :func:`~lightning_landscape.core.curvature.hessian_trace`, the others their
    own functions in :mod:`lightning_landscape.core.sharpness` (``keskar_sharpness``,
    ``basin_volume``, ...), each taking only its own options.
    """
    check_measure_options(name, options, where="options")
    if name == "top_eigenvalue":
        top = hessian_eigenvalues(model, batches, k=1, loss_fn=loss_fn, seed=seed, **options)
        return MeasureOutcome(
            {name: float(top.eigenvalues[0]), "top_eigenvalue_converged": float(top.converged)}
        )
    if name == "trace":
        estimate = hessian_trace(model, batches, loss_fn=loss_fn, seed=seed, **options)
        return MeasureOutcome({"trace": estimate.estimate, "trace_stderr": estimate.stderr})
    result = _FUNCTIONS[name](model, batches, loss_fn=loss_fn, seed=seed, **options)
    values = {name: result.value, "center_loss": result.center_loss}
    if result.stderr is not None:
        values[f"{name}_stderr"] = result.stderr
    if not isinstance(result, BasinVolumeResult) or result.radii.numel() == 0:
        return MeasureOutcome(values)
    # directions that never reached the threshold make the value a lower bound: say how many
    values["basin_volume_not_crossed"] = float(result.extra.get("num_not_crossed", 0))
    return MeasureOutcome(
        values, {"basin": result.extra}, {"basin/radii": result.radii, "basin/crossed": result.crossed}
    )


_LANCZOS_OPTIONS = ("tol", "max_iter", "min_iter", "names", "params")
_TRACE_OPTIONS = ("num_probes", "method", "names", "params")


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
    loss_fn: LossFn | None = None,
    seed: int = 0,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> MeasureOutcome:
    """The top eigenvalue and the trace (those of ``measures``) of every diagonal block of the
    Hessian (``blocks``, as for :func:`~lightning_landscape.core.curvature.hessian_eigenvalues`):
    values ``per_layer/<measure>/<block>`` (beside, never under, ``<measure>``: a metric store
    that keeps names as paths, MLflow's, cannot hold both), arrays ``per_layer/<measure>`` in
    block order, the blocks in the settings. ``options``: measure → its options (as ``measure_kwargs``)."""
    options = options or {}
    values: dict[str, float] = {}
    arrays: dict[str, torch.Tensor] = {}
    found: dict[str, list[str]] = {}
    if "top_eigenvalue" in measures:
        top = hessian_eigenvalues(
            model, batches, k=1, loss_fn=loss_fn, seed=seed, blocks=blocks,
            **_view_options(options, "top_eigenvalue", _LANCZOS_OPTIONS),
        )  # fmt: skip
        found = top.blocks
        values.update(
            {f"per_layer/top_eigenvalue/{b}": float(r.eigenvalues[0]) for b, r in top.results.items()}
        )
        arrays["per_layer/top_eigenvalue"] = torch.stack([r.eigenvalues[0] for r in top.results.values()])
    if "trace" in measures:
        trace = hessian_trace(
            model,
            batches,
            loss_fn=loss_fn,
            seed=seed,
            blocks=blocks,
            **_view_options(options, "trace", _TRACE_OPTIONS),
        )
        found = trace.blocks
        values.update({f"per_layer/trace/{b}": r.estimate for b, r in trace.results.items()})
        arrays["per_layer/trace"] = torch.tensor(
            [r.estimate for r in trace.results.values()], dtype=torch.float64
        )
    return MeasureOutcome(values, {"per_layer": {"blocks": found}}, arrays)


def per_batch(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    loss_fn: LossFn | None = None,
    seed: int = 0,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> MeasureOutcome:
    """The top eigenvalue of the loss on each batch on its own (on this process): values
    ``per_batch_top_eigenvalue/<stat>`` (mean, median, min, max, std, num_batches), arrays
    ``per_batch/top_eigenvalue`` and ``per_batch/batch_sizes``. One batch has no spread: a warning
    says so."""
    import warnings

    from .distributed import sharded

    with sharded(None):  # each batch on its own, on this process
        result = hessian_eigenvalues(
            model, batches, k=1, loss_fn=loss_fn, seed=seed, per_batch=True,
            **_view_options(options or {}, "top_eigenvalue", _LANCZOS_OPTIONS),
        )  # fmt: skip
    if result.eigenvalues.shape[0] < 2:
        warnings.warn(
            f"per-batch curvature of {result.eigenvalues.shape[0]} batch: no spread to show; draw more "
            "samples or use smaller batches.",
            RuntimeWarning,
            stacklevel=2,
        )
    values = {f"per_batch_top_eigenvalue/{k}": v for k, v in result.scalars().items()}
    arrays = {
        "per_batch/top_eigenvalue": result.eigenvalues[:, 0],
        "per_batch/batch_sizes": result.batch_sizes,
    }
    return MeasureOutcome(values, {}, arrays)
