"""lightning_landscape: see why a network generalizes, from a Lightning ``Trainer``.

Callbacks (add to ``Trainer(callbacks=[...])``):
    :class:`LossLandscapeMonitor`

Functions (the same computations without a trainer):
    :func:`compute_landscape`, :func:`evaluate`

Results:
    :class:`LandscapeResult`
"""

__version__ = "0.1.0"

from .callbacks import LossLandscapeMonitor
from .core import LandscapeResult, compute_landscape, evaluate

__all__ = [
    # callbacks
    "LossLandscapeMonitor",
    # functions
    "compute_landscape",
    "evaluate",
    # results
    "LandscapeResult",
]
