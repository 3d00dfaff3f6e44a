"""The user's LightningModule as it is: its own loss, its batches through its batch hooks.

The forms a ``loss_fn`` takes, and how each resolves to the core's ``loss_fn(model, batch)``, live
in :mod:`lightning_landscape.core.base.losses` (no Lightning there: a LightningModule is told by its
``training_step``); they are named here too, where the monitors and the CLI have always found
them. This module adds what needs Lightning: the batch hooks (``on_before_batch_transfer``,
``transfer_batch_to_device``, ``on_after_batch_transfer``, the datamodule's where it overrides
them, as Lightning chooses) as a ``transfer(batch)`` function, so that instruments see exactly the
batches training sees.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .core.base.batches import move_to_device
from .core.base.losses import (
    CROSS_ENTROPY,
    LossSpec,
    check_loss_spec,
    describe_loss,
    move_criterion,
    quiet_call,
    resolve_loss_fn,
)
from .core.base.params import preserve_rng_state

__all__ = [
    "CROSS_ENTROPY",
    "LossSpec",
    "batch_transfer",
    "check_loss_spec",
    "move_criterion",
    "describe_loss",
    "quiet_call",
    "resolve_loss_fn",
]

_BATCH_HOOKS = ("on_before_batch_transfer", "transfer_batch_to_device", "on_after_batch_transfer")


# ------------------------------------------------------------------ batches
def _hook_owner(name: str, module: nn.Module, datamodule: Any) -> Any:
    """The datamodule where it overrides the hook, else the module (Lightning's choice)."""
    if datamodule is not None:
        from lightning.pytorch import LightningDataModule
        from lightning.pytorch.utilities.model_helpers import is_overridden

        if isinstance(datamodule, LightningDataModule) and is_overridden(
            name, datamodule, LightningDataModule
        ):
            return datamodule
    return module


def batch_transfer(
    module: nn.Module, device: torch.device, datamodule: Any = None, dataloader_idx: int = 0
) -> Callable[[Any], Any]:
    """``transfer(batch)``: the batch as Lightning hands it to ``training_step`` on ``device``.

    Calls ``on_before_batch_transfer``, ``transfer_batch_to_device`` and ``on_after_batch_transfer``
    of the datamodule where it overrides them, else of the module (a plain ``nn.Module`` has none:
    the batch is only moved), with every random stream restored afterwards.

    Example:
        >>> transfer = batch_transfer(nn.Linear(2, 2), torch.device("cpu"))
        >>> transfer((torch.zeros(3, 2), torch.zeros(3)))[0].shape
        torch.Size([3, 2])
    """
    hooks: list[Any] = [getattr(_hook_owner(n, module, datamodule), n, None) for n in _BATCH_HOOKS]
    if not all(callable(h) for h in hooks):
        return lambda batch: move_to_device(batch, device)
    before, to_device, after = hooks

    def transfer(batch: Any) -> Any:
        with preserve_rng_state():
            batch = before(batch, dataloader_idx)
            batch = to_device(batch, device, dataloader_idx)
            return after(batch, dataloader_idx)

    return transfer
