from .landscape import LossLandscapeMonitor
from .trajectory import TrajectoryMonitor

__all__ = ["LossLandscapeMonitor", "TrajectoryMonitor"]
