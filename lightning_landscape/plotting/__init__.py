"""Turn results into matplotlib figures (object-oriented API; no pyplot state, no files)."""

from .animation import landscape_frames, trajectory_frames, write_gif
from .compose import save_side_by_side
from .connectivity import plot_barrier_matrix, plot_connectivity
from .curvature import (
    plot_basin_radii,
    plot_eigenvalue_ratio_map,
    plot_hessian_density,
    plot_per_batch_eigenvalues,
    plot_per_layer_curvature,
)
from .decision import plot_decision_boundary
from .landscape import (
    landscape_figures,
    plot_landscape_1d,
    plot_landscape_contour,
    plot_landscape_surface,
)
from .results import result_figures
from .trajectory import plot_interpolation, plot_trajectory

__all__ = [
    "landscape_figures",
    "landscape_frames",
    "trajectory_frames",
    "write_gif",
    "plot_barrier_matrix",
    "plot_basin_radii",
    "plot_connectivity",
    "plot_per_batch_eigenvalues",
    "plot_per_layer_curvature",
    "plot_decision_boundary",
    "plot_eigenvalue_ratio_map",
    "plot_hessian_density",
    "plot_landscape_1d",
    "plot_landscape_contour",
    "plot_landscape_surface",
    "plot_interpolation",
    "plot_trajectory",
    "result_figures",
    "save_side_by_side",
]
