"""A landscape evaluated chunk by chunk: resumable, over streamed data, sharded over processes.

Li et al. computed their figures on the whole training set (51×51 grids on 50 000 CIFAR-10
images), over several GPUs, saving partial surfaces so that a long job could be restarted.
:func:`compute_landscape_in_chunks` does the same on any engine that gives a sum over processes:

- the grid's points, in row-major order, are cut into fixed chunks of ``chunk_points``; one pass
  over the data evaluates a whole chunk (each batch is read once and every point of the chunk is
  evaluated on it), so streamed data (:class:`~lightning_landscape.core.base.batches.StreamedBatches`)
  is read once per chunk, not once per point;
- the points are evaluated by the grid engine
  (:func:`~lightning_landscape.core.landscapes._grid.evaluate_chunks`);
  after each chunk the sums go through :func:`~lightning_landscape.core.base.distributed.guarded_sum`
  (inside :func:`~lightning_landscape.core.base.distributed.sharded` each process holds a shard of the
  data and every process ends with the single-process numbers), and ``on_chunk`` receives the
  partial result, with a ``computed`` mask, for the caller to save;
- ``resume`` takes such a partial result and evaluates only the chunks it lacks, after checking
  that it was computed with the same settings and directions. Chunk boundaries do not depend on
  what was done before, so a resumed run gives the uninterrupted run's numbers bit for bit (with
  the same number of processes: sharding changes the order of the sums).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from ..._checks import check_callable, check_int, check_optional_int
from ..base._inputs import evaluation_inputs
from ..base.batches import batch_size
from ..base.evaluation import check_model, loss_name
from ..base.losses import LossFn, LossSpec
from ..base.params import module_device, observing
from ..base.results import LandscapeResult
from ._grid import (
    ChunkValues,
    batched_plan,
    evaluate_chunks,
    evaluation_precision,
    linear_combination_writer,
)
from ._plan import DirectionsSpec, GridPlan
from .normalization import Normalization

__all__ = ["check_resumable", "compute_landscape_in_chunks"]

ChunkFn = Callable[[LandscapeResult], None]


def check_resumable(
    partial: LandscapeResult, settings: Mapping[str, Any], directions: Sequence[Mapping[str, torch.Tensor]]
) -> None:
    """Refuse to continue ``partial`` unless it was computed with ``settings`` and ``directions``.

    Raises:
        ValueError: naming each setting whose value differs (the file's and this run's), or the
            directions that differ.
    """
    found = partial.extra.get("settings")
    if not isinstance(found, Mapping):
        raise ValueError("`resume`: the result holds no chunked-run settings; it cannot be continued.")
    differing = [
        f"{key}: {found.get(key)!r} in the file, {value!r} now"
        for key, value in settings.items()
        if found.get(key) != value
    ]
    differing += [f"{key}: only in the file ({found[key]!r})" for key in found if key not in settings]
    if differing:
        raise ValueError(
            "`resume`: the partial result was computed with other settings ("
            + "; ".join(differing)
            + "). Continue it with the same settings, or start afresh in another file."
        )
    for axis, (saved, now) in enumerate(zip(partial.directions, directions)):
        same = saved.keys() == now.keys() and all(
            torch.equal(saved[n], now[n].detach().cpu().to(saved[n].dtype)) for n in saved
        )
        if not same:
            raise ValueError(
                f"`resume`: direction {axis} of the partial result differs from this run's (other weights, "
                "another seed or another model): it cannot be continued."
            )


def compute_landscape_in_chunks(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    dims: int = 2,
    num_points: int = 21,
    span: tuple[float, float] = (-1.0, 1.0),
    normalization: Normalization = "filter",
    ignore_bias_and_norm: bool = True,
    seed: int = 0,
    loss_fn: LossSpec = None,
    directions: DirectionsSpec = "random",
    num_samples: int | None = None,
    chunk_points: int = 64,
    points_per_forward: int | Literal["auto"] = 1,
    points_memory_mb: float = 1024.0,
    autocast: Literal["bf16", "fp16"] | None = None,
    settings: Mapping[str, Any] | None = None,
    resume: LandscapeResult | None = None,
    on_chunk: ChunkFn | None = None,
    hessian_samples: int = 1024,
    params: str | Sequence[str] | None = None,
) -> LandscapeResult:
    """The landscape of :func:`~lightning_landscape.core.landscapes.landscape.compute_landscape`, evaluated in
    chunks of grid points, each chunk in one pass over ``batches``.

    The numbers are those of ``compute_landscape`` with the same arguments (to float rounding:
    sums are taken per batch in float64). ``batches`` may be a cached list or a
    :class:`~lightning_landscape.core.base.batches.StreamedBatches` (the whole data set, read once
    per chunk); inside :func:`~lightning_landscape.core.base.distributed.sharded` it is this process's
    shard and the result is the one of all shards together.

    Args:
        model: the network; its parameters with ``requires_grad=True`` are perturbed, and restored
            exactly afterwards.
        batches: the evaluation data (on the model's device, or streamed to it).
        dims: as for ``compute_landscape``, and so are ``num_points``, ``span``,
            ``normalization``, ``ignore_bias_and_norm``, ``seed``, ``loss_fn``, ``directions``,
            ``points_per_forward``, ``points_memory_mb`` and ``autocast``; Hessian directions are
            found by Lanczos on the first ``hessian_samples`` samples of ``batches`` (of each
            process's shard).
        num_samples: read at most this many samples of ``batches`` (all if None).
        chunk_points: grid points per chunk (per pass over the data, and per call of ``on_chunk``).
        settings: what else identifies the run (a checkpoint's hash, the data split...), stored
            with the other settings under ``extra["settings"]`` and compared on ``resume``.
        resume: a partial result of an earlier call with the same settings: its chunks are kept
            and only the missing ones evaluated. A result with other settings or directions is
            refused (:func:`check_resumable`).
        on_chunk: called after each chunk with the partial result so far (``computed`` marks the
            points done), e.g. to save it; on every process alike.
        hessian_samples: the samples the Hessian directions are found on.
        params: vary only the trainable parameters matching these glob patterns (default all).

    Returns:
        The complete :class:`LandscapeResult` (``computed`` is ``None``).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,)))]
        >>> saved = []
        >>> result = compute_landscape_in_chunks(
        ...     net, data, num_points=5, chunk_points=10, on_chunk=saved.append
        ... )
        >>> [int(r.loss.isfinite().sum()) for r in saved], result.is_complete
        ([10, 20, 25], True)
    """
    check_model(model)
    plan = GridPlan.checked(
        model,
        dims=dims,
        num_points=num_points,
        span=span,
        normalization=normalization,
        ignore_bias_and_norm=ignore_bias_and_norm,
        seed=seed,
        directions=directions,
        params=params,
        loss_fn=loss_fn,
        points_per_forward=points_per_forward,
        points_memory_mb=points_memory_mb,
        autocast=autocast,
    )
    check_optional_int("num_samples", num_samples, minimum=1)
    check_int("chunk_points", chunk_points, minimum=1)
    check_callable("on_chunk", on_chunk)
    if resume is not None and not isinstance(resume, LandscapeResult):
        raise TypeError(f"`resume` must be a LandscapeResult (a partial one), got {type(resume).__name__}.")
    check_int("hessian_samples", hessian_samples, minimum=1)
    loss_fn, data = evaluation_inputs(model, batches, loss_fn, num_samples)
    run_settings = _run_settings(plan, loss_name(loss_fn), chunk_points, points_per_forward, autocast)
    if plan.from_hessian:
        run_settings["hessian_samples"] = hessian_samples
    run_settings.update(settings or {})
    state = _Progress.empty(math.prod(plan.shape))
    with observing(model) as saved:
        reference = {n: saved.parameters[n] for n in plan.names}
        hessian_batches = _first_samples(data, hessian_samples) if plan.from_hessian else None
        used, eigenvalues = plan.axes(model, reference, hessian_batches, loss_fn)
        if resume is not None:
            check_resumable(resume, run_settings, used)
            state = _Progress.of(resume, math.prod(plan.shape))
        fields = dict(
            coords=tuple(plan.coords()),
            directions=tuple({n: t.detach().cpu() for n, t in d.items()} for d in used),
            seed=plan.recorded_seed(),
            normalization=plan.normalization,
            ignore_bias_and_norm=ignore_bias_and_norm,
            bn_mode="eval",
            loss_name=loss_name(loss_fn),
            extra={**plan.extra(used, eigenvalues), "settings": run_settings},
        )
        evaluation = (points_per_forward, points_memory_mb, autocast)
        for chunk in _chunks(model, data, plan, reference, used, loss_fn, state, chunk_points, *evaluation):
            state.record(chunk)
            if on_chunk is not None:
                on_chunk(state.result(plan.shape, fields))
    return state.result(plan.shape, fields)


def _run_settings(
    plan: GridPlan, loss: str, chunk_points: int, points_per_forward: int | str, autocast: str | None
) -> dict[str, Any]:
    """What must match for a partial result to be continued (JSON values, compared on ``resume``)."""
    settings: dict[str, Any] = {
        "dims": plan.dims,
        "span": list(plan.span),
        "normalization": plan.normalization,
        "seed": plan.seed,
        "num_points": plan.num_points,
        "ignore_bias_and_norm": plan.ignore_bias_and_norm,
        "loss_name": loss,
        "chunk_points": chunk_points,
        "points_per_forward": points_per_forward,
        "autocast": autocast,
    }
    if plan.kind != "random":
        settings["directions"] = plan.kind
    if plan.params is not None:
        settings["params"] = list(plan.params)
    return settings


def _chunks(
    model: nn.Module,
    data: Iterable[Any],
    plan: GridPlan,
    reference: Mapping[str, torch.Tensor],
    used: Sequence[Mapping[str, torch.Tensor]],
    loss_fn: LossFn,
    state: _Progress,
    chunk_points: int,
    points_per_forward: int | Literal["auto"],
    points_memory_mb: float,
    autocast: str | None,
) -> Iterator[ChunkValues]:
    """The chunks ``state`` lacks, each evaluated in one pass over ``data``."""
    grid = torch.cartesian_prod(*plan.coords()).reshape(-1, plan.dims).to(module_device(model))
    writer = linear_combination_writer(model, reference, used)
    # one batch prices the activations of "auto" (a stream is not read through for it)
    pricing = [next(iter(data))] if points_per_forward == "auto" else []
    batched = batched_plan(model, pricing, reference, used, points_per_forward, points_memory_mb, loss_fn)
    with evaluation_precision(model, autocast):
        yield from evaluate_chunks(
            model,
            data,
            grid,
            writer,
            loss_fn,
            plan=batched,
            chunk_points=chunk_points,
            skip=lambda start, stop: bool(state.computed[start:stop].all()),
        )


def _first_samples(data: Iterable[Any], count: int) -> list[Any]:
    """The first batches of ``data`` holding at least ``count`` samples (a stream is read that far)."""
    taken, seen = [], 0
    for batch in data:
        taken.append(batch)
        seen += batch_size(batch)
        if seen >= count:
            break
    return taken


class _Progress:
    """The points done so far: per-point means (NaN where not done), the samples per point and
    whether every process reported an accuracy."""

    def __init__(self, loss, accuracy, computed, num_samples, with_accuracy):
        self.loss, self.accuracy, self.computed = loss, accuracy, computed
        self.num_samples, self.with_accuracy = num_samples, with_accuracy

    @classmethod
    def empty(cls, total: int) -> _Progress:
        nan = torch.full((total,), math.nan, dtype=torch.float64)
        return cls(nan, nan.clone(), torch.zeros(total, dtype=torch.bool), 0, True)

    @classmethod
    def of(cls, partial: LandscapeResult, total: int) -> _Progress:
        """Continue from a partial result: its means are kept as they are (bit for bit)."""
        computed = partial.computed
        done = torch.ones(total, dtype=torch.bool) if computed is None else computed.reshape(-1).clone()
        loss = partial.loss.reshape(-1).to(torch.float64).clone()
        accuracy = torch.full_like(loss, math.nan)
        if partial.accuracy is not None:
            accuracy = partial.accuracy.reshape(-1).to(torch.float64).clone()
        with_accuracy = partial.accuracy is not None or not bool(done.any())
        return cls(loss, accuracy, done, partial.num_samples, with_accuracy)

    def record(self, chunk: ChunkValues) -> None:
        """Store a chunk's means over every process's samples."""
        self.loss[chunk.start : chunk.stop] = chunk.loss
        if chunk.accuracy is None:
            self.with_accuracy = False
        else:
            self.accuracy[chunk.start : chunk.stop] = chunk.accuracy
        self.num_samples = chunk.num_samples
        self.computed[chunk.start : chunk.stop] = True

    def result(self, shape: list[int], fields: dict[str, Any]) -> LandscapeResult:
        complete = bool(self.computed.all())
        return LandscapeResult(
            loss=self.loss.reshape(shape).clone(),
            accuracy=self.accuracy.reshape(shape).clone() if self.with_accuracy else None,
            num_samples=self.num_samples,
            computed=None if complete else self.computed.reshape(shape).clone(),
            **fields,
        )
