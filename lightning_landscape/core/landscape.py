"""Filter-normalized 1D and 2D loss landscapes (Li et al. 2018), computed in place.

The model is evaluated at ``θ₀ + a·d₀ (+ b·d₁)`` for every grid point, where θ₀ is a saved copy of
the parameters. Each point is written from θ₀ afresh (``copy``, then ``add``), never accumulated,
with ``torch._foreach_*`` over the parameters that actually move; no model copies are made. The
model runs in eval mode (BatchNorm on its running statistics, dropout off) without gradients, and
is restored exactly afterwards (see :mod:`lightning_landscape.core.params`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from .._checks import (
    check_bool,
    check_choice,
    check_fits_in_memory,
    check_int,
    check_optional_int,
    check_params,
    check_positive_float,
    check_seed,
    check_span,
    renamed,
)
from .directions import cosine_similarity, random_directions
from .evaluation import (
    LossFn,
    loss_name,
    module_device,
    total_samples,
)
from .grid import scan_grid
from .inputs import check_model, evaluation_inputs
from .losses import check_loss_spec
from .normalization import NORMALIZATIONS, Normalization, normalize_directions
from .params import named_tensors, observing, selected_parameters
from .results import LandscapeResult, library_versions

__all__ = [
    "compute_landscape",
    "grid_coordinates",
    "landscape_directions",
    "named_tensors",
    "progress_reporter",
]

Direction = Mapping[str, torch.Tensor]
ProgressFn = Callable[[int], None]

HESSIAN_DIRECTIONS = ("hessian", "hessian_extremes")
"""The directions a landscape may take from the Hessian, by name (see
:func:`~lightning_landscape.core.curvature.hessian_directions`)."""


def check_progress(name: str, value: Any) -> bool | ProgressFn:
    """``value`` if it is a bool (a progress bar or none) or a callable ``on_point(done)``."""
    if isinstance(value, bool) or callable(value):
        return value
    raise TypeError(
        f"`{name}` must be True, False or a callable taking the number of points done, "
        f"got {value!r} ({type(value).__name__})."
    )


GRID_BYTES_PER_POINT = 40
"""What a landscape holds per grid point: its coefficients, loss, accuracy and done flag, and the
per-chunk sums (an estimate, for refusing grids that could never fit in memory)."""


def check_grid_size(name: str, num_points: int, dims: int) -> None:
    """Refuse ``num_points`` per axis whose ``dims``-dimensional grid could never fit in memory."""
    check_fits_in_memory(
        name, num_points, float(num_points) ** dims * GRID_BYTES_PER_POINT, f"a {num_points}^{dims} grid"
    )


def check_points_memory_mb(points_memory_mb: Any, memory_budget_mb: Any = None) -> float:
    """``points_memory_mb``, or its former name ``memory_budget_mb`` (with a ``FutureWarning``),
    checked under the name given."""
    points_memory_mb = renamed(
        "memory_budget_mb",
        memory_budget_mb,
        "points_memory_mb",
        points_memory_mb,
        1024.0,
        check=lambda n, v: check_positive_float(n, v, maximum=2.0**30),
    )
    return check_positive_float("points_memory_mb", points_memory_mb, maximum=2.0**30)


def check_points_per_forward(value: Any) -> int | str:
    """``points_per_forward`` must be a positive integer or ``"auto"``."""
    if value == "auto" and isinstance(value, str):
        return value
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


def _resolve_directions(
    reference: Mapping[str, torch.Tensor],
    *,
    dims: int,
    seed: int,
    normalization: Normalization,
    ignore_bias_and_norm: bool,
    directions: Sequence[Direction] | None,
) -> list[dict[str, torch.Tensor]]:
    """The directions to scan along, on the parameters' devices, normalized as asked."""
    if directions is None:
        raw = random_directions(reference, dims, seed)
        return [normalize_directions(d, reference, normalization, ignore_bias_and_norm) for d in raw]
    check_directions("directions", directions, reference, dims)
    if normalization is None:
        # Given directions are used exactly as given; absent names do not move.
        used = []
        for given in directions:
            out = {n: torch.zeros_like(t) for n, t in reference.items()}
            out.update({name: t.detach().to(reference[name]).clone() for name, t in given.items()})
            used.append(out)
        return used
    return [normalize_directions(d, reference, normalization, ignore_bias_and_norm) for d in directions]


def check_directions(
    name: str, directions: Any, reference: Mapping[str, torch.Tensor], dims: int
) -> Sequence[Direction]:
    """Refuse given directions that cannot span a landscape, naming ``name``: not ``dims`` dicts
    name → tensor, a name that is not a varied parameter, another shape, a complex or boolean
    dtype, or a NaN or infinite entry."""
    if isinstance(directions, (Mapping, str, bytes)) or not isinstance(directions, Sequence):
        raise TypeError(
            f"`{name}` must be a sequence of {dims} dicts name -> tensor (one per axis), "
            f"got {type(directions).__name__}."
        )
    if len(directions) != dims:
        raise ValueError(f"`{name}` must hold {dims} directions (one per axis), got {len(directions)}.")
    for axis, direction in enumerate(directions):
        if not isinstance(direction, Mapping):
            raise TypeError(
                f"`{name}`[{axis}] must be a dict name -> tensor, got {type(direction).__name__}."
            )
        unknown = sorted(str(n) for n in direction if n not in reference)
        if unknown:
            raise ValueError(
                f"`{name}`[{axis}] names {unknown[:5]}, which are not varied parameters of the model "
                f"(expected names from {sorted(reference)[:8]})."
            )
        for key, t in direction.items():
            where = f"`{name}`[{axis}][{key!r}]"
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{where} must be a tensor, got {type(t).__name__}.")
            if t.is_complex() or t.dtype == torch.bool:
                raise TypeError(f"{where} must hold real numbers, got a {t.dtype} tensor.")
            if tuple(t.shape) != tuple(reference[key].shape):
                raise ValueError(
                    f"{where} has shape {tuple(t.shape)}; its parameter has shape "
                    f"{tuple(reference[key].shape)}."
                )
            if t.numel() and not bool(torch.isfinite(t).all()):
                raise ValueError(f"{where} holds NaN or infinite entries: a direction must be finite.")
    return directions


def landscape_directions(
    reference: Mapping[str, torch.Tensor],
    *,
    span: tuple[float, float],
    dims: int,
    seed: int,
    normalization: Normalization,
    ignore_bias_and_norm: bool,
    directions: Sequence[Direction] | None = None,
) -> list[dict[str, torch.Tensor]]:
    """The axes of a landscape around the saved θ₀ ``reference``: seeded random directions (or the
    given ones), normalized as asked; refuses a ``span`` the dtype cannot hold and an axis that
    moves nothing."""
    check_span_fits("span", span, reference.values())
    used = _resolve_directions(
        reference,
        dims=dims,
        seed=seed,
        normalization=normalization,
        ignore_bias_and_norm=ignore_bias_and_norm,
        directions=directions,
    )
    if normalization in ("filter", "layer"):
        _warn_zero_weights(reference, ignore_bias_and_norm, normalization)
    for axis, direction in enumerate(used):
        if not any(bool(t.ne(0).any()) for t in direction.values()):
            raise ValueError(
                ("`directions`: " if directions is not None else "")
                + f"direction {axis} moves nothing: the model has no trainable parameter it can move "
                "(all frozen, none at all, or only biases and norm layers with "
                "`ignore_bias_and_norm=True`), or the given direction is zero; the landscape would "
                "be flat by construction."
            )
    if len(used) == 2 and abs(cosine_similarity(used[0], used[1])) > 1 - 1e-6:
        raise ValueError(
            ("`directions`: the given" if directions is not None else "The")
            + " two directions are parallel (cosine "
            f"{cosine_similarity(used[0], used[1]):+.6f} after normalization): the plane is a line."
        )
    return used


def _warn_zero_weights(
    reference: Mapping[str, torch.Tensor], ignore_bias_and_norm: bool, normalization: str
) -> None:
    """Normalization scales a direction to its weights' norms: weights that are all zero (a freshly
    initialized low-rank adapter's ``B``) get a zero direction and never move, which flattens the
    picture without a word. Say so, naming them."""
    import warnings

    zero = [
        n
        for n, w in reference.items()
        if w.numel() and (w.ndim > 1 or not ignore_bias_and_norm) and not w.any()
    ]
    if zero:
        warnings.warn(
            f"{normalization} normalization scales each direction to its weights' norms, and the weights of "
            f"{zero[:5]}"
            f"{' ...' if len(zero) > 5 else ''} are all zero: they do not move, and a landscape over "
            "them can be flat by construction (an adapter's B at initialization, say). Use "
            "normalization='layer' or None with a span in absolute units, or measure after training.",
            RuntimeWarning,
            stacklevel=4,
        )


def check_span_fits(name: str, span: tuple[float, float], tensors: Iterable[torch.Tensor]) -> None:
    """Refuse coefficients beyond the largest value the tensors' dtype holds (they would overflow
    inside torch when a direction is scaled by them)."""
    largest = min((torch.finfo(t.dtype).max for t in tensors if t.is_floating_point()), default=math.inf)
    if max(abs(v) for v in span) > largest:
        raise ValueError(
            f"`{name}` {span} holds coefficients beyond the largest value of the model's dtype ({largest:g})."
        )


@contextlib.contextmanager
def progress_reporter(progress: bool | ProgressFn, total: int, desc: str) -> Iterator[ProgressFn | None]:
    """Yield the ``on_point`` callback for ``progress``: a tqdm bar (``True``), the callable itself,
    or ``None`` (``False``). A bar is closed on exit."""
    if callable(progress):
        yield progress
        return
    if not progress:
        yield None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="pt", leave=False)
    try:
        yield lambda done: bar.update(done - bar.n)
    finally:
        bar.close()


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
    loss_fn: LossFn | None = None,
    directions: Sequence[Direction] | Literal["hessian", "hessian_extremes"] | None = None,
    num_samples: int | None = None,
    progress_bar: bool | ProgressFn = False,
    points_per_forward: int | Literal["auto"] = 1,
    points_memory_mb: float = 1024.0,
    autocast: Literal["bf16", "fp16"] | None = None,
    compile: bool = False,
    memory_budget_mb: float | None = None,
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
            :mod:`lightning_landscape.core.normalization`.
        ignore_bias_and_norm: hold 1-D parameters (biases, norm-layer affine) fixed.
        seed: seed of the random directions.
        loss_fn: the loss: any form of :mod:`~lightning_landscape.core.losses`
            (default: the model's own ``training_step``, else the cross-entropy of ``(x, y)`` class logits).
        directions: ``dims`` dicts name → tensor to use instead of random ones; normalized as
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
        memory_budget_mb: former name of ``points_memory_mb`` (deprecated: a ``FutureWarning``).
        epoch: recorded in the result's metadata.
        global_step: recorded in the result's metadata.
        params: vary only the trainable parameters matching these glob patterns (e.g.
            ``"*.lora_*"``: a fine-tuned adapter on a frozen base); default all of them.

    Returns:
        A :class:`LandscapeResult` with CPU tensors.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,)))]
        >>> result = compute_landscape(net, data, dims=2, num_points=5)
        >>> tuple(result.loss.shape), result.center_index
        ((5, 5), (2, 2))
    """
    check_model(model)
    points_memory_mb = check_points_memory_mb(points_memory_mb, memory_budget_mb)
    span = check_grid_arguments(
        dims=dims,
        num_points=num_points,
        span=span,
        normalization=normalization,
        ignore_bias_and_norm=ignore_bias_and_norm,
        seed=seed,
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
    selected = selected_parameters(model, params)
    if isinstance(directions, str):
        check_choice("directions", directions, HESSIAN_DIRECTIONS)
    elif directions is not None:
        check_directions("directions", directions, selected, dims)
    chosen = list(selected)
    axes = dict(span=span, dims=dims, seed=seed, ignore_bias_and_norm=ignore_bias_and_norm)
    used = None
    if not isinstance(directions, str):  # found (and refused: zero, parallel) before any work
        current = {n: p.detach() for n, p in selected.items()}
        used = landscape_directions(current, **axes, normalization=normalization, directions=directions)
    loss_fn, cached = evaluation_inputs(model, batches, loss_fn, num_samples)
    extra: dict[str, Any] = {"versions": library_versions(), "span": list(span)}
    if params is not None:
        extra["params"] = check_params("params", params)
    if isinstance(directions, str):
        from .curvature import hessian_directions  # curvature builds on this module

        kind = directions
        directions, eigenvalues = hessian_directions(
            model, cached, kind, dims, loss_fn=loss_fn, seed=seed, params=params
        )
        normalization = None
        extra.update(directions=kind, hessian_eigenvalues=eigenvalues.tolist())

    coords = [grid_coordinates(span, num_points) for _ in range(dims)]
    with (
        progress_reporter(progress_bar, num_points**dims, "loss landscape") as on_point,
        observing(model) as saved,
    ):
        reference = {n: saved.parameters[n] for n in chosen}
        if used is None:  # the Hessian's, found on the data
            used = landscape_directions(reference, **axes, normalization=normalization, directions=directions)
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

    if autocast is not None or compile:
        extra.update(autocast=autocast, compile=compile)
    if dims == 2:
        extra["direction_cosine"] = cosine_similarity(used[0], used[1])
    return LandscapeResult(
        coords=tuple(coords),
        loss=loss,
        accuracy=accuracy,
        directions=tuple({n: t.detach().cpu() for n, t in d.items()} for d in used),
        seed=seed if directions is None or "hessian_eigenvalues" in extra else None,
        normalization=normalization,
        ignore_bias_and_norm=ignore_bias_and_norm,
        bn_mode="eval",
        num_samples=total_samples(cached),
        loss_name=loss_name(loss_fn),
        epoch=epoch,
        global_step=global_step,
        extra=extra,
    )
