"""Filter-normalized 1D and 2D loss landscapes (Li et al. 2018), computed in place.

The model is evaluated at ``θ₀ + a·d₀ (+ b·d₁)`` for every grid point, where θ₀ is a saved copy of
the parameters. Each point is written from θ₀ afresh (``copy``, then ``add``), never accumulated,
with ``torch._foreach_*`` over the parameters that actually move; no model copies are made. The
model runs in eval mode (BatchNorm on its running statistics, dropout off) without gradients, and
is restored exactly afterwards (see :mod:`lightning_landscape.core.base.params`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

from torch import nn

from ..._checks import (
    check_bool,
    check_optional_int,
)
from ..base._inputs import evaluation_inputs
from ..base.batches import total_samples
from ..base.evaluation import check_model, loss_name
from ..base.losses import LossSpec
from ..base.params import observing
from ..base.progress import ProgressFn, check_progress, progress_reporter
from ..base.results import LandscapeResult
from ._grid import (
    evaluation_precision,
    scan_grid,
)
from ._plan import DirectionsSpec, GridPlan
from .normalization import Normalization

__all__ = ["compute_landscape"]


def compute_landscape(
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
    progress_bar: bool | ProgressFn = False,
    points_per_forward: int | Literal["auto"] = 1,
    points_memory_mb: float = 1024.0,
    autocast: Literal["bf16", "fp16"] | None = None,
    compile: bool = False,
    epoch: int | None = None,
    global_step: int | None = None,
    params: str | Sequence[str] | None = None,
) -> LandscapeResult:
    """Loss (and accuracy) of ``model`` on a 1D or 2D grid around its current weights.

    The grid point ``(a, b)`` is ``θ₀ + a·d₀ + b·d₁``. Directions are Gaussian, drawn from a private
    generator seeded with ``seed`` on the parameters' device, then normalized to the current
    weights, so the same seed gives comparable landscapes at every epoch. The model is evaluated in
    eval mode without gradients on ``batches`` (moved to the model's device once and reused), and
    afterwards its parameters, buffers, flags, gradients and every global random stream are exactly
    as before.

    Args:
        model: the network; its parameters with ``requires_grad=True`` are perturbed.
        batches: any iterable of batches (a ``DataLoader``, a list of ``(x, y)`` tuples, ...).
        dims: 1 or 2.
        num_points: grid points per axis (>= 2); odd numbers put a point exactly on θ₀.
        span: ``(low, high)`` coefficient range per axis.
        normalization: ``"filter"`` (default), ``"layer"`` or ``None``; see
            :mod:`lightning_landscape.core.landscapes.normalization`.
        ignore_bias_and_norm: hold 1-D parameters (biases, norm-layer affine) fixed.
        seed: seed of the random directions.
        loss_fn: the loss: any form of :mod:`~lightning_landscape.core.base.losses`
            (default: the model's own ``training_step``, else the cross-entropy of ``(x, y)`` class logits).
        directions: ``"random"`` (default: Gaussian directions drawn from ``seed``, normalized), or
            ``dims`` dicts name → tensor to use instead; normalized as
            asked, used exactly as given with ``normalization=None``; absent names do not move.
            ``"hessian"``: the top ``dims`` eigenvectors of the loss Hessian on ``batches`` (found
            by Lanczos from ``seed``); ``"hessian_extremes"``: the top and the bottom one. They are
            unit vectors used as they are (``normalization`` does not apply; the result records
            ``None``), so along an axis a quadratic loss is ``½ λ t²``; the eigenvalues are in
            ``extra["hessian_eigenvalues"]``.
        num_samples: use only the first ``num_samples`` samples of ``batches`` (all if None).
        progress_bar: show a progress bar (``True``) or call ``progress_bar(points_done)`` after each
            point.
        points_per_forward: grid points evaluated per forward pass. ``1`` (default) writes each
            point into the model in place; larger (or ``"auto"``, as many as ``points_memory_mb``
            holds) stacks them and maps the forward with ``torch.vmap``, much faster for small
            models; the numbers agree to float rounding. Models ``vmap`` cannot map (BatchNorm in
            train mode, ``.item()`` in ``forward``) fall back to one point per forward, with a
            warning.
        points_memory_mb: memory for one batched forward (stacked weights plus activations).
        autocast: evaluate under ``torch.autocast`` in ``"bf16"`` or ``"fp16"``; the loss is then
            computed from float32 logits, but the forward's rounding changes it: on the test
            models by up to ~1e-3 (bf16) and ~1e-4 (fp16) of the loss, fine for the shape of a
            landscape, not for differences smaller than that. Recorded in the metadata.
        compile: evaluate through ``torch.compile(model)`` (one point per forward; the first call
            compiles, which pays off on large grids of large models). Recorded in the metadata.
        epoch: recorded in the result's metadata.
        global_step: recorded in the result's metadata.
        params: vary only the trainable parameters matching these glob patterns (e.g.
            ``"*.lora_*"``: a fine-tuned adapter on a frozen base); default all of them.

    Returns:
        A :class:`LandscapeResult` with CPU tensors.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,)))]
        >>> result = compute_landscape(net, data, dims=2, num_points=5)
        >>> tuple(result.loss.shape), result.center_index
        ((5, 5), (2, 2))
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
    check_bool("compile", compile)
    check_optional_int("epoch", epoch, minimum=0)
    check_optional_int("global_step", global_step, minimum=0)
    check_progress("progress_bar", progress_bar)
    used, eigenvalues = None, None
    if not plan.from_hessian:  # found (and refused: zero, parallel) before any work
        used, _ = plan.axes(model, {n: p.detach() for n, p in model.named_parameters() if n in plan.names})
    loss_fn, cached = evaluation_inputs(model, batches, loss_fn, num_samples)
    coords = plan.coords()
    with (
        progress_reporter(progress_bar, num_points**dims, "loss landscape") as on_point,
        observing(model) as saved,
    ):
        reference = {n: saved.parameters[n] for n in plan.names}
        if used is None:  # the Hessian's, found on the data
            used, eigenvalues = plan.axes(model, reference, cached, loss_fn)
        with evaluation_precision(model, autocast):
            loss, accuracy = scan_grid(
                model,
                cached,
                reference,
                used,
                coords,
                loss_fn,
                on_point,
                points_per_forward=1 if compile else points_per_forward,
                points_memory_mb=points_memory_mb,
                compile=compile,
            )
    extra = plan.extra(used, eigenvalues)
    if autocast is not None or compile:
        extra.update(autocast=autocast, compile=compile)
    return LandscapeResult(
        coords=tuple(coords),
        loss=loss,
        accuracy=accuracy,
        directions=tuple({n: t.detach().cpu() for n, t in d.items()} for d in used),
        seed=plan.recorded_seed(),
        normalization=plan.normalization,
        ignore_bias_and_norm=ignore_bias_and_norm,
        bn_mode="eval",
        num_samples=total_samples(cached),
        loss_name=loss_name(loss_fn),
        epoch=epoch,
        global_step=global_step,
        extra=extra,
    )
