"""Seeded random directions in parameter space."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch

from .normalization import Normalization, normalize_directions

Direction = Mapping[str, torch.Tensor]
"""A direction in weight space: parameter name → tensor of that parameter's shape."""

__all__ = [
    "Direction",
    "check_span_fits",
    "cosine_similarity",
    "iter_random_directions",
    "landscape_directions",
    "moving_names",
    "random_directions",
]


def moving_names(
    reference: Mapping[str, torch.Tensor], directions: Sequence[Mapping[str, torch.Tensor]]
) -> list[str]:
    """The names of ``reference`` that some direction moves (a non-zero entry), in its order.

    >>> moving_names({"a": torch.ones(2), "b": torch.ones(2)}, [{"a": torch.zeros(2), "b": torch.ones(2)}])
    ['b']
    """
    return [n for n in reference if any(bool(d[n].any()) for d in directions)]


def random_directions(
    weights: Mapping[str, torch.Tensor], count: int, seed: int
) -> list[dict[str, torch.Tensor]]:
    """Draw ``count`` Gaussian directions shaped like ``weights``, from a private generator.

    One ``torch.Generator`` per device is seeded with ``seed``; entries are drawn tensor by tensor in
    the order of ``weights`` (every tensor gets a draw, whatever its later normalization), so the
    same seed gives the same raw directions at every call, on every process, and the global random
    streams are never touched. Generators of different device types produce different numbers: the
    same seed on CPU and on CUDA gives different (equally valid) directions.

    Args:
        weights: name → parameter tensor; directions take their shape, dtype and device.
        count: the number of directions (1 or 2 for a landscape).
        seed: the generator's seed.

    Returns:
        ``count`` dicts name → tensor, un-normalized.

    Example:
        >>> w = {"weight": torch.zeros(2, 3)}
        >>> a = random_directions(w, 2, seed=0)
        >>> b = random_directions(w, 2, seed=0)
        >>> torch.equal(a[1]["weight"], b[1]["weight"]), a[0]["weight"].shape
        (True, torch.Size([2, 3]))
    """
    return list(iter_random_directions(weights, count, seed))


def iter_random_directions(
    weights: Mapping[str, torch.Tensor], count: int, seed: int
) -> Iterator[dict[str, torch.Tensor]]:
    """The directions of :func:`random_directions`, one at a time (same stream, same values)."""
    generators: dict[torch.device, torch.Generator] = {}
    for _ in range(count):
        direction = {}
        for name, w in weights.items():
            gen = generators.get(w.device)
            if gen is None:
                gen = generators[w.device] = torch.Generator(device=w.device).manual_seed(seed)
            # Draw in float32 at least so that low-precision models get the same randomness;
            # cast to the parameter's dtype afterwards.
            draw_dtype = w.dtype if w.dtype in (torch.float32, torch.float64) else torch.float32
            d = torch.randn(w.shape, generator=gen, device=w.device, dtype=draw_dtype)
            direction[name] = d.to(w.dtype)
        yield direction


def cosine_similarity(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    """Cosine of the angle between two directions seen as flat vectors (names of ``a``).

    Li et al. print it for the two axes of a 2D plot; for random directions it is close to 0.

    >>> cosine_similarity({"w": torch.tensor([1.0, 0.0])}, {"w": torch.tensor([0.0, 2.0])})
    0.0
    """
    dot = sum(float((a[n].double() * b[n].double()).sum()) for n in a)
    na = sum(float(a[n].double().square().sum()) for n in a) ** 0.5
    nb = sum(float(b[n].double().square().sum()) for n in a) ** 0.5
    return dot / (na * nb) if na > 0 and nb > 0 else 0.0


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
