"""The figures of any result file this package writes, by name: what ``lightning-landscape plot``
draws and a user's script can draw from a loaded result, without the model."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from matplotlib.figure import Figure

from ..core.base.results import LandscapeResult, SharpnessRecord
from ..core.curvature.blocks import Blockwise
from ..core.curvature.density import SpectralDensity
from ..core.curvature.eigenvalues import EigenvalueResult, PerBatchEigenvalues
from ..core.landscapes.connectivity import BarrierMatrix, ConnectivityResult
from ..core.landscapes.ratio_map import EigenvalueRatioMap
from ..core.landscapes.trajectory import TrajectoryResult
from ..core.linalg.spectrum import TraceEstimate
from ..core.measures.report import SharpnessReport, block_value
from ..core.measures.sharpness import BasinVolumeResult
from .connectivity import plot_barrier_matrix, plot_connectivity
from .curvature import (
    plot_basin_radii,
    plot_eigenvalue_ratio_map,
    plot_hessian_density,
    plot_per_batch_eigenvalues,
    plot_per_layer_curvature,
    sharpness_figures,
)
from .landscape import plot_landscape_1d, plot_landscape_contour, plot_landscape_surface
from .trajectory import plot_interpolation, plot_trajectory

__all__ = ["result_figures"]

Drawer = Callable[[], Figure]


def result_figures(
    result: Any, *, log_scale: bool = False, levels: int = 20, elev: float = 30.0, azim: float = -60.0
) -> dict[str, Drawer]:
    """Figure name → a function drawing it, for every figure ``result`` holds the data of (empty
    for a result of numbers only: a trace estimate, an evaluation, ...).

    Example:
        >>> import torch
        >>> from lightning_landscape import compute_landscape
        >>> net = torch.nn.Linear(3, 2)
        >>> data = [(torch.randn(8, 3), torch.tensor([0, 1] * 4))]
        >>> result = compute_landscape(net, data, dims=1, num_points=5)
        >>> sorted(result_figures(result))
        ['curve']
    """
    if isinstance(result, LandscapeResult):
        if result.extra.get("kind") == "interpolation":
            return {"interpolation": lambda: plot_interpolation(result, log_scale=log_scale)}
        if result.dims == 1:
            return {"curve": lambda: plot_landscape_1d(result, log_scale=log_scale)}
        return {
            "contour": lambda: plot_landscape_contour(result, levels=levels, log_scale=log_scale),
            "contour_filled": lambda: plot_landscape_contour(
                result, filled=True, levels=levels, log_scale=log_scale
            ),
            "surface_3d": lambda: plot_landscape_surface(result, log_scale=log_scale, elev=elev, azim=azim),
        }
    if isinstance(result, (SharpnessReport, SharpnessRecord)):
        return {name: partial(_as_is, figure) for name, figure in sharpness_figures(result).items()}
    single = {
        TrajectoryResult: ("pca_plane", lambda r: plot_trajectory(r, levels=levels, log_scale=log_scale)),
        ConnectivityResult: ("curve_vs_line", lambda r: plot_connectivity(r, log_scale=log_scale)),
        BarrierMatrix: ("barrier_matrix", plot_barrier_matrix),
        SpectralDensity: ("hessian_density", plot_hessian_density),
        EigenvalueRatioMap: ("eigenvalue_ratio_map", plot_eigenvalue_ratio_map),
        BasinVolumeResult: ("basin_radii", plot_basin_radii),
        PerBatchEigenvalues: (
            "per_batch_top_eigenvalue",
            lambda r: plot_per_batch_eigenvalues(r.eigenvalues[:, 0]),
        ),
    }
    for kind, (name, draw) in single.items():
        if type(result) is kind:
            return {name: partial(draw, result)}
    if isinstance(result, Blockwise) and result.results:
        first = next(iter(result.results.values()))
        if isinstance(first, (EigenvalueResult, TraceEstimate)):
            return {"per_layer": lambda: _per_layer(result)}
    return {}


def _per_layer(result: Blockwise) -> Figure:
    """The bars of each block's value (:func:`block_value`): its top eigenvalue, or its trace."""
    import torch

    found = list(result.results.values())
    values = torch.tensor([block_value(r) for r in found], dtype=torch.float64)
    measure = "top_eigenvalue" if isinstance(found[0], EigenvalueResult) else "trace"
    return plot_per_layer_curvature(list(result.blocks), **{measure: values})


def _as_is(figure: Figure) -> Figure:
    """A figure already drawn."""
    return figure
