"""What every function checks before any work, the way the monitors' setup does: the model, the
batches, and one evaluation of the loss on the first batch, each refused naming the argument.

:func:`evaluation_inputs` is the one entry: it resolves ``loss_fn`` (:mod:`.losses`), caches the
batches on the model's device and evaluates the loss once, so that a model that is no module (a
state dict), a data set in place of batches, a loss that cannot read the batches or does not
depend on the weights fails at the call with one clear error, the same in every function.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .batches import StreamedBatches, autograd_batch, cache_batches
from .distributed import guarded_sum
from .evaluation import check_batches, check_model, loss_name, loss_on
from .losses import LossFn, LossSpec, resolve_loss_fn
from .params import gradient_context, module_device

__all__ = ["check_loss_fn", "evaluation_inputs"]


def check_loss_fn(
    model: nn.Module,
    batch: Any,
    loss_fn: LossFn | None = None,
    *,
    name: str = "loss_fn",
    finite: bool = True,
    reaches_weights: bool = True,
) -> float:
    """Evaluate the loss once on ``batch`` and refuse what no instrument could use, before any work.

    The loss (``loss_fn(model, batch)``, or the default cross-entropy) is computed in eval mode with
    gradients on, inside :func:`~lightning_landscape.core.base.params.gradient_context` (nothing of the
    model or the random streams changes), and must be a floating-point scalar tensor, finite (unless
    ``finite=False``: a diverged model's loss is recorded, not refused), whose gradient reaches at
    least one trainable parameter (unless ``reaches_weights=False``).

    Returns:
        The loss, as a float.

    Raises:
        ValueError: naming ``name``, saying what is wrong (the batch does not suit the loss's form,
            a non-scalar or non-finite value, no dependence on the parameters).

    Example:
        >>> net = nn.Linear(3, 2)
        >>> check_loss_fn(net, (torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))) > 0
        True
        >>> constant = lambda m, b: torch.tensor(1.0)
        >>> check_loss_fn(net, (torch.randn(4, 3), None), constant)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: `loss_fn` ... does not depend on the model's trainable parameters...
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    with gradient_context(model):
        loss = loss_on(model, autograd_batch(batch), loss_fn, name)
        value = float(loss.detach())
        if finite and not torch.isfinite(loss.detach()):
            raise ValueError(
                f"`{name}` ({loss_name(loss_fn)}) is {value} on an evaluation batch at the current "
                "weights: it must be finite."
            )
        if not reaches_weights:
            return value
        grads = torch.autograd.grad(loss, trainable, allow_unused=True) if loss.requires_grad else []
        if not trainable or all(g is None for g in grads):
            raise ValueError(
                f"`{name}` ({loss_name(loss_fn)}) does not depend on the model's trainable "
                "parameters: it must be computed from the model's outputs."
            )
    return value


def evaluation_inputs(
    model: Any,
    batches: Any,
    loss_fn: LossSpec,
    num_samples: int | None = None,
    *,
    reaches_weights: bool = True,
) -> tuple[LossFn, list[Any] | StreamedBatches]:
    """The resolved loss and the batches on the model's device, after :func:`check_model`,
    :func:`check_batches` and one evaluation of the loss on the first batch
    (:func:`check_loss_fn`; a non-finite value is let through: a diverged model is recorded)."""
    check_model(model)
    check_batches(batches)
    loss = resolve_loss_fn(loss_fn, model)
    cached = cache_batches(batches, module_device(model), num_samples)

    def check() -> torch.Tensor:  # under several processes a failure on one fails every one
        check_loss_fn(model, next(iter(cached)), loss, finite=False, reaches_weights=reaches_weights)
        return torch.zeros(1)

    guarded_sum(check, shape=(1,), dtype=torch.float64, device=module_device(model))
    return loss, cached
