"""CIFAR-10 from the user's own files, CIFAR ResNets with and without skip connections.

Data: the python version of CIFAR-10 as torchvision and the dataset's authors distribute it,
``<root>/cifar-10-batches-py/{data_batch_1..5, test_batch}``. Nothing is downloaded: with the files
missing, :class:`CIFAR10DataModule` says where it looked and how to get them.

Models: the CIFAR ResNets of He et al. 2016 (depth 6n+2: ResNet-20 has n=3, ResNet-56 n=9; 16/32/64
channels; 1×1 convolution + BatchNorm on the shortcut where the shape changes) and, with
``skip=False``, the same network without shortcuts (Li et al.'s "noshort" variants, whose landscapes
become chaotic with depth).
"""

from __future__ import annotations

import os
import pickle
from typing import Literal

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILES = ["test_batch"]
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


class _ArraysOnly(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a crafted file cannot run code."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("_codecs", "encode"),  # how protocol 2 stores bytes
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing {module}.{name} in a CIFAR-10 batch file: only numpy arrays and plain "
                "containers are expected (a file holding other objects could run code when read)."
            )
        return super().find_class(module, name)


def read_cifar10(root: str, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` from the CIFAR-10 python batches."""
    folder = os.path.join(os.path.expanduser(root), FOLDER)
    names = TRAIN_FILES if train else TEST_FILES
    missing = [n for n in names if not os.path.isfile(os.path.join(folder, n))]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 not found: {missing} missing under {folder!r}. Expected the python version "
            f"({FOLDER}/data_batch_1..5 and test_batch) from https://www.cs.toronto.edu/~kriz/cifar.html "
            "(cifar-10-python.tar.gz, unpacked into `root`), or run "
            "`torchvision.datasets.CIFAR10(root, download=True)` once on a machine with internet."
        )
    images, labels = [], []
    for name in names:
        with open(os.path.join(folder, name), "rb") as fh:
            entry = _ArraysOnly(fh, encoding="latin1").load()  # the official files are python pickles
        images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(entry["labels"] if "labels" in entry else entry["fine_labels"])
    return torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.long)


class CIFAR10DataModule(pl.LightningDataModule):
    """CIFAR-10 read from ``root`` (no download), normalized, without augmentation.

    Augmentation (random crop with 4-pixel padding, horizontal flip) is applied to training batches
    by :class:`CifarClassifier` after transfer to the device, so the data set itself stays clean and
    the landscape monitors evaluate the un-augmented training data, as Li et al. require.

    Args:
        root: folder containing ``cifar-10-batches-py``.
        batch_size: training batch size.
        num_workers: data-loader workers.
        train_subset: use only the first ``train_subset`` training images (for quick runs).
    """

    def __init__(
        self, root: str, batch_size: int = 128, num_workers: int = 2, train_subset: int | None = None
    ):
        super().__init__()
        self.root = root
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.train_subset = train_subset

    def _dataset(self, train: bool) -> TensorDataset:
        images, labels = read_cifar10(self.root, train)
        if train and self.train_subset is not None:
            images, labels = images[: self.train_subset], labels[: self.train_subset]
        mean = torch.tensor(MEAN).view(1, 3, 1, 1)
        std = torch.tensor(STD).view(1, 3, 1, 1)
        return TensorDataset((images.float() / 255.0 - mean) / std, labels)

    def setup(self, stage: str | None = None) -> None:
        self.train_set = self._dataset(train=True)
        self.test_set = self._dataset(train=False)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, self.batch_size, shuffle=True, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, 512, num_workers=self.num_workers)


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride: int, skip: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.skip = skip
        self.shortcut: nn.Module = nn.Identity()
        if skip and (stride != 1 or in_channels != channels):
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.skip:
            out = out + self.shortcut(x)
        return F.relu(out)


def cifar_resnet(depth: int = 20, skip: bool = True, num_classes: int = 10) -> nn.Module:
    """ResNet-``depth`` for 32×32 images (depth = 6n + 2), optionally without shortcuts.

    >>> sum(p.numel() for p in cifar_resnet(20).parameters())
    272474
    """
    if (depth - 2) % 6 != 0:
        raise ValueError(f"`depth` must be 6n + 2 (20, 32, 44, 56, 110), got {depth}.")
    n = (depth - 2) // 6
    layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    in_channels = 16
    for channels, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(n):
            layers.append(BasicBlock(in_channels, channels, stride if i == 0 else 1, skip))
            in_channels = channels
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes)]
    return nn.Sequential(*layers)


class CifarClassifier(pl.LightningModule):
    """A CIFAR ResNet trained with SGD + momentum, weight decay and a cosine schedule.

    Args:
        depth: 20 or 56 (any 6n + 2).
        skip: keep the shortcut connections (``False``: Li et al.'s "noshort" network).
        lr: initial learning rate.
        weight_decay: L2 penalty.
        augment: random crop (4-pixel padding) and horizontal flip of training batches.
    """

    def __init__(
        self,
        depth: Literal[20, 56] = 20,
        skip: bool = True,
        lr: float = 0.1,
        weight_decay: float = 5e-4,
        augment: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = cifar_resnet(depth, skip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _training(self) -> bool:
        try:
            return self.trainer.training
        except RuntimeError:  # not attached to a Trainer (the lightning-landscape command)
            return False

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if self._training() and self.hparams.augment:
            x, y = batch
            padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
            i, j = torch.randint(0, 9, (2,)).tolist()
            x = padded[..., i : i + 32, j : j + 32]
            flip = torch.rand(x.shape[0], device=x.device) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            batch = (x, y)
        return batch

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.log(f"{stage}/loss", loss, prog_bar=stage == "val")
        self.log(f"{stage}/accuracy", (logits.argmax(-1) == y).float().mean(), prog_bar=stage == "val")
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(
            self.parameters(), lr=self.hparams.lr, momentum=0.9, weight_decay=self.hparams.weight_decay
        )
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(self.trainer.max_epochs, 1)
        )
        return {"optimizer": optimizer, "lr_scheduler": schedule}
