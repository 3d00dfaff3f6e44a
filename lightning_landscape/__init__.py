"""lightning_landscape: see why a network generalizes, from a Lightning ``Trainer``.

Callbacks (add to ``Trainer(callbacks=[...])``):
    :class:`LossLandscapeMonitor`, :class:`TrajectoryMonitor`, :class:`SharpnessMonitor`,
    :class:`NoiseScaleMonitor`

Functions (the same computations without a trainer):
    :func:`compute_landscape`, :func:`compute_landscape_in_chunks` (whole data sets, resumable,
    several processes), :func:`stream_batches`, :func:`interpolate`, :func:`pca_directions`,
    :func:`trajectory_landscape`, :func:`hessian_eigenvalues`, :func:`hessian_trace`,
    :func:`hessian_density`, :func:`sharpness`, :func:`eigenvalue_ratio_map`, :func:`evaluate`

Results:
    :class:`LandscapeResult`, :class:`PCAResult`, :class:`TrajectoryResult`, :class:`SpectralDensity`
"""

__version__ = "0.1.0"

from .callbacks import (
    LossLandscapeMonitor,
    NoiseScaleMonitor,
    SharpnessMonitor,
    TrajectoryMonitor,
    VolumeMonitor,
)
from .core import (
    EigenvalueResult,
    EvidenceResult,
    LandscapeResult,
    PCAResult,
    ResultFileError,
    SharpnessRecord,
    SharpnessResult,
    SpectralDensity,
    TrajectoryResult,
    VolumeResult,
    compute_landscape,
    compute_landscape_in_chunks,
    eigenvalue_ratio_map,
    evaluate,
    function_volume,
    hessian_density,
    hessian_eigenvalues,
    hessian_trace,
    interpolate,
    log_evidence,
    pca_directions,
    sharpness,
    stream_batches,
    trajectory_landscape,
)
from .modules import AntiGeneralizationModule

__all__ = [
    # modules
    "AntiGeneralizationModule",
    # callbacks
    "LossLandscapeMonitor",
    "NoiseScaleMonitor",
    "SharpnessMonitor",
    "TrajectoryMonitor",
    "VolumeMonitor",
    # functions
    "compute_landscape",
    "compute_landscape_in_chunks",
    "eigenvalue_ratio_map",
    "evaluate",
    "function_volume",
    "hessian_density",
    "hessian_eigenvalues",
    "hessian_trace",
    "interpolate",
    "log_evidence",
    "pca_directions",
    "sharpness",
    "stream_batches",
    "trajectory_landscape",
    # results
    "EigenvalueResult",
    "EvidenceResult",
    "LandscapeResult",
    "PCAResult",
    "ResultFileError",
    "SharpnessRecord",
    "SharpnessResult",
    "SpectralDensity",
    "TrajectoryResult",
    "VolumeResult",
]
