"""Several grid points per forward pass: ``torch.func.functional_call`` under ``torch.vmap``.

A small model leaves the device idle on one forward pass: a 64-unit MLP on 1024 samples is a few
tiny matrix products, and the per-call overhead dominates. Stacking the parameters of ``C`` grid
points, ``θ₀ + a_j·d₀ + b_j·d₁`` for ``j < C``, into tensors with a leading dimension of ``C`` and
mapping the forward over it with ``vmap`` turns those products into batched ones, one call for
``C`` points. Only the tensors some direction moves are stacked; the rest, and the buffers (BatchNorm
running statistics), are shared. The model's own tensors are never written.

The chunk size ``C`` comes from a memory budget: the stacked parameters plus the activations of one
forward (counted once, on the first batch, with forward hooks on the leaf modules), times ``C``.

``vmap`` cannot map every module: BatchNorm in train mode updates its statistics in place, and a
forward that calls ``.item()`` or branches on data fails. Then :func:`evaluate_grid_batched` raises
:class:`BatchingUnsupported` and the caller falls back to the sequential path, warning once per
model class.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..base.batches import batch_size
from ..base.evaluation import ACCURACY_KEYS, _full_precision, cross_entropy_and_correct, loss_output
from ..base.losses import LossFn, check_class_logits, is_cross_entropy
from ..base.params import named_tensors

__all__ = [
    "BatchingUnsupported",
    "evaluate_grid_batched",
    "points_per_chunk",
    "warn_fallback",
]

_WARNED: set[type] = set()


class BatchingUnsupported(RuntimeError):
    """``vmap`` could not map the model's forward (or the loss); use the sequential path."""


def warn_fallback(model: nn.Module, reason: BaseException) -> None:
    """Warn, once per model class, that the batched path fell back to the sequential one."""
    if type(model) in _WARNED:
        return
    _WARNED.add(type(model))
    warnings.warn(
        f"lightning_landscape: cannot evaluate several grid points per forward for "
        f"{type(model).__name__} with torch.vmap ({type(reason).__name__}: {str(reason)[:200]}); "
        "falling back to one point per forward (same numbers, slower).",
        RuntimeWarning,
        stacklevel=3,
    )


class _LossOf(nn.Module):
    """``loss_fn(model, batch)`` as a module, so that ``functional_call`` can swap its tensors.

    Returns ``[loss, accuracy]`` (accuracy 0 when the loss function reports none: then
    ``has_accuracy`` is False after the call).
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn
        self.has_accuracy = False

    def forward(self, batch: Any) -> torch.Tensor:
        loss, metrics = loss_output(self.loss_fn(self.model, batch))
        key = next((k for k in ACCURACY_KEYS if k in metrics), None)
        self.has_accuracy = key is not None
        accuracy = metrics[key].to(loss) if key is not None else torch.zeros_like(loss)
        return torch.stack([_full_precision(loss), _full_precision(accuracy)])


def _activation_numel(model: nn.Module, batch: Any, loss_fn: LossFn | None) -> int:
    """Elements produced by the leaf modules in one forward on ``batch`` (no gradients)."""
    total = 0

    def count(module, inputs, output) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel()

    handles = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(batch[0]) if is_cross_entropy(loss_fn) else loss_fn(model, batch)  # noqa: B018
    finally:
        for handle in handles:
            handle.remove()
    return total


def points_per_chunk(
    model: nn.Module,
    batches: Iterable[Any],
    moving_numel: int,
    memory_budget_bytes: int,
    loss_fn: LossFn | None = None,
) -> int:
    """How many grid points fit in ``memory_budget_bytes`` per vmapped forward (at least 1).

    Per point: the stacked moving parameters, plus twice the activations of one forward on the
    largest batch (inputs and outputs of each layer live together).
    """
    largest = max(batches, key=batch_size)
    element = next(iter(model.parameters())).element_size()
    per_point = element * (moving_numel + 2 * _activation_numel(model, largest, loss_fn))
    return max(1, memory_budget_bytes // max(per_point, 1))


def _stack_points(
    coefficients: torch.Tensor, reference: Sequence[torch.Tensor], axes: Sequence[Sequence[torch.Tensor]]
) -> list[torch.Tensor]:
    """``[θ₀ + Σ_k c_jk d_k for j]`` stacked along a new leading dimension, for every moving tensor."""
    stacked = []
    for i, base in enumerate(reference):
        out = base.unsqueeze(0).repeat(coefficients.shape[0], *([1] * base.ndim))
        for k, axis in enumerate(axes):
            scale = coefficients[:, k].to(base.dtype).view(-1, *([1] * base.ndim))
            out.add_(scale * axis[i].unsqueeze(0))
        stacked.append(out)
    return stacked


def evaluate_grid_batched(
    model: nn.Module,
    batches: Iterable[Any],
    reference: Mapping[str, torch.Tensor],
    directions: Sequence[Mapping[str, torch.Tensor]],
    points: torch.Tensor,
    chunk: int,
    loss_fn: LossFn | None = None,
    on_point=None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Loss (and accuracy) at ``θ₀ + Σ_k points[j, k]·d_k`` for every row ``j`` of ``points``.

    ``reference`` holds the saved θ₀ of exactly the tensors that move (name them with
    :func:`~lightning_landscape.core.landscapes.directions.moving_names`), ``directions`` their
    components; every other parameter and buffer of ``model`` is shared by all points. Call in eval
    mode under ``no_grad`` (:func:`~lightning_landscape.core.landscapes.landscape.compute_landscape`
    does). The model's
    tensors are read, never written.

    Returns:
        ``(loss, accuracy)`` as 1-D device tensors, one entry per point (per-sample means over
        ``batches``); accuracy is ``None`` for a custom loss or outputs that are not class logits.

    Raises:
        BatchingUnsupported: ``vmap`` cannot map this model or loss.
    """
    from torch.func import functional_call, vmap

    moving = list(reference)
    fixed = {n: t for n, t in named_tensors(model).items() if n not in reference}
    base = [reference[n] for n in moving]
    axes = [[d[n] for n in moving] for d in directions]
    target = model if is_cross_entropy(loss_fn) else _LossOf(model, loss_fn)
    prefix = "" if is_cross_entropy(loss_fn) else "model."
    fixed = {prefix + n: t for n, t in fixed.items()}

    def forward(stacked: list[torch.Tensor], inputs: Any) -> torch.Tensor:
        tensors = {**fixed, **{prefix + n: t for n, t in zip(moving, stacked)}}
        return functional_call(target, tensors, (inputs,))

    mapped = vmap(forward, in_dims=(0, None))
    sizes = [batch_size(b) for b in batches]
    total = sum(sizes)
    losses: list[torch.Tensor] = []
    accuracies: list[torch.Tensor] = []
    with_accuracy = True
    done = 0
    for start in range(0, points.shape[0], chunk):
        stacked = _stack_points(points[start : start + chunk], base, axes)
        loss = torch.zeros(stacked[0].shape[0] if stacked else 1, dtype=torch.float64, device=points.device)
        correct = torch.zeros_like(loss)
        for batch, size in zip(batches, sizes):
            try:
                if not is_cross_entropy(loss_fn):
                    pieces = mapped(stacked, batch).double()
                    loss += pieces[:, 0] * size
                    correct += pieces[:, 1] * size
                    with_accuracy = with_accuracy and bool(target.has_accuracy)
                    continue
                logits = _full_precision(mapped(stacked, batch[0]))
            except Exception as exc:  # vmap's refusals are plain RuntimeErrors and the like
                raise BatchingUnsupported(str(exc)) from exc
            target_y = batch[1]
            check_class_logits(logits[0], target_y)
            point_losses, point_corrects = vmap(cross_entropy_and_correct, in_dims=(0, None))(
                logits, target_y
            )
            loss += point_losses.double()
            correct += point_corrects.double()
        losses.append(loss / total)
        accuracies.append(correct / total)
        done += loss.shape[0]
        if on_point is not None:
            on_point(done)
    loss = torch.cat(losses)
    return loss, (torch.cat(accuracies) if with_accuracy else None)


def balanced_chunk(num_points: int, chunk: int) -> int:
    """The smallest chunk size giving the same number of chunks (equal-sized chunks vectorize best)."""
    chunks = math.ceil(num_points / chunk)
    return math.ceil(num_points / chunks)
