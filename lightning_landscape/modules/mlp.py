"""A plain ReLU MLP that LightningCLI configs can build by name."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

__all__ = ["MLP"]


class MLP(nn.Sequential):
    """``Flatten → (Linear → ReLU) × len(hidden) → Linear``.

    Example:
        >>> MLP(2, [8, 8], 2)(__import__("torch").zeros(3, 2)).shape
        torch.Size([3, 2])
    """

    def __init__(self, in_features: int, hidden: Sequence[int] = (64,), num_classes: int = 2) -> None:
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)
