"""lightning_landscape: see why a network generalizes, from a Lightning ``Trainer``.

Callbacks (add to ``Trainer(callbacks=[...])``):
    :class:`LossLandscapeMonitor`, :class:`TrajectoryMonitor`

Functions (the same computations without a trainer):
    :func:`compute_landscape`, :func:`interpolate`, :func:`pca_directions`,
    :func:`trajectory_landscape`, :func:`hessian_eigenvalues`, :func:`hessian_trace`,
    :func:`hessian_density`, :func:`evaluate`

Results:
    :class:`LandscapeResult`, :class:`PCAResult`, :class:`TrajectoryResult`, :class:`SpectralDensity`
"""

__version__ = "0.1.0"

from .callbacks import LossLandscapeMonitor, TrajectoryMonitor
from .core import (
    LandscapeResult,
    PCAResult,
    SpectralDensity,
    TrajectoryResult,
    compute_landscape,
    evaluate,
    hessian_density,
    hessian_eigenvalues,
    hessian_trace,
    interpolate,
    pca_directions,
    trajectory_landscape,
)

__all__ = [
    # callbacks
    "LossLandscapeMonitor",
    "TrajectoryMonitor",
    # functions
    "compute_landscape",
    "evaluate",
    "hessian_density",
    "hessian_eigenvalues",
    "hessian_trace",
    "interpolate",
    "pca_directions",
    "trajectory_landscape",
    # results
    "LandscapeResult",
    "PCAResult",
    "SpectralDensity",
    "TrajectoryResult",
]
