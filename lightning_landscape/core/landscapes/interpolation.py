"""1D linear interpolation between two models (Goodfellow et al. 2015; Li et al. 2018, Fig. 2)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import torch
from torch import nn

from ..._checks import check_int, check_params, check_span
from ..base._inputs import evaluation_inputs
from ..base.batches import total_samples
from ..base.evaluation import check_model, loss_name
from ..base.losses import LossSpec
from ..base.params import apart_from, named_tensors, observing, selected_parameters
from ..base.progress import ProgressFn, check_progress, progress_reporter
from ..base.results import LandscapeResult, library_versions
from ._grid import PointWriter, check_grid_size, evaluate_points, grid_coordinates
from .directions import check_span_fits

__all__ = ["interpolate", "interpolation_coordinates"]

State = Mapping[str, torch.Tensor]


def interpolation_coordinates(span: tuple[float, float], num_points: int) -> torch.Tensor:
    """``num_points`` evenly spaced α, plus exactly 0 and 1 when they lie in the range.

    A grid value within a millionth of a step of 0 or 1 is snapped to it; otherwise 0 or 1 is
    inserted, so the two models themselves are always on the grid.

    >>> interpolation_coordinates((-0.5, 1.5), 5).tolist()
    [-0.5, 0.0, 0.5, 1.0, 1.5]
    >>> interpolation_coordinates((-1.0, 2.0), 4).tolist()
    [-1.0, 0.0, 1.0, 2.0]
    >>> len(interpolation_coordinates((-0.5, 1.5), 51))
    53
    """
    alphas = grid_coordinates(span, num_points)
    step = (span[1] - span[0]) / (num_points - 1)
    for anchor in (0.0, 1.0):
        if not span[0] <= anchor <= span[1]:
            continue
        nearest = int((alphas - anchor).abs().argmin())
        if abs(float(alphas[nearest]) - anchor) <= 1e-6 * step:
            alphas[nearest] = anchor
        else:
            alphas = torch.cat([alphas, torch.tensor([anchor], dtype=alphas.dtype)]).sort().values
    return alphas


def _state(state: Any, name: str, model: nn.Module) -> State:
    """Accept a state dict, a module, or a Lightning checkpoint dict (with ``"state_dict"``); what
    shares memory with ``model`` (its own live state) is copied, so evaluating cannot change it."""
    if isinstance(state, nn.Module):
        state = state.state_dict()
    elif isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    elif not isinstance(state, Mapping):
        raise TypeError(
            f"`{name}` must be a state dict, a module or a checkpoint dict, got {type(state).__name__}."
        )
    return cast(Mapping[str, torch.Tensor], apart_from(model, state))  # a state dict's values


def _interpolation_writer(
    targets: list[torch.Tensor], a: list[torch.Tensor], b: list[torch.Tensor]
) -> PointWriter:
    """Writes ``(1 − α)·θ_a + α·θ_b``: exactly θ_a at α = 0 and exactly θ_b at α = 1."""

    def write(point: tuple[float, ...]) -> None:
        (alpha,) = point
        torch._foreach_copy_(targets, a)
        if alpha != 0.0:
            torch._foreach_mul_(targets, 1.0 - alpha)
            torch._foreach_add_(targets, b, alpha=alpha)

    return write


def check_states_hold(names: Sequence[str], states: Mapping[str, State]) -> None:
    """Refuse a state (argument name → state dict) that lacks any of ``names``, naming it."""
    for label, state in states.items():
        missing = [n for n in names if n not in state]
        if missing:
            raise ValueError(
                f"`{label}` lacks {missing[:5]}{'...' if len(missing) > 5 else ''} of the model."
            )


def interpolate(
    model: nn.Module,
    batches: Iterable[Any],
    state_a: Any,
    state_b: Any,
    *,
    num_points: int = 51,
    span: tuple[float, float] = (-0.5, 1.5),
    loss_fn: LossSpec = None,
    progress_bar: bool | ProgressFn = False,
    num_samples: int | None = None,
    params: str | Sequence[str] | None = None,
) -> LandscapeResult:
    """Loss and accuracy along ``θ(α) = (1 − α)·θ_a + α·θ_b``, evaluated in ``model``.

    Every parameter and every floating-point buffer is interpolated, BatchNorm running means and
    variances included (the paper's ``--dir_type states``: without them the loss of two separately
    trained solutions is wrong on a shared plot); integer buffers such as ``num_batches_tracked``
    keep the model's value. The grid always contains α = 0 and α = 1, where the weights are exactly
    θ_a and θ_b. The model is evaluated in eval mode without gradients and restored exactly.

    Outside [0, 1] an extrapolated BatchNorm running variance can turn negative (when one model's
    variance is less than a third of the other's at α = 1.5, say); the loss there is NaN, recorded
    as diverged and masked in plots, as it would be in the paper's code.

    Args:
        model: a module of the architecture of both states (its own weights do not matter).
        batches: evaluation batches (e.g. a training or validation ``DataLoader``).
        state_a: θ_a: a ``state_dict()``, a module, or a Lightning checkpoint dict.
        state_b: θ_b, likewise.
        num_points: evenly spaced α values (0 and 1 are added if not among them).
        span: ``(low, high)`` range of α.
        loss_fn: the loss: any form of :mod:`~lightning_landscape.core.base.losses`
            (default: the model's own ``training_step``, else the cross-entropy of ``(x, y)`` class logits).
        progress_bar: show a progress bar (``True``) or call ``progress_bar(points_done)`` after each
            point.
        num_samples: read at most this many samples from ``batches``.
        params: interpolate only the trainable parameters matching these glob patterns (and every
            floating-point buffer); the other parameters keep the model's own values.

    Returns:
        A 1D :class:`LandscapeResult` whose ``coords[0]`` are the α values and whose single
        direction is ``θ_b − θ_a`` (``extra["kind"] == "interpolation"``).

    Example:
        >>> a, b = nn.Linear(3, 2), nn.Linear(3, 2)
        >>> data = [(torch.randn(8, 3), torch.randint(0, 2, (8,)))]
        >>> result = interpolate(a, data, a.state_dict(), b.state_dict(), num_points=5)
        >>> result.coords[0].tolist()
        [-0.5, 0.0, 0.5, 1.0, 1.5]
    """
    check_model(model)
    check_int("num_points", num_points, minimum=2)
    check_grid_size("num_points", num_points, 1)
    span = check_span("span", span)
    check_span_fits("span", span, model.parameters())
    check_progress("progress_bar", progress_bar)
    a, b = _state(state_a, "state_a", model), _state(state_b, "state_b", model)
    tensors = named_tensors(model)
    names = [n for n, t in tensors.items() if t.is_floating_point()]
    if params is not None:  # the chosen parameters and every float buffer; the rest keeps the model's
        chosen = set(selected_parameters(model, params))
        parameters = {n for n, _ in model.named_parameters()}
        names = [n for n in names if n in chosen or n not in parameters]
    check_states_hold(names, {"state_a": a, "state_b": b})
    loss_fn, cached = evaluation_inputs(model, batches, loss_fn, num_samples)
    alphas = interpolation_coordinates(span, num_points)
    with observing(model), progress_reporter(progress_bar, len(alphas), "interpolation") as on_point:
        targets = [tensors[n] for n in names]
        theta_a = [a[n].detach().to(tensors[n]) for n in names]
        theta_b = [b[n].detach().to(tensors[n]) for n in names]
        writer = _interpolation_writer(targets, theta_a, theta_b)
        points = [(alpha,) for alpha in alphas.tolist()]
        loss, accuracy = evaluate_points(model, cached, points, writer, loss_fn, on_point)
    direction = {n: (tb - ta).cpu() for n, ta, tb in zip(names, theta_a, theta_b)}
    return LandscapeResult(
        coords=(alphas,),
        loss=loss,
        accuracy=accuracy,
        directions=(direction,),
        seed=None,
        normalization=None,
        ignore_bias_and_norm=False,
        bn_mode="eval",
        num_samples=total_samples(cached),
        loss_name=loss_name(loss_fn),
        extra={
            "versions": library_versions(),
            "kind": "interpolation",
            "span": list(span),
            **({} if params is None else {"params": check_params("params", params)}),
        },
    )
