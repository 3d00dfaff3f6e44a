"""Curvature of the loss at the current weights. Imports :mod:`..base` and :mod:`..linalg`.

- :mod:`.eigenvalues`: extreme Hessian eigenvalues (whole model, per batch) and the
  Hessian's eigenvectors as landscape axes.
- :mod:`.trace`: the Hessian's trace, exact where the network allows, else estimated.
- :mod:`.density`: the spectral density by stochastic Lanczos quadrature.
- :mod:`.blocks`: partitions of the parameters into blocks, and any curvature function per block
  (:func:`.blocks.blockwise`).
"""

from .blocks import Blockwise, blockwise, parameter_blocks
from .density import SpectralDensity, hessian_density
from .eigenvalues import (
    EigenvalueResult,
    PerBatchEigenvalues,
    hessian_eigenvalues,
    hessian_eigenvalues_per_batch,
)
from .trace import hessian_trace

__all__ = [
    "Blockwise",
    "EigenvalueResult",
    "PerBatchEigenvalues",
    "SpectralDensity",
    "blockwise",
    "hessian_density",
    "hessian_eigenvalues",
    "hessian_eigenvalues_per_batch",
    "hessian_trace",
    "parameter_blocks",
]
