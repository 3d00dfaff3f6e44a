"""Losses used by the generalization experiments."""

from __future__ import annotations

import torch

__all__ = ["reverse_cross_entropy"]


def reverse_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """``−log(1 − p(y|x))`` of class logits, computed stably (Huang et al. 2020's distractor loss).

    ``log(1 − p_y) = logsumexp_{k≠y} z_k − logsumexp_k z_k``, with the target class masked out of
    the first log-sum-exp, so the loss and its gradient stay finite when ``p_y → 1`` in float32
    (``log(1 − softmax)`` would give ``−inf``). Minimizing it *mis*classifies the sample. For two
    classes it equals cross-entropy with the label flipped.

    Args:
        logits: ``(N, C)`` class logits, ``C ≥ 2``.
        target: ``(N,)`` integer labels.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Example:
        >>> logits = torch.tensor([[2.0, 0.0, -1.0]])
        >>> p = logits.softmax(-1)[0, 0]
        >>> torch.allclose(reverse_cross_entropy(logits, torch.tensor([0])), -torch.log(1 - p))
        True
    """
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"`logits` must have shape (N, C) with C >= 2, got {tuple(logits.shape)}.")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"`reduction` must be one of ('mean', 'sum', 'none'), got {reduction!r}.")
    everything = torch.logsumexp(logits, dim=-1)
    is_target = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, target.unsqueeze(-1), True)
    others = torch.logsumexp(logits.masked_fill(is_target, float("-inf")), dim=-1)
    loss = everything - others
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss
