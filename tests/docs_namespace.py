"""What the documentation's code blocks assume to exist: a user's LightningModule with a body
(``features``), a head with a low-rank adapter (``classifier``, ``*.lora_*``), the digits data and
its loaders, a few trained solutions and their checkpoints, a saved landscape in the log folder
the docs name. Built in the current folder, small enough for the test suite."""

from __future__ import annotations

import os
import sys

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch import Trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "example_projects", "digits"))

from digits import DigitsDataModule  # noqa: E402


class LoRALinear(nn.Module):
    """``x W^T + b`` plus a rank-2 adapter ``x (B A)^T`` (``lora_A``, ``lora_B``)."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(outputs, inputs) / inputs**0.5)
        self.bias = nn.Parameter(torch.zeros(outputs))
        self.lora_A = nn.Parameter(torch.randn(2, inputs) * 0.01)
        self.lora_B = nn.Parameter(torch.randn(outputs, 2) * 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight + self.lora_B @ self.lora_A, self.bias)


class DocsNet(pl.LightningModule):
    """A small CNN on 8×8 digits: ``features`` (a convolution) and ``classifier`` (with an adapter)."""

    def __init__(self, lr: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten())
        self.classifier = LoRALinear(4 * 64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)


class SmallDigits(DigitsDataModule):
    """The digits split, cut to 96 training and 32 validation images (the docs' blocks run in the
    test suite: 20 epochs of it take a few seconds, with every monitor)."""

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        self.train_set = TensorDataset(*(t[:96] for t in self.train_set.tensors))
        self.val_set = TensorDataset(*(t[:32] for t in self.val_set.tensors))


def _fit(seed: int, epochs: int, datamodule) -> DocsNet:
    pl.seed_everything(seed, verbose=False)
    model = DocsNet()
    Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False).fit(model, datamodule)  # fmt: skip
    return model


def namespace() -> dict:
    """The names the documentation's blocks use, built in the current folder."""
    datamodule = SmallDigits(batch_size=64)
    datamodule.setup("fit")
    model = _fit(0, 2, datamodule)
    other = _fit(1, 2, datamodule)
    third = _fit(2, 1, datamodule)
    loader = datamodule.train_dataloader()
    val_loader = datamodule.val_dataloader()
    x, y = next(iter(loader))
    for name, solution in (("small.ckpt", model), ("large.ckpt", other)):
        torch.save({"state_dict": solution.state_dict()}, name)
    from lightning_landscape import compute_landscape

    folder = os.path.join("lightning_logs", "digits", "version_0", "landscapes")
    os.makedirs(folder, exist_ok=True)
    compute_landscape(model, [(x, y)], num_points=5).save(
        os.path.join(folder, "landscape-epoch=019-step=000380.npz")
    )
    final = {n: p.detach().clone() for n, p in model.named_parameters()}
    snapshots = [{n: p + 0.05 * i * torch.randn_like(p) for n, p in final.items()} for i in range(4)]
    images = torch.cat([b[0] for b in loader])
    labels = torch.cat([b[1] for b in loader])
    return {
        "Trainer": Trainer,
        "model": model,
        "datamodule": datamodule,
        "loader": loader,
        "train_loader": loader,
        "val_loader": val_loader,
        "test_loader": val_loader,
        "batches": [(x, y)],
        "x": x,
        "y": y,
        "inputs": x[:16],
        "make_net": DocsNet,
        "my_mlp": nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 2)),
        "train_set": TensorDataset(images, labels),
        "snapshots": snapshots,
        "final": final,
        "model_seed0": model.state_dict(),
        "model_seed1": other.state_dict(),
        "state_a": model.state_dict(),
        "state_b": other.state_dict(),
        "state_c": third.state_dict(),
        "DataLoader": DataLoader,
    }
