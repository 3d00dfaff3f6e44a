"""The loss at many weights: planes, lines, paths. Imports :mod:`..base`, :mod:`..linalg` and
:mod:`..curvature` (for axes along Hessian eigenvectors).

- :mod:`.directions`, :mod:`.normalization`: the axes of a landscape (seeded, given or the
  Hessian's) and Li et al.'s filter and layer normalization.
- :mod:`.landscape`: 1D and 2D landscapes around the current weights; :mod:`.chunked`: the same in
  resumable chunks over streamed or sharded data.
- :mod:`.interpolation`, :mod:`.connectivity`: lines and trained curves between two models.
- :mod:`.trajectory`: the optimizer's path on its PCA plane.
- :mod:`.ratio_map`: the ratio of extreme eigenvalues over a plane.
- ``_grid``, ``_batched`` (internal): the grid engine every one of them evaluates points with.
"""

from .chunked import compute_landscape_in_chunks
from .connectivity import BarrierMatrix, ConnectivityResult, barrier_matrix, connect
from .directions import cosine_similarity, random_directions
from .interpolation import interpolate
from .landscape import compute_landscape
from .normalization import normalize_direction, normalize_directions
from .ratio_map import EigenvalueRatioMap, eigenvalue_ratio_map
from .trajectory import PCAResult, SnapshotBuffer, TrajectoryResult, pca_directions, trajectory_landscape

__all__ = [
    "BarrierMatrix",
    "ConnectivityResult",
    "EigenvalueRatioMap",
    "PCAResult",
    "SnapshotBuffer",
    "TrajectoryResult",
    "barrier_matrix",
    "compute_landscape",
    "compute_landscape_in_chunks",
    "connect",
    "cosine_similarity",
    "eigenvalue_ratio_map",
    "interpolate",
    "normalize_direction",
    "normalize_directions",
    "pca_directions",
    "random_directions",
    "trajectory_landscape",
]
