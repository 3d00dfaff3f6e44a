"""The base of the core: what every instrument stands on, importing nothing else of the core.

- :mod:`.params`: the parameters an instrument covers, and the guards that leave a model, its
  ``.grad`` and every random stream exactly as they were (``observing``, ``preserve_module_state``,
  ``preserve_rng_state``, ``gradient_context``).
- :mod:`.distributed`: sums over processes (``sharded``, ``guarded_sum``), injected by the caller.
- :mod:`.batches`: batch structures, sizes and devices; the evaluation data (a fixed subset cached on
  the device, or the whole data set streamed).
- :mod:`.losses`: every form a ``loss_fn`` takes, resolved one way.
- :mod:`.evaluation`: the loss and accuracy of a model over batches, weighted per sample.
- :mod:`.results`: result files (a registry of result types, files that are data, never code).
- :mod:`.progress`: progress bars and callbacks of long work.
- ``_inputs`` (internal): the checks every function runs before any work.
"""

from .batches import StreamedBatches, cache_batches, evaluation_subset, stream_batches
from .distributed import sharded
from .evaluation import Evaluation, evaluate
from .losses import LossFn, LossSpec, resolve_loss_fn, reverse_cross_entropy
from .params import (
    gradient_context,
    observing,
    perturbable_parameters,
    preserve_module_state,
    preserve_rng_state,
)
from .results import LandscapeResult, ResultFile, ResultFileError, SharpnessRecord, load_result

__all__ = [
    "Evaluation",
    "LandscapeResult",
    "LossFn",
    "LossSpec",
    "ResultFile",
    "ResultFileError",
    "SharpnessRecord",
    "StreamedBatches",
    "cache_batches",
    "evaluate",
    "evaluation_subset",
    "gradient_context",
    "load_result",
    "observing",
    "perturbable_parameters",
    "preserve_module_state",
    "preserve_rng_state",
    "resolve_loss_fn",
    "reverse_cross_entropy",
    "sharded",
    "stream_batches",
]
