"""The grid engine: the loss (and accuracy) of a model at any set of points in weight space.

Every instrument that evaluates the model at many weights goes through here: landscape planes
(:func:`~lightning_landscape.core.landscapes.landscape.compute_landscape`, chunked or not), interpolations
(:func:`~lightning_landscape.core.landscapes.interpolation.interpolate`), trajectory planes and snapshots
(:mod:`~lightning_landscape.core.landscapes.trajectory`); the eigenvalue ratio map visits its points with
:func:`for_each_point`. A point is a row of coefficients; a *writer* puts it into the model in
place (:func:`linear_combination_writer`: ``θ₀ + Σ_k c_k d_k``; an interpolation or a snapshot
writes its own). Two paths evaluate a set of points, and this module is their only caller:

- **one point per forward**: write the point, run every batch (:func:`evaluate_points` without a
  plan);
- **several points per forward**: for linear combinations, the moving tensors of a chunk of points
  stacked and mapped with ``torch.vmap`` (:func:`batched_plan`,
  :func:`~lightning_landscape.core.landscapes._batched.evaluate_grid_batched`), falling back to one point per
  forward, with a warning, where the model cannot be mapped.

Points are taken in chunks (``chunk_points``; by default all at once). Cached batches are read
point after point; streamed data (:class:`~lightning_landscape.core.base.batches.StreamedBatches`) is
read once per chunk, every point of the chunk evaluated on each batch as it comes. Inside
:func:`~lightning_landscape.core.base.distributed.sharded` each chunk's sums go through one
:func:`~lightning_landscape.core.base.distributed.guarded_sum` in the layout of :func:`shard_columns`,
so every process ends with the means over all processes' samples.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from ..._checks import (
    check_bool,
    check_choice,
    check_fits_in_memory,
    check_int,
    check_positive_float,
    check_seed,
    check_span,
)
from ..base.batches import StreamedBatches, batch_size, count_samples
from ..base.distributed import guarded_sum, is_sharded
from ..base.evaluation import evaluation_sums
from ..base.losses import LossFn, check_loss_spec
from ..base.params import module_device, named_tensors
from ..base.progress import ProgressFn
from ._batched import (
    BatchingUnsupported,
    balanced_chunk,
    evaluate_grid_batched,
    points_per_chunk,
    warn_fallback,
)
from .directions import Direction, moving_names
from .normalization import NORMALIZATIONS

__all__ = [
    "batched_plan",
    "BatchedPlan",
    "ChunkValues",
    "column_means",
    "evaluate_chunks",
    "evaluate_points",
    "for_each_point",
    "grid_coordinates",
    "linear_combination_writer",
    "PointWriter",
    "scan_grid",
    "shard_columns",
]

PointWriter = Callable[[tuple[float, ...]], None]


def linear_combination_writer(
    model: nn.Module, reference: Mapping[str, torch.Tensor], directions: Sequence[Direction]
) -> PointWriter:
    """A writer of ``θ₀ + Σ_k c_k d_k`` into ``model``, from the saved θ₀ ``reference``, in place.

    Only tensors that some direction moves are touched; a zero coefficient adds nothing, so the
    origin is θ₀ bit for bit.
    """
    tensors = named_tensors(model)
    moving = moving_names(reference, directions)
    targets = [tensors[n] for n in moving]
    base = [reference[n] for n in moving]
    axes = [[d[n] for n in moving] for d in directions]

    def write(point: tuple[float, ...]) -> None:
        if targets:
            torch._foreach_copy_(targets, base)
            for coefficient, axis in zip(point, axes):
                if coefficient != 0.0:
                    torch._foreach_add_(targets, axis, alpha=coefficient)

    return write


def for_each_point(
    points: Iterable[tuple[float, ...]],
    write_point: PointWriter,
    compute: Callable[[], Any],
    on_point: ProgressFn | None = None,
) -> list[Any]:
    """``[compute() after write_point(p) for p in points]``: the one loop that visits points one by
    one (the evaluation of one point per forward, the eigenvalue ratio map's Lanczos runs)."""
    values = []
    for done, point in enumerate(points, start=1):
        write_point(point)
        values.append(compute())
        if on_point is not None:
            on_point(done)
    return values


@dataclass(frozen=True)
class BatchedPlan:
    """The vmapped path's inputs: the saved θ₀ and direction components of the tensors that move
    (only those are stacked), and the points per forward."""

    base: dict[str, torch.Tensor]
    axes: list[dict[str, torch.Tensor]]
    points_per_forward: int


def batched_plan(
    model: nn.Module,
    pricing_batches: Iterable[Any],
    reference: Mapping[str, torch.Tensor],
    directions: Sequence[Direction],
    points_per_forward: int | Literal["auto"],
    points_memory_mb: float,
    loss_fn: LossFn | None,
) -> BatchedPlan | None:
    """The plan of the vmapped path, or ``None`` for one point per forward (``points_per_forward``
    1); ``"auto"`` sizes the chunk from ``points_memory_mb`` with the activations of the largest
    of ``pricing_batches``."""
    if points_per_forward == 1:
        return None
    moving = moving_names(reference, directions)
    base = {n: reference[n] for n in moving}
    axes = [{n: d[n] for n in moving} for d in directions]
    chunk = points_per_forward
    if chunk == "auto":
        budget = int(points_memory_mb * 2**20)
        chunk = points_per_chunk(
            model, pricing_batches, sum(t.numel() for t in base.values()), budget, loss_fn
        )
    return BatchedPlan(base, axes, int(chunk))


def shard_columns(loss_sum: torch.Tensor, correct_sum: torch.Tensor | None, count: float) -> torch.Tensor:
    """Per point, what one process adds to the sum over processes: the columns ``[loss sum,
    correct sum, has accuracy, samples, 1]`` (float64), so that after the sum the means over all
    processes' samples, and whether every process had an accuracy, can be read back
    (:func:`column_means`)."""
    loss_sum = loss_sum.double()
    has_accuracy = torch.full_like(loss_sum, float(correct_sum is not None))
    correct_sum = torch.zeros_like(loss_sum) if correct_sum is None else correct_sum.double()
    ones = torch.ones_like(loss_sum)
    return torch.stack([loss_sum, correct_sum, has_accuracy, ones * count, ones], dim=1)


def column_means(total: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """``(mean loss, mean accuracy or None, samples)`` per point from summed :func:`shard_columns`;
    the accuracy is ``None`` unless every process reported one."""
    loss_sum, correct, has_accuracy, samples, processes = total.unbind(dim=1)
    with_accuracy = bool((has_accuracy == processes).all())
    return loss_sum / samples, (correct / samples if with_accuracy else None), samples


@dataclass(frozen=True)
class ChunkValues:
    """The points ``start:stop`` evaluated: per-point means over every process's samples (float64,
    CPU), the accuracy ``None`` when not recorded and NaN where the loss is NaN."""

    start: int
    stop: int
    loss: torch.Tensor
    accuracy: torch.Tensor | None
    num_samples: int


def _group_means(model, group, points, write_point, plan, loss_fn, on_point):
    """Per-point means (loss, accuracy or None) over the batches of ``group``, by one path."""
    if plan is not None:
        chunk = balanced_chunk(points.shape[0], min(plan.points_per_forward, points.shape[0]))
        return evaluate_grid_batched(model, group, plan.base, plan.axes, points, chunk, loss_fn, on_point)
    as_tuples = [tuple(p) for p in points.tolist()]
    sums = for_each_point(as_tuples, write_point, lambda: evaluation_sums(model, group, loss_fn), on_point)
    recorded = all(s.accuracy is not None for s in sums)
    loss = torch.stack([s.loss for s in sums])
    return loss, (torch.stack([s.accuracy for s in sums]) if recorded else None)


def _local_means(model, batches, points, write_point, plan, loss_fn, on_point):
    """Per-point means over this process's data: cached batches as one group, point after point;
    a stream batch by batch (each batch read once for every point of ``points``)."""
    if not isinstance(batches, StreamedBatches):
        return _group_means(model, batches, points, write_point, plan, loss_fn, on_point)
    loss = torch.zeros(points.shape[0], dtype=torch.float64, device=points.device)
    correct, count, with_accuracy = torch.zeros_like(loss), 0, True
    for batch in batches:
        size = batch_size(batch)
        means, accuracy = _group_means(model, [batch], points, write_point, plan, loss_fn, None)
        loss += means.double() * size
        with_accuracy = with_accuracy and accuracy is not None
        if with_accuracy:
            correct += accuracy.double() * size
        count += size
    if on_point is not None:
        on_point(points.shape[0])
    return loss / count, (correct / count if with_accuracy else None)


def _chunk_means(model, batches, points, write_point, plan, loss_fn, on_point):
    """``(loss, accuracy or None, samples)`` for ``points``: this process's means, or, inside
    :func:`~lightning_landscape.core.base.distributed.sharded`, the means over every process."""
    if not is_sharded():
        loss, accuracy = _local_means(model, batches, points, write_point, plan, loss_fn, on_point)
        return loss, accuracy, count_samples(batches)
    count = float(count_samples(batches))

    def local_columns() -> torch.Tensor:
        loss, accuracy = _local_means(model, batches, points, write_point, plan, loss_fn, on_point)
        correct = None if accuracy is None else accuracy.double() * count
        return shard_columns(loss.double() * count, correct, count)

    total = guarded_sum(local_columns, shape=(points.shape[0], 5), dtype=torch.float64, device=points.device)
    loss, accuracy, samples = column_means(total)
    return loss, accuracy, int(samples[0]) if samples.numel() else 0


def evaluate_chunks(
    model: nn.Module,
    batches: Iterable[Any],
    points: torch.Tensor,
    write_point: PointWriter,
    loss_fn: LossFn | None = None,
    *,
    plan: BatchedPlan | None = None,
    chunk_points: int | None = None,
    skip: Callable[[int, int], bool] | None = None,
    on_point: ProgressFn | None = None,
) -> Iterator[ChunkValues]:
    """Evaluate the rows of ``points`` (one row of coefficients per point) chunk by chunk.

    The caller is responsible for eval mode, ``no_grad`` and restoring the model afterwards.

    Args:
        model: the module the points are written into.
        batches: cached batches on the model's device, or a stream (read once per chunk); this
            process's shard inside ``sharded``.
        points: ``(num_points, k)`` coefficients, on the model's device.
        write_point: writes a point (a tuple of floats) into the model.
        loss_fn: ``loss_fn(model, batch)``, or ``None`` for cross-entropy on ``(x, y)``.
        plan: the vmapped path (:func:`batched_plan`; linear combinations only), or ``None``. A model
            ``vmap`` cannot map falls back to one point per forward with a warning, from the
            chunk that failed on.
        chunk_points: points per chunk (default: all of them in one).
        skip: ``skip(start, stop)`` true for a chunk to leave out (already computed).
        on_point: called with the number of points done so far, from 0 to ``num_points``.

    Yields:
        One :class:`ChunkValues` per evaluated chunk, in order.
    """
    total = points.shape[0]
    size = total if chunk_points is None else chunk_points
    for start in range(0, total, max(size, 1)):
        stop = min(start + size, total)
        if skip is not None and skip(start, stop):
            continue
        chunk = points[start:stop]
        progress = None if on_point is None else (lambda done, start=start: on_point(start + done))
        try:
            loss, accuracy, samples = _chunk_means(
                model, batches, chunk, write_point, plan, loss_fn, progress
            )
        except BatchingUnsupported as exc:
            warn_fallback(model, exc.__cause__ or exc)
            plan = None  # for this chunk and the next ones
            loss, accuracy, samples = _chunk_means(
                model, batches, chunk, write_point, None, loss_fn, progress
            )
        loss = loss.to("cpu", torch.float64)
        if accuracy is not None:  # NaN logits make argmax meaningless: no accuracy where the loss is NaN
            accuracy = accuracy.to("cpu", torch.float64).masked_fill(loss.isnan(), math.nan)
        yield ChunkValues(start, stop, loss, accuracy, int(samples))


def evaluate_points(
    model: nn.Module,
    batches: Iterable[Any],
    points: Iterable[tuple[float, ...]] | torch.Tensor,
    write_point: PointWriter,
    loss_fn: LossFn | None = None,
    on_point: ProgressFn | None = None,
    *,
    plan: BatchedPlan | None = None,
    chunk_points: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Every point of ``points`` written into ``model`` with ``write_point`` and evaluated on
    ``batches`` (:func:`evaluate_chunks`, all chunks together).

    Returns:
        ``(loss, accuracy)`` as 1-D float64 CPU tensors, one entry per point; accuracy is ``None``
        when it is not recorded, and NaN where the loss is NaN.
    """
    if not isinstance(points, torch.Tensor):
        rows = [tuple(p) for p in points]
        points = torch.tensor(rows, dtype=torch.float64).reshape(len(rows), -1 if rows else 0)
    points = points.to(module_device(model))
    chunks = list(
        evaluate_chunks(
            model,
            batches,
            points,
            write_point,
            loss_fn,
            plan=plan,
            chunk_points=chunk_points,
            on_point=on_point,
        )
    )
    if not chunks:
        return torch.zeros(0, dtype=torch.float64), None
    loss = torch.cat([c.loss for c in chunks])
    accuracies = [c.accuracy for c in chunks if c.accuracy is not None]
    return loss, (torch.cat(accuracies) if len(accuracies) == len(chunks) else None)


def scan_grid(
    model: nn.Module,
    batches: Iterable[Any],
    reference: Mapping[str, torch.Tensor],
    directions: Sequence[Direction],
    coords: Sequence[torch.Tensor],
    loss_fn: LossFn | None = None,
    on_point: ProgressFn | None = None,
    points_per_forward: int | Literal["auto"] = 1,
    points_memory_mb: float = 1024.0,
    compile: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Evaluate ``model`` at every point ``θ₀ + Σ_k c_k d_k`` of the grid ``coords``.

    The caller is responsible for eval mode, ``no_grad`` and restoring the model afterwards
    (:func:`~lightning_landscape.core.landscapes.landscape.compute_landscape` does all three).

    Args:
        model: the module whose parameters (or buffers) are overwritten in place.
        batches: the fixed evaluation batches, already on the model's device.
        reference: name → saved θ₀ for every tensor a direction may move.
        directions: one dict name → tensor per axis (names of ``reference``).
        coords: one 1-D tensor of coefficients per axis.
        loss_fn: ``loss_fn(model, batch)``, or ``None`` for cross-entropy on ``(x, y)``.
        on_point: called with the number of grid points done after each point (or chunk).
        points_per_forward: grid points per forward pass; above 1 (or ``"auto"``: as many as
            ``points_memory_mb`` allows) they are stacked and mapped with ``torch.vmap``, falling
            back to one point per forward, with a warning, where the model cannot be mapped.
        points_memory_mb: memory for the stacked parameters and activations of one batched forward.
        compile: run the one-point-per-forward path through ``torch.compile(model)``.

    Returns:
        ``(loss, accuracy)`` on CPU in float64 with shape ``[len(c) for c in coords]``; accuracy is
        ``None`` when it is not recorded.
    """
    shape = [len(c) for c in coords]
    grid = torch.cartesian_prod(*coords).reshape(-1, len(coords))
    plan = batched_plan(model, batches, reference, directions, points_per_forward, points_memory_mb, loss_fn)
    writer = linear_combination_writer(model, reference, directions)
    forward: Any = torch.compile(model) if compile and plan is None else model  # shares the written tensors
    loss, accuracy = evaluate_points(forward, batches, grid, writer, loss_fn, on_point, plan=plan)
    return loss.reshape(shape), None if accuracy is None else accuracy.reshape(shape)


GRID_BYTES_PER_POINT = 40
"""What a landscape holds per grid point: its coefficients, loss, accuracy and done flag, and the
per-chunk sums (an estimate, for refusing grids that could never fit in memory)."""


def check_grid_size(name: str, num_points: int, dims: int) -> None:
    """Refuse ``num_points`` per axis whose ``dims``-dimensional grid could never fit in memory."""
    check_fits_in_memory(
        name, num_points, float(num_points) ** dims * GRID_BYTES_PER_POINT, f"a {num_points}^{dims} grid"
    )


def check_points_per_forward(value: Any) -> int | Literal["auto"]:
    """``points_per_forward`` must be a positive integer or ``"auto"``."""
    if value == "auto" and isinstance(value, str):
        return "auto"
    return check_int("points_per_forward", value, minimum=1)


def check_grid_arguments(
    *,
    dims: Any,
    num_points: Any,
    span: Any,
    normalization: Any,
    ignore_bias_and_norm: Any,
    seed: Any,
    loss_fn: Any,
    points_per_forward: Any,
    points_memory_mb: Any,
    autocast: Any,
) -> tuple[float, float]:
    """Refuse a bad argument of a landscape grid, naming it; returns ``span`` as floats."""
    check_choice("dims", dims, (1, 2))
    check_int("num_points", num_points, minimum=2)
    check_grid_size("num_points", num_points, dims)
    span = check_span("span", span)
    check_choice("normalization", normalization, NORMALIZATIONS)
    check_bool("ignore_bias_and_norm", ignore_bias_and_norm)
    check_seed("seed", seed)
    check_loss_spec("loss_fn", loss_fn)
    check_points_per_forward(points_per_forward)
    check_positive_float("points_memory_mb", points_memory_mb, maximum=2.0**30)
    check_choice("autocast", autocast, (None, "bf16", "fp16"))
    return span


@contextlib.contextmanager
def evaluation_precision(model: nn.Module, autocast: str | None) -> Iterator[None]:
    """``torch.autocast`` on the model's device in ``"bf16"``/``"fp16"``, or nothing for ``None``."""
    if autocast is None:
        yield
        return
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[autocast]
    # no cast cache: it would keep the half copy of a weight after the grid writes the next point
    with torch.autocast(device_type=module_device(model).type, dtype=dtype, cache_enabled=False):
        yield


def grid_coordinates(span: tuple[float, float], num_points: int) -> torch.Tensor:
    """``num_points`` evenly spaced float64 coefficients from ``span[0]`` to ``span[1]``.

    On a symmetric span with an odd number of points the middle coefficient is exactly 0, so the
    centre of the grid is θ₀ itself.

    >>> grid_coordinates((-1.0, 1.0), 5)
    tensor([-1.0000, -0.5000,  0.0000,  0.5000,  1.0000], dtype=torch.float64)
    """
    low, high = span
    steps = torch.arange(num_points, dtype=torch.float64) / (num_points - 1)
    return low + (high - low) * steps
