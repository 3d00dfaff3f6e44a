"""Two modules as their authors wrote them, knowing nothing of lightning_landscape.

- :class:`DiabetesRegression`: an MLP regressing disease progression on scikit-learn's diabetes
  data (442 patients, 10 features; ships with scikit-learn), with **dict batches**
  ``{"features", "target", "patient"}`` (a string id per sample), standardized in
  ``on_after_batch_transfer`` and trained on the mean squared error.
- :class:`ZenLanguageModel`: a tiny character-level causal Transformer (``nn.TransformerEncoder``
  with a causal mask, input and output embeddings tied) trained on the Zen of Python (it ships with
  Python: ``import this``) in windows of 32 characters.

The monitors measure exactly the loss each ``training_step`` returns, on batches passed through
the same hooks; nothing here is written for them.
"""

from __future__ import annotations

import codecs

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset


# ------------------------------------------------------------------------------------ regression
class _Patients(Dataset):
    def __init__(self, features: torch.Tensor, target: torch.Tensor) -> None:
        self.features, self.target = features, target

    def __len__(self) -> int:
        return len(self.target)

    def __getitem__(self, i: int) -> dict:
        return {"features": self.features[i], "target": self.target[i], "patient": f"patient-{i:03d}"}


class DiabetesData(pl.LightningDataModule):
    """scikit-learn's diabetes data (raw, unscaled features), split 342 / 100 with ``split_seed``."""

    def __init__(self, batch_size: int = 32, split_seed: int = 0) -> None:
        super().__init__()
        self.batch_size, self.split_seed = batch_size, split_seed

    def setup(self, stage: str | None = None) -> None:
        from sklearn.datasets import load_diabetes

        x, y = load_diabetes(return_X_y=True, scaled=False)
        x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(self.split_seed))
        self.train_set = _Patients(x[order[:342]], y[order[:342]])
        self.val_set = _Patients(x[order[342:]], y[order[342:]])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size)


class DiabetesRegression(pl.LightningModule):
    """MLP 10-hidden-1 on standardized features, trained on the MSE of standardized targets."""

    # standardization of the raw features and target (means and standard deviations of the data set)
    FEATURE_MEAN = [48.52, 1.47, 26.38, 94.65, 189.14, 115.44, 49.79, 4.07, 4.64, 91.26]
    FEATURE_STD = [13.09, 0.5, 4.41, 13.82, 34.57, 30.38, 12.92, 1.29, 0.52, 11.48]
    TARGET_MEAN, TARGET_STD = 152.1, 77.0

    def __init__(self, hidden: int = 32, lr: float = 0.01, weight_decay: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(10, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )
        self.register_buffer("mean", torch.tensor(self.FEATURE_MEAN))
        self.register_buffer("std", torch.tensor(self.FEATURE_STD))

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        batch = dict(batch)
        batch["features"] = (batch["features"] - self.mean) / self.std
        batch["target"] = (batch["target"] - self.TARGET_MEAN) / self.TARGET_STD
        return batch

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)[:, 0]

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = F.mse_loss(self(batch["features"]), batch["target"])
        self.log("train/mse", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.log("val/mse", F.mse_loss(self(batch["features"]), batch["target"]))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


# ------------------------------------------------------------------------------------ language model
def zen_of_python() -> str:
    """The Zen of Python, decoded from the standard library's ``this`` module (no import side effect)."""
    import importlib.util

    source = importlib.util.find_spec("this").loader.get_source("this")
    encoded = source.split('s = """', 1)[1].split('"""', 1)[0]
    return codecs.decode(encoded, "rot13")


class ZenData(pl.LightningDataModule):
    """Windows of ``length + 1`` characters of the Zen of Python, as tensors of character ids."""

    def __init__(self, length: int = 32, stride: int = 4, batch_size: int = 32) -> None:
        super().__init__()
        self.length, self.stride, self.batch_size = length, stride, batch_size

    def setup(self, stage: str | None = None) -> None:
        text = zen_of_python()
        self.alphabet = sorted(set(text))
        ids = torch.tensor([self.alphabet.index(c) for c in text])
        starts = range(0, len(ids) - self.length - 1, self.stride)
        self.windows = torch.stack([ids[s : s + self.length + 1] for s in starts])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.windows), batch_size=self.batch_size, shuffle=True)


class ZenLanguageModel(pl.LightningModule):
    """A causal Transformer over characters; the output layer is the transposed input embedding."""

    def __init__(
        self,
        vocab: int = 64,
        width: int = 32,
        heads: int = 4,
        layers: int = 2,
        length: int = 32,
        lr: float = 3e-3,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.embedding = nn.Embedding(vocab, width)
        self.position = nn.Parameter(0.02 * torch.randn(length, width))
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=ids.device)
        h = self.encoder(self.embedding(ids) + self.position[:length], mask=mask, is_causal=True)
        return self.norm(h) @ self.embedding.weight.T

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        (window,) = batch
        logits = self(window[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), window[:, 1:].reshape(-1))
        self.log("train/loss", loss, on_epoch=True, on_step=False)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)
