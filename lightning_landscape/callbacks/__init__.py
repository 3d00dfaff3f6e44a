from .landscape import LossLandscapeMonitor
from .noise_scale import NoiseScaleMonitor
from .sharpness import SharpnessMonitor
from .trajectory import TrajectoryMonitor
from .volume import VolumeMonitor

__all__ = [
    "LossLandscapeMonitor",
    "NoiseScaleMonitor",
    "SharpnessMonitor",
    "TrajectoryMonitor",
    "VolumeMonitor",
]
