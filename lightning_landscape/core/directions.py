"""Seeded random directions in parameter space."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch

__all__ = ["cosine_similarity", "iter_random_directions", "moving_names", "random_directions"]


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
