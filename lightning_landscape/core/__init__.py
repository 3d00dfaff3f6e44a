"""Pure-torch computations: no Lightning, no matplotlib (a test enforces it).

Functions here take a module and batches, run on the module's device, leave the module and every
random stream exactly as they were, and return frozen result dataclasses holding CPU tensors.
"""

from .blocks import Blockwise
from .chunked import compute_landscape_in_chunks
from .connectivity import BarrierMatrix, ConnectivityResult, barrier_matrix, connect
from .curvature import (
    EigenvalueRatioMap,
    EigenvalueResult,
    PerBatchEigenvalues,
    SpectralDensity,
    eigenvalue_ratio_map,
    hessian_density,
    hessian_eigenvalues,
    hessian_trace,
)
from .directions import cosine_similarity, random_directions
from .distributed import sharded
from .evaluation import Evaluation, StreamedBatches, cache_batches, evaluate, stream_batches
from .evidence import EvidenceResult, log_evidence
from .interpolation import interpolate
from .landscape import compute_landscape, grid_coordinates
from .noise import GradientNoiseScale
from .normalization import normalize_direction, normalize_directions
from .params import perturbable_parameters, preserve_module_state, preserve_rng_state
from .results import LandscapeResult, ResultFile, ResultFileError, SharpnessRecord
from .sharpness import (
    BasinVolumeResult,
    SharpnessResult,
    adaptive_worst_sharpness,
    average_sharpness,
    basin_volume,
    filter_normalized_eigenvalue,
    keskar_sharpness,
    sharpness,
)
from .spectrum import TraceEstimate
from .trajectory import PCAResult, SnapshotBuffer, TrajectoryResult, pca_directions, trajectory_landscape
from .volume import VolumeResult, function_volume

__all__ = [
    "EigenvalueRatioMap",
    "EigenvalueResult",
    "Evaluation",
    "EvidenceResult",
    "VolumeResult",
    "function_volume",
    "log_evidence",
    "LandscapeResult",
    "GradientNoiseScale",
    "ResultFile",
    "ResultFileError",
    "TraceEstimate",
    "SharpnessRecord",
    "BasinVolumeResult",
    "SharpnessResult",
    "eigenvalue_ratio_map",
    "sharpness",
    "adaptive_worst_sharpness",
    "average_sharpness",
    "basin_volume",
    "filter_normalized_eigenvalue",
    "keskar_sharpness",
    "PCAResult",
    "SnapshotBuffer",
    "SpectralDensity",
    "TrajectoryResult",
    "interpolate",
    "BarrierMatrix",
    "Blockwise",
    "PerBatchEigenvalues",
    "ConnectivityResult",
    "barrier_matrix",
    "connect",
    "pca_directions",
    "trajectory_landscape",
    "StreamedBatches",
    "cache_batches",
    "compute_landscape",
    "compute_landscape_in_chunks",
    "stream_batches",
    "cosine_similarity",
    "evaluate",
    "hessian_density",
    "hessian_eigenvalues",
    "hessian_trace",
    "grid_coordinates",
    "normalize_direction",
    "normalize_directions",
    "perturbable_parameters",
    "preserve_module_state",
    "preserve_rng_state",
    "random_directions",
    "sharded",
]
