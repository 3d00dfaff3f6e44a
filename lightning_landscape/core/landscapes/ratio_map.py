"""The ratio of the Hessian's extreme eigenvalues over a plane of weights (Li et al. 2018, Fig. 7)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..._checks import check_int, check_span
from ..base._inputs import evaluation_inputs
from ..base.evaluation import check_model
from ..base.losses import LossSpec
from ..base.params import gradient_context, selected_parameters
from ..base.results import ResultFile
from ..curvature.eigenvalues import check_eigenvalue_options
from ..linalg.hessian import HessianOperator
from ..linalg.spectrum import lanczos_eigenpairs, warn_unconverged
from ._grid import check_grid_size, for_each_point, grid_coordinates, linear_combination_writer
from .directions import _resolve_directions, check_span_fits

__all__ = ["eigenvalue_ratio_map", "EigenvalueRatioMap"]


@dataclass(frozen=True)
class EigenvalueRatioMap(ResultFile):
    """Extreme Hessian eigenvalues over a 2D filter-normalized grid (Li et al. 2018, §7).

    Attributes:
        coords: the two axes' coefficients.
        lambda_max: ``(n, n)`` largest eigenvalue at each grid point.
        lambda_min: ``(n, n)`` smallest (most negative) eigenvalue at each grid point.
        seed: seed of the directions (the same seed as a landscape gives the same plane).
        converged: ``(n, n)`` whether Lanczos met ``tol`` within ``max_iter`` at each grid point
            (a warning names how many did not).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import eigenvalue_ratio_map
        >>> ratio = eigenvalue_ratio_map(net, data, num_points=3, max_iter=8)
        >>> bool((ratio.ratio >= 0).all())
        True
    """

    coords: tuple[torch.Tensor, torch.Tensor]
    lambda_max: torch.Tensor
    lambda_min: torch.Tensor
    seed: int
    converged: torch.Tensor | None = None

    ARRAYS = {
        "coords": ("float[n]", "float[m]"),
        "lambda_max": "float[n,m]",
        "lambda_min": "float[n,m]",
        "converged": "bool[n,m]",
    }

    @property
    def ratio(self) -> torch.Tensor:
        """``|λ_min / λ_max|``: near 0 where the surface is convex, large where negative curvature matters."""
        return (self.lambda_min / self.lambda_max).abs()


def eigenvalue_ratio_map(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    num_points: int = 5,
    span: tuple[float, float] = (-1.0, 1.0),
    seed: int = 0,
    tol: float = 1e-2,
    max_iter: int = 30,
    loss_fn: LossSpec = None,
    num_samples: int | None = None,
    params: str | Sequence[str] | None = None,
) -> EigenvalueRatioMap:
    """``λ_min`` and ``λ_max`` of the Hessian at every point of a coarse 2D landscape grid.

    The grid is that of :func:`~lightning_landscape.compute_landscape` with the same ``seed`` and
    ``params`` (filter-normalized directions, biases and norm layers fixed); as in the paper's code
    the Hessian is taken with respect to the weights with ``ndim > 1`` only (of those ``params``
    selects), and its extreme eigenvalues are found by Lanczos to tolerance ``tol`` (the paper's
    ``eigsh`` used 1e-2).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import eigenvalue_ratio_map
        >>> ratio = eigenvalue_ratio_map(net, data, num_points=3, max_iter=8)
        >>> tuple(ratio.ratio.shape)
        (3, 3)
    """
    check_model(model)
    check_int("num_points", num_points, minimum=2)
    check_grid_size("num_points", num_points, 2)
    span = check_span("span", span)
    check_span_fits("span", span, model.parameters())
    chosen = selected_parameters(model, params)
    check_eigenvalue_options(k=1, which="both", tol=tol, max_iter=max_iter, min_iter=1, seed=seed, names=None)
    loss_fn, cached = evaluation_inputs(model, batches, loss_fn, num_samples)
    coords = [grid_coordinates(span, num_points) for _ in range(2)]
    with gradient_context(model):
        reference = {n: p.detach().clone() for n, p in chosen.items()}
        directions = _resolve_directions(
            reference, dims=2, seed=seed, normalization="filter", ignore_bias_and_norm=True, directions=None
        )
        write = linear_combination_writer(model, reference, directions)
        names = [n for n, t in reference.items() if t.ndim > 1]

        def write_point(point: tuple[float, ...]) -> None:
            with torch.no_grad():
                write(point)

        def extremes():
            op = HessianOperator(model, cached, loss_fn, names)
            start = op.lanczos_start("both", seed)
            return lanczos_eigenpairs(
                op, k=1, which="both", tol=tol, max_iter=max_iter, seed=seed, start=start
            )

        points = [(a, b) for a in coords[0].tolist() for b in coords[1].tolist()]
        results = for_each_point(points, write_point, extremes)
    eigenvalues = torch.stack([r.eigenvalues.double().cpu() for r in results]).reshape(
        num_points, num_points, 2
    )
    lambda_max, lambda_min = (t.contiguous() for t in eigenvalues.unbind(dim=-1))
    converged = torch.tensor([r.converged for r in results]).reshape(num_points, num_points)
    unconverged = int((~converged & torch.isfinite(lambda_max) & torch.isfinite(lambda_min)).sum())
    if unconverged:
        warn_unconverged(
            "eigenvalue_ratio_map",
            max_iter,
            f"tol={tol:g} at {unconverged} of {converged.numel()} grid points (see `converged`).",
        )
    return EigenvalueRatioMap(
        coords=(coords[0], coords[1]),
        lambda_max=lambda_max,
        lambda_min=lambda_min,
        seed=seed,
        converged=converged,
    )
