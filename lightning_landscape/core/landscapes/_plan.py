"""The plan of a landscape: its grid and how its axes are found, checked before any work.

:func:`~lightning_landscape.core.landscapes.landscape.compute_landscape` and
:func:`~lightning_landscape.core.landscapes.chunked.compute_landscape_in_chunks` evaluate the same
grid along the same axes; they differ only in how they walk the points (all at once, or chunk
by chunk over streamed, sharded data). Both build one :class:`GridPlan` from their arguments and
ask it for the coordinates, the axes and the metadata, so the two cannot drift apart.

The axes (``directions``) are one of:

- ``"random"``: Gaussian directions drawn from a private generator seeded with ``seed``,
  normalized to the weights (Li et al.);
- ``dims`` dicts name → tensor: given directions, normalized as asked (used exactly as given with
  ``normalization=None``);
- ``"hessian"`` / ``"hessian_extremes"``: Hessian eigenvectors found by Lanczos on the data, used as
  they are (unit vectors; ``normalization`` does not apply).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from ..._checks import check_params
from ..base.losses import LossSpec
from ..base.params import selected_parameters
from ..base.results import library_versions
from ..curvature.eigenvalues import HESSIAN_DIRECTIONS, check_hessian_directions, hessian_directions
from ._grid import check_grid_arguments, grid_coordinates
from .directions import Direction, check_directions, cosine_similarity, landscape_directions
from .normalization import Normalization

__all__ = ["DIRECTION_KINDS", "DirectionsSpec", "GridPlan"]

DIRECTION_KINDS = ("random", *HESSIAN_DIRECTIONS)
"""The directions a landscape takes by name; any other value must be ``dims`` given directions."""

DirectionsSpec = Sequence[Direction] | Literal["random", "hessian", "hessian_extremes"]
"""What ``directions`` may be: a name of :data:`DIRECTION_KINDS` or ``dims`` dicts name → tensor."""

Axes = list[dict[str, torch.Tensor]]


@dataclass(frozen=True)
class GridPlan:
    """A checked landscape grid: its axes' settings, the varied parameters and the coordinates.

    Build it with :meth:`checked`; :meth:`axes` finds the directions and :meth:`extra` gives the
    metadata every landscape records.
    """

    dims: int
    num_points: int
    span: tuple[float, float]
    normalization: Normalization
    ignore_bias_and_norm: bool
    seed: int
    kind: str
    """``"random"``, ``"given"``, ``"hessian"`` or ``"hessian_extremes"``."""
    given: tuple[Direction, ...] | None
    names: tuple[str, ...]
    """The varied parameters (trainable, matching ``params``)."""
    params: tuple[str, ...] | None

    @classmethod
    def checked(
        cls,
        model: nn.Module,
        *,
        dims: Any,
        num_points: Any,
        span: Any,
        normalization: Any,
        ignore_bias_and_norm: Any,
        seed: Any,
        directions: Any,
        params: Any,
        loss_fn: Any,
        points_per_forward: Any,
        points_memory_mb: Any,
        autocast: Any,
    ) -> GridPlan:
        """Refuse a bad argument, naming it; the plan of the grid otherwise."""
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
        selected = selected_parameters(model, params)
        kind, given = _directions_kind(directions, selected, dims)
        if kind in HESSIAN_DIRECTIONS:
            check_hessian_directions(kind, dims)
        return cls(
            dims=dims,
            num_points=num_points,
            span=span,
            normalization=None if kind in HESSIAN_DIRECTIONS else normalization,
            ignore_bias_and_norm=ignore_bias_and_norm,
            seed=seed,
            kind=kind,
            given=given,
            names=tuple(selected),
            params=None if params is None else tuple(check_params("params", params) or ()),
        )

    @property
    def from_hessian(self) -> bool:
        """Whether the axes are found on the data (Hessian eigenvectors)."""
        return self.kind in HESSIAN_DIRECTIONS

    @property
    def shape(self) -> list[int]:
        return [self.num_points] * self.dims

    def coords(self) -> list[torch.Tensor]:
        """The float64 coefficients of every axis."""
        return [grid_coordinates(self.span, self.num_points) for _ in range(self.dims)]

    def axes(
        self,
        model: nn.Module,
        reference: Mapping[str, torch.Tensor],
        batches: Iterable[Any] | None = None,
        loss_fn: LossSpec = None,
    ) -> tuple[Axes, torch.Tensor | None]:
        """The directions around ``reference`` (θ₀ of the varied parameters) and, for Hessian
        axes, their eigenvalues (found on ``batches`` with ``loss_fn``; ``None`` otherwise).

        Random and given axes are refused here when they cannot span a landscape (zero, parallel,
        beyond the dtype), so a caller asks for them before any work."""
        eigenvalues = None
        given = self.given
        if self.from_hessian:
            if batches is None:
                raise ValueError("Hessian directions are found on data: pass `batches`.")
            kind: Literal["hessian", "hessian_extremes"] = (
                "hessian" if self.kind == "hessian" else "hessian_extremes"
            )
            found, eigenvalues = hessian_directions(
                model, batches, kind, self.dims, loss_fn=loss_fn, seed=self.seed, params=self.params
            )
            given = tuple(found)
        used = landscape_directions(
            reference,
            span=self.span,
            dims=self.dims,
            seed=self.seed,
            normalization=self.normalization,
            ignore_bias_and_norm=self.ignore_bias_and_norm,
            directions=given,
        )
        return used, eigenvalues

    def recorded_seed(self) -> int | None:
        """The seed the axes depend on (``None`` for given directions)."""
        return None if self.kind == "given" else self.seed

    def extra(self, used: Axes, eigenvalues: torch.Tensor | None) -> dict[str, Any]:
        """The metadata of a landscape on these axes: versions, span, parameters, the axes' cosine
        and, for Hessian axes, their name and eigenvalues."""
        extra: dict[str, Any] = {"versions": library_versions(), "span": list(self.span)}
        if self.params is not None:
            extra["params"] = list(self.params)
        if eigenvalues is not None:
            extra.update(directions=self.kind, hessian_eigenvalues=eigenvalues.tolist())
        if self.dims == 2:
            extra["direction_cosine"] = cosine_similarity(used[0], used[1])
        return extra


def _directions_kind(
    directions: Any, selected: Mapping[str, torch.Tensor], dims: int
) -> tuple[str, tuple[Direction, ...] | None]:
    """``(kind, given)`` of a ``directions`` argument, refused naming it when it is neither a known
    name nor ``dims`` directions over the varied parameters."""
    if isinstance(directions, str):
        if directions not in DIRECTION_KINDS:
            raise ValueError(
                f"`directions` must be one of {list(DIRECTION_KINDS)} or {dims} dicts name -> tensor, "
                f"got {directions!r}."
            )
        return directions, None
    if directions is None:
        raise TypeError(
            f"`directions` must be one of {list(DIRECTION_KINDS)} or {dims} dicts name -> tensor, got None "
            "(random directions are `directions='random'`)."
        )
    check_directions("directions", directions, selected, dims)
    return "given", tuple(directions)
