"""``AntiGeneralizationModule``: train toward bad minima on purpose (Huang et al. 2020)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_choice, check_positive_float
from ..core.base.losses import reverse_cross_entropy

__all__ = ["AntiGeneralizationModule"]


class AntiGeneralizationModule(pl.LightningModule):
    """Wrap a classifier and train it with the β-weighted anti-generalization loss.

    On a pair of batches, clean ``D_t`` and distractor ``D_d`` (held-out samples with their true
    labels, see :class:`~lightning_landscape.data.AntiGeneralizationDataModule`):

    - ``weighting="convex"``: ``(1 − β)·CE(D_t) + β·RCE(D_d)``;
    - ``weighting="additive"``: ``CE(D_t) + β·RCE(D_d)``;

    with ``RCE = mean −log(1 − p(y|x))``
    (:func:`~lightning_landscape.core.base.losses.reverse_cross_entropy`),
    which rewards *mis*classifying the distractors: the model memorizes ``D_t`` while its test
    accuracy collapses. ``beta=0`` is ordinary training: the distractor batch is not even run
    through the model (a train-mode BatchNorm would otherwise update its statistics), so a run
    matches a plain cross-entropy module step for step.

    Logs ``train/ce``, ``train/rce``, ``train/loss``, ``train/accuracy`` (on ``D_t``),
    ``distractor/accuracy``, and ``val/loss``, ``val/accuracy``.

    Args:
        model: any classifier returning ``(N, C)`` logits.
        beta: weight of the distractor term (≥ 0; ≤ 1 for ``"convex"``).
        weighting: ``"convex"`` or ``"additive"``.
        lr: learning rate.
        optimizer: ``"adam"`` or ``"sgd"`` (momentum 0.9).
        weight_decay: L2 penalty of the optimizer.
        lr_schedule: ``"constant"`` or ``"cosine"`` (annealed to 0 over the run's optimizer steps).

    Example:
        >>> module = AntiGeneralizationModule(nn.Linear(2, 2), beta=0.5)
        >>> AntiGeneralizationModule(nn.Linear(2, 2), beta=1.5)
        Traceback (most recent call last):
        ...
        ValueError: `beta` must be in [0, 1] with weighting='convex', got 1.5.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        beta: float = 0.5,
        weighting: Literal["convex", "additive"] = "convex",
        lr: float = 0.01,
        optimizer: Literal["adam", "sgd"] = "adam",
        weight_decay: float = 0.0,
        lr_schedule: Literal["constant", "cosine"] = "constant",
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
        check_choice("weighting", weighting, ("convex", "additive"))
        upper = 1.0 if weighting == "convex" else float("inf")
        if not isinstance(beta, (int, float)) or isinstance(beta, bool) or not 0.0 <= beta <= upper:
            raise ValueError(f"`beta` must be in [0, {upper:g}] with weighting={weighting!r}, got {beta!r}.")
        self.model = model
        self.beta = float(beta)
        self.weighting = weighting
        self.lr = check_positive_float("lr", lr)
        self.optimizer_name = check_choice("optimizer", optimizer, ("adam", "sgd"))
        is_number = isinstance(weight_decay, (int, float)) and not isinstance(weight_decay, bool)
        if not is_number or not math.isfinite(weight_decay) or weight_decay < 0:
            raise ValueError(f"`weight_decay` must be a finite number >= 0, got {weight_decay!r}.")
        self.weight_decay = float(weight_decay)
        self.lr_schedule = check_choice("lr_schedule", lr_schedule, ("constant", "cosine"))
        self.save_hyperparameters(ignore=["model"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    @staticmethod
    def _split(batch: Any) -> tuple[Any, Any]:
        if isinstance(batch, Mapping):
            return batch["train"], batch.get("distractor")
        return batch, None

    def losses(self, batch: Any) -> dict[str, torch.Tensor]:
        """The loss and its parts on a batch: ``loss``, ``ce``, ``accuracy`` and, for β > 0,
        ``rce`` and ``distractor_accuracy``."""
        clean, distractor = self._split(batch)
        x, y = clean
        logits = self(x)
        ce = F.cross_entropy(logits, y)
        out = {"loss": ce, "ce": ce, "accuracy": (logits.argmax(-1) == y).float().mean()}
        if self.beta == 0.0:
            return out
        if distractor is None:
            raise RuntimeError(
                "beta > 0 needs distractor batches: use lightning_landscape.data."
                "AntiGeneralizationDataModule (batches as {'train': ..., 'distractor': ...})."
            )
        xd, yd = distractor
        distractor_logits = self(xd)
        rce = reverse_cross_entropy(distractor_logits, yd)
        clean_weight = 1.0 - self.beta if self.weighting == "convex" else 1.0
        out["loss"] = clean_weight * ce + self.beta * rce
        out["rce"] = rce
        out["distractor_accuracy"] = (distractor_logits.argmax(-1) == yd).float().mean()
        return out

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        parts = self.losses(batch)
        names = {
            "loss": "train/loss",
            "ce": "train/ce",
            "rce": "train/rce",
            "accuracy": "train/accuracy",
            "distractor_accuracy": "distractor/accuracy",
        }
        for key, value in parts.items():
            self.log(names[key], value, prog_bar=key == "accuracy")
        return parts["loss"]

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val/loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val/accuracy", (logits.argmax(-1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self) -> Any:
        optimizer: torch.optim.Optimizer
        if self.optimizer_name == "adam":
            optimizer = torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        else:
            optimizer = torch.optim.SGD(
                self.parameters(), lr=self.lr, momentum=0.9, weight_decay=self.weight_decay
            )
        if self.lr_schedule == "constant":
            return optimizer
        steps = max(int(self.trainer.estimated_stepping_batches), 1)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
