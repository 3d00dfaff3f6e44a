"""lightning_landscape: see why a network generalizes, from a Lightning ``Trainer``.

Callbacks (add to ``Trainer(callbacks=[...])``):
    :class:`LossLandscapeMonitor`, :class:`TrajectoryMonitor`

Functions (the same computations without a trainer):
    :func:`compute_landscape`, :func:`interpolate`, :func:`pca_directions`,
    :func:`trajectory_landscape`, :func:`evaluate`

Results:
    :class:`LandscapeResult`, :class:`PCAResult`, :class:`TrajectoryResult`
"""

__version__ = "0.1.0"

from .callbacks import LossLandscapeMonitor, TrajectoryMonitor
from .core import (
    LandscapeResult,
    PCAResult,
    TrajectoryResult,
    compute_landscape,
    evaluate,
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
    "interpolate",
    "pca_directions",
    "trajectory_landscape",
    # results
    "LandscapeResult",
    "PCAResult",
    "TrajectoryResult",
]
