from .landscape import LossLandscapeMonitor
from .sharpness import SharpnessMonitor
from .trajectory import TrajectoryMonitor

__all__ = ["LossLandscapeMonitor", "SharpnessMonitor", "TrajectoryMonitor"]
