"""Direction normalization of Li et al. 2018 (``filter``, ``layer`` or none).

For a parameter tensor θ and a direction tensor d of the same shape:

- ``"filter"``: for tensors with ``ndim >= 2`` every slice along dim 0 (one output filter of a conv
  kernel, one output row of a Linear weight) is rescaled to the norm of the same slice of θ:
  ``d_j ← d_j / (‖d_j‖ + 1e-10) · ‖θ_j‖``. This is the convention of the paper's code, which
  iterates over dim 0 of every tensor (for ``ConvTranspose`` kernels dim 0 is the input channel).
- ``"layer"``: the whole tensor is rescaled, ``d ← d / (‖d‖ + 1e-10) · ‖θ‖``.
- ``None``: the direction is left as it is.

One-dimensional and scalar tensors (biases, normalization-layer affine parameters) get a zero
direction when ``ignore_bias_and_norm=True`` (the paper's ``biasbn``). Otherwise, with
``"filter"`` their direction is a copy of θ itself (as in the paper's code, so moving along it
rescales the bias by ``1 + α``), with ``"layer"`` they are rescaled like any tensor, and with
``None`` they are left as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch

__all__ = [
    "check_direction_names",
    "Normalization",
    "NORMALIZATIONS",
    "normalize_direction",
    "normalize_directions",
]

Normalization = Literal["filter", "layer"] | None
NORMALIZATIONS: tuple[Normalization, ...] = ("filter", "layer", None)

_EPS = 1e-10


def normalize_direction(
    direction: torch.Tensor,
    weight: torch.Tensor,
    normalization: Normalization = "filter",
    ignore_bias_and_norm: bool = True,
) -> torch.Tensor:
    """Return a normalized copy of ``direction`` for the parameter tensor ``weight``.

    Args:
        direction: the raw direction d, same shape as ``weight``.
        weight: the parameter θ whose filter (or tensor) norms d is rescaled to.
        normalization: ``"filter"``, ``"layer"`` or ``None`` (see the module docstring).
        ignore_bias_and_norm: give tensors with ``ndim <= 1`` a zero direction.

    Returns:
        A new tensor; neither input is modified.

    Example:
        >>> w = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
        >>> d = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
        >>> normalize_direction(d, w, "filter")
        tensor([[5., 0.],
                [0., 1.]])
        >>> normalize_direction(torch.ones(2), torch.ones(2), "filter")
        tensor([0., 0.])
    """
    if direction.shape != weight.shape:
        raise ValueError(
            f"direction of shape {tuple(direction.shape)} does not match its parameter of shape "
            f"{tuple(weight.shape)}."
        )
    d = direction.detach()
    w = weight.detach()
    if w.ndim <= 1:
        if ignore_bias_and_norm:
            return torch.zeros_like(d)
        if normalization == "filter":
            return w.clone()
    if normalization is None:
        return d.clone()
    # norms and scales in float64: a float32 direction with entries near 1e38 has a norm beyond
    # float32 (inf, and a zero scale), and its scale below float32's normal range
    d64, w64 = d.double(), w.double()
    if normalization == "layer" or w.ndim <= 1:
        scale = torch.linalg.vector_norm(w64) / (torch.linalg.vector_norm(d64) + _EPS)
        return (d64 * scale).to(d.dtype)
    if normalization == "filter":
        d_norms = torch.linalg.vector_norm(d64.flatten(1), dim=1)
        w_norms = torch.linalg.vector_norm(w64.flatten(1), dim=1)
        scale = (w_norms / (d_norms + _EPS)).reshape((-1,) + (1,) * (d.ndim - 1))
        return (d64 * scale).to(d.dtype)
    raise ValueError(f"`normalization` must be one of {NORMALIZATIONS}, got {normalization!r}.")


def check_direction_names(direction: Mapping[str, torch.Tensor], weights: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` if ``direction`` names a tensor that is not in ``weights``."""
    unknown = sorted(set(direction) - set(weights))
    if unknown:
        raise ValueError(
            f"direction names {unknown} are not perturbable parameters of the model "
            f"(expected names from {sorted(weights)})."
        )


def normalize_directions(
    direction: Mapping[str, torch.Tensor],
    weights: Mapping[str, torch.Tensor],
    normalization: Normalization = "filter",
    ignore_bias_and_norm: bool = True,
) -> dict[str, torch.Tensor]:
    """Apply :func:`normalize_direction` to every named tensor of one direction.

    Names of ``weights`` missing from ``direction`` get a zero direction. A name of ``direction``
    that is not in ``weights`` raises ``ValueError``.
    """
    check_direction_names(direction, weights)
    out = {}
    for name, w in weights.items():
        if name in direction:
            d = direction[name].to(device=w.device, dtype=w.dtype)
            out[name] = normalize_direction(d, w, normalization, ignore_bias_and_norm)
        else:
            out[name] = torch.zeros_like(w)
    return out
