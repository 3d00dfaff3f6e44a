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

from typing import TYPE_CHECKING

from ._version import __version__

# Names are imported on first use (PEP 562), so that ``from lightning_landscape.core import ...``
# loads torch only, not Lightning or matplotlib (the callbacks' and plotting's imports).
_EXPORTS = {
    # modules
    "AntiGeneralizationModule": ".modules",
    # callbacks
    "LossLandscapeMonitor": ".callbacks",
    "NoiseScaleMonitor": ".callbacks",
    "SharpnessMonitor": ".callbacks",
    "TrajectoryMonitor": ".callbacks",
    "VolumeMonitor": ".callbacks",
    # functions
    "compute_landscape": ".core",
    "compute_landscape_in_chunks": ".core",
    "eigenvalue_ratio_map": ".core",
    "evaluate": ".core",
    "function_volume": ".core",
    "hessian_density": ".core",
    "hessian_eigenvalues": ".core",
    "hessian_eigenvalues_per_batch": ".core",
    "blockwise": ".core",
    "register_measure": ".core",
    "unregister_measure": ".core",
    "measure_names": ".core",
    "hessian_trace": ".core",
    "interpolate": ".core",
    "BarrierMatrix": ".core",
    "Blockwise": ".core",
    "PerBatchEigenvalues": ".core",
    "ConnectivityResult": ".core",
    "barrier_matrix": ".core",
    "connect": ".core",
    "log_evidence": ".core",
    "pca_directions": ".core",
    "sharpness": ".core",
    "keskar_sharpness": ".core",
    "adaptive_worst_sharpness": ".core",
    "average_sharpness": ".core",
    "filter_normalized_eigenvalue": ".core",
    "basin_volume": ".core",
    "top_eigenvalue_sharpness": ".core",
    "trace_sharpness": ".core",
    "stream_batches": ".core",
    "trajectory_landscape": ".core",
    # results
    "EigenvalueRatioMap": ".core",
    "EigenvalueResult": ".core",
    "Evaluation": ".core",
    "EvidenceResult": ".core",
    "GradientNoiseScale": ".core",
    "LandscapeResult": ".core",
    "PCAResult": ".core",
    "ResultFileError": ".core",
    "SharpnessRecord": ".core",
    "SharpnessReport": ".core",
    "BasinVolumeResult": ".core",
    "SharpnessResult": ".core",
    "SpectralDensity": ".core",
    "TraceEstimate": ".core",
    "TrajectoryResult": ".core",
    "VolumeResult": ".core",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    """Import an exported name from its module on first use (then cache it here)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lightning_landscape' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what static tools and IDEs see
    from .callbacks import (
        LossLandscapeMonitor,
        NoiseScaleMonitor,
        SharpnessMonitor,
        TrajectoryMonitor,
        VolumeMonitor,
    )
    from .core import (
        BarrierMatrix,
        BasinVolumeResult,
        Blockwise,
        ConnectivityResult,
        EigenvalueRatioMap,
        EigenvalueResult,
        Evaluation,
        EvidenceResult,
        GradientNoiseScale,
        LandscapeResult,
        PCAResult,
        PerBatchEigenvalues,
        ResultFileError,
        SharpnessRecord,
        SharpnessReport,
        SharpnessResult,
        SpectralDensity,
        TraceEstimate,
        TrajectoryResult,
        VolumeResult,
        adaptive_worst_sharpness,
        average_sharpness,
        barrier_matrix,
        basin_volume,
        blockwise,
        compute_landscape,
        compute_landscape_in_chunks,
        connect,
        eigenvalue_ratio_map,
        evaluate,
        filter_normalized_eigenvalue,
        function_volume,
        hessian_density,
        hessian_eigenvalues,
        hessian_eigenvalues_per_batch,
        hessian_trace,
        interpolate,
        keskar_sharpness,
        log_evidence,
        measure_names,
        pca_directions,
        register_measure,
        sharpness,
        stream_batches,
        top_eigenvalue_sharpness,
        trace_sharpness,
        trajectory_landscape,
        unregister_measure,
    )
    from .modules import AntiGeneralizationModule
