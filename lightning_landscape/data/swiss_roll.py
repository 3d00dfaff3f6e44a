"""The two-class swiss roll (two interleaved spirals) of Huang et al. 2020."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from .._checks import check_int, check_positive_float, check_seed

__all__ = ["SwissRollDataModule", "two_spirals"]


def two_spirals(n: int, noise: float = 0.5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points of two interleaved spirals (half per class), shuffled, as in Huang et al.'s code.

    ``t = √U · 600° `` (in radians); class 0 is ``(−1.5 t cos t, 1.5 t sin t) + noise·N(0, 1)``,
    class 1 its point reflection.

    >>> x, y = two_spirals(10, seed=1)
    >>> tuple(x.shape), int(y.sum())
    ((10, 2), 5)
    """
    generator = torch.Generator().manual_seed(seed)
    half = n // 2
    t = torch.sqrt(torch.rand(half, generator=generator)) * 600 * 2 * math.pi / 360
    arm = torch.stack([-1.5 * t * torch.cos(t), 1.5 * t * torch.sin(t)], dim=1)
    points = torch.cat([arm, -arm]) + noise * torch.randn(2 * half, 2, generator=generator)
    labels = torch.cat([torch.zeros(half, dtype=torch.long), torch.ones(half, dtype=torch.long)])
    order = torch.randperm(2 * half, generator=generator)
    return points[order], labels[order]


class SwissRollDataModule(pl.LightningDataModule):
    """Swiss-roll train/test sets (Huang et al.: 400 points, noise 0.5, 200/200), full batch by default.

    Args:
        num_train: training points.
        num_test: test points (used as the validation set).
        noise: standard deviation of the Gaussian noise.
        seed: seed of the draw.
        batch_size: batch size (default: the whole training set).
    """

    def __init__(
        self,
        num_train: int = 200,
        num_test: int = 200,
        noise: float = 0.5,
        seed: int = 0,
        batch_size: int | None = None,
    ) -> None:
        super().__init__()
        self.num_train = check_int("num_train", num_train, minimum=2)
        self.num_test = check_int("num_test", num_test, minimum=2)
        self.noise = check_positive_float("noise", noise) if noise != 0 else 0.0
        self.seed = check_seed("seed", seed)
        self.batch_size = batch_size

    def setup(self, stage: str | None = None) -> None:
        x, y = two_spirals(self.num_train + self.num_test, self.noise, self.seed)
        self.train_set = TensorDataset(x[: self.num_train], y[: self.num_train])
        self.test_set = TensorDataset(x[self.num_train :], y[self.num_train :])

    def train_dataloader(self) -> DataLoader:
        size = self.batch_size or len(self.train_set)
        return DataLoader(
            self.train_set, batch_size=size, shuffle=True, generator=torch.Generator().manual_seed(self.seed)
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=self.batch_size or len(self.test_set))
