"""Named measures of a minimum: sharpness, evidence, volume, noise. Imports every other room.

- :mod:`.registry`: the one registry of named measures (``sharpness()``, ``SharpnessMonitor`` and
  the CLI compute a measure by its name through it; measures defined elsewhere register here).
- :mod:`.sharpness`: Keskar, adaptive and average sharpness, the filter-normalized eigenvalue,
  basin volume.
- :mod:`.evidence`: the Laplace evidence (Smith & Le 2018).
- :mod:`.volume`: the prior volume of a function (Zhang et al., arXiv 2103.06219).
- :mod:`.noise`: SGD noise scales.
"""

from .evidence import EvidenceResult, log_evidence
from .noise import GradientNoiseScale, gradient_noise_scale, sgd_noise_scale
from .registry import (
    BasinVolumeResult,
    SharpnessResult,
    check_measure_options,
    measure_names,
    register_measure,
    unregister_measure,
)
from .report import SharpnessReport
from .sharpness import (
    adaptive_worst_sharpness,
    average_sharpness,
    basin_volume,
    filter_normalized_eigenvalue,
    keskar_sharpness,
    sharpness,
    top_eigenvalue_sharpness,
    trace_sharpness,
)
from .volume import VolumeResult, function_volume

__all__ = [
    "BasinVolumeResult",
    "EvidenceResult",
    "GradientNoiseScale",
    "SharpnessReport",
    "SharpnessResult",
    "VolumeResult",
    "adaptive_worst_sharpness",
    "average_sharpness",
    "basin_volume",
    "check_measure_options",
    "filter_normalized_eigenvalue",
    "function_volume",
    "gradient_noise_scale",
    "keskar_sharpness",
    "log_evidence",
    "measure_names",
    "register_measure",
    "sgd_noise_scale",
    "sharpness",
    "top_eigenvalue_sharpness",
    "trace_sharpness",
    "unregister_measure",
]
