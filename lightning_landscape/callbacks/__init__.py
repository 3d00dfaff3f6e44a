from .landscape import LossLandscapeMonitor

__all__ = ["LossLandscapeMonitor"]
