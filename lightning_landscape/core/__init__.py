"""Pure-torch computations: no Lightning, no matplotlib (a test enforces it).

Functions here take a module and batches, run on the module's device, leave the module and every
random stream exactly as they were, and return frozen result dataclasses holding CPU tensors.
"""

from .base.batches import StreamedBatches, cache_batches, stream_batches
from .base.distributed import sharded
from .base.evaluation import Evaluation, evaluate
from .base.params import perturbable_parameters, preserve_module_state, preserve_rng_state
from .base.results import LandscapeResult, ResultFile, ResultFileError, SharpnessRecord
from .curvature.blocks import Blockwise, blockwise
from .curvature.density import SpectralDensity, hessian_density
from .curvature.eigenvalues import (
    EigenvalueResult,
    PerBatchEigenvalues,
    hessian_eigenvalues,
    hessian_eigenvalues_per_batch,
)
from .curvature.trace import hessian_trace
from .landscapes._grid import grid_coordinates
from .landscapes.chunked import compute_landscape_in_chunks
from .landscapes.connectivity import BarrierMatrix, ConnectivityResult, barrier_matrix, connect
from .landscapes.directions import cosine_similarity, random_directions
from .landscapes.interpolation import interpolate
from .landscapes.landscape import compute_landscape
from .landscapes.normalization import normalize_direction, normalize_directions
from .landscapes.ratio_map import EigenvalueRatioMap, eigenvalue_ratio_map
from .landscapes.trajectory import (
    PCAResult,
    SnapshotBuffer,
    TrajectoryResult,
    pca_directions,
    trajectory_landscape,
)
from .linalg.spectrum import TraceEstimate
from .measures.evidence import EvidenceResult, log_evidence
from .measures.noise import GradientNoiseScale
from .measures.registry import (
    BasinVolumeResult,
    SharpnessResult,
    measure_names,
    register_measure,
    unregister_measure,
)
from .measures.report import SharpnessReport
from .measures.sharpness import (
    adaptive_worst_sharpness,
    average_sharpness,
    basin_volume,
    filter_normalized_eigenvalue,
    keskar_sharpness,
    sharpness,
    top_eigenvalue_sharpness,
    trace_sharpness,
)
from .measures.volume import VolumeResult, function_volume

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
    "SharpnessReport",
    "BasinVolumeResult",
    "SharpnessResult",
    "eigenvalue_ratio_map",
    "sharpness",
    "adaptive_worst_sharpness",
    "average_sharpness",
    "basin_volume",
    "filter_normalized_eigenvalue",
    "keskar_sharpness",
    "top_eigenvalue_sharpness",
    "trace_sharpness",
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
    "hessian_eigenvalues_per_batch",
    "blockwise",
    "measure_names",
    "register_measure",
    "unregister_measure",
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
