"""Scikit-learn's 8×8 digits as a LightningDataModule, two small classifiers and a LightningModule.

The data ships with scikit-learn (no download): 1797 grayscale 8×8 images of the digits 0–9,
scaled to [0, 1] and shaped ``(1, 8, 8)``. A fixed, seeded split gives 1200 training, 297
validation and 300 test images.
"""

from __future__ import annotations

from typing import Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class DigitsDataModule(pl.LightningDataModule):
    """Scikit-learn digits, split 1200 / 297 / 300 (train / val / test) with ``split_seed``."""

    def __init__(self, batch_size: int = 64, split_seed: int = 0, num_workers: int = 0) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.split_seed = split_seed
        self.num_workers = num_workers

    def setup(self, stage: str | None = None) -> None:
        from sklearn.datasets import load_digits

        images, labels = load_digits(return_X_y=True)
        x = torch.tensor(images, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
        y = torch.tensor(labels, dtype=torch.long)
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(self.split_seed))
        train, val, test = order[:1200], order[1200:1497], order[1497:]
        self.train_set = TensorDataset(x[train], y[train])
        self.val_set = TensorDataset(x[val], y[val])
        self.test_set = TensorDataset(x[test], y[test])

    def _loader(self, dataset: TensorDataset, shuffle: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)


def make_mlp(hidden: int = 64) -> nn.Module:
    """A 64-hidden-10 ReLU MLP on flattened images."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def make_cnn(channels: int = 16, dropout: float = 0.1) -> nn.Module:
    """Two 3×3 conv blocks with BatchNorm, max-pooling, dropout and a linear head."""
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(channels * 16, 10),
    )


def sgd_trained(
    arch: Literal["mlp", "cnn"], epochs: int = 5, seed: int = 0
) -> tuple[nn.Module, TensorDataset]:
    """``make_mlp()``/``make_cnn()`` after ``epochs`` of SGD (lr 0.05, momentum 0.9, batches of 64)
    in a plain torch loop, and the training set: trained weights without a Trainer, for the
    benchmarks and tests.
    """
    torch.manual_seed(seed)
    data = DigitsDataModule(batch_size=64)
    data.setup()
    model = make_cnn() if arch == "cnn" else make_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(epochs):
        for x, y in data.train_dataloader():
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
    return model, data.train_set


class DigitsClassifier(pl.LightningModule):
    """A classifier of the digits trained with SGD (momentum) or Adam and cross-entropy.

    Args:
        arch: ``"cnn"`` (BatchNorm + dropout) or ``"mlp"``.
        optimizer: ``"sgd"`` (momentum 0.9) or ``"adam"``.
        lr: learning rate.
        weight_decay: L2 penalty of the optimizer.
    """

    def __init__(
        self,
        arch: Literal["cnn", "mlp"] = "cnn",
        optimizer: Literal["sgd", "adam"] = "sgd",
        lr: float = 0.05,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = make_cnn() if arch == "cnn" else make_mlp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(-1) == y).float().mean()
        self.log(f"{stage}/loss", loss, prog_bar=stage != "train")
        self.log(f"{stage}/accuracy", acc, prog_bar=stage != "train")
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self):
        hp = self.hparams
        if hp.optimizer == "adam":
            return torch.optim.Adam(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        return torch.optim.SGD(self.parameters(), lr=hp.lr, momentum=0.9, weight_decay=hp.weight_decay)
