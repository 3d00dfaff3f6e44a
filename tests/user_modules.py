"""Users' own LightningModules and data, as they write them: none knows about lightning_landscape.

Each module has its own loss in ``training_step`` and a ``reference_loss(batch)`` written
independently of it (plain formulas), which the tests use to check what the monitors measure.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
import torchmetrics
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

N = 64


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class _DictDataset(torch.utils.data.Dataset):
    def __init__(self, features: torch.Tensor, target: torch.Tensor) -> None:
        self.features, self.target = features, target

    def __len__(self) -> int:
        return len(self.target)

    def __getitem__(self, i: int) -> dict:
        return {"features": self.features[i], "target": self.target[i], "id": f"sample-{i}"}


def regression_tensors(seed: int = 0, n: int = N, features: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = _generator(seed)
    x = torch.randn(n, features, generator=g)
    w = torch.randn(features, generator=g)
    return x, (x @ w + 0.3 * torch.sin(3 * x[:, 0])).unsqueeze(1)


# ---------------------------------------------------------------------------------------- data
class RegressionData(pl.LightningDataModule):
    """``(x, y)`` batches (``dict_batches=False``, y of shape (N, 1)) or dicts with a string id."""

    def __init__(self, dict_batches: bool = False, batch_size: int = 16, offset: float = 0.0) -> None:
        super().__init__()
        self.dict_batches, self.batch_size, self.offset = dict_batches, batch_size, offset

    def dataset(self):
        x, y = regression_tensors()
        x = x + self.offset
        return _DictDataset(x, y[:, 0]) if self.dict_batches else TensorDataset(x, y)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset(), batch_size=self.batch_size, shuffle=True)


class ImageData(pl.LightningDataModule):
    """Two-class 1×6×6 images with a class-dependent blob."""

    def __init__(self, batch_size: int = 16, with_val: bool = False) -> None:
        super().__init__()
        self.batch_size, self.with_val = batch_size, with_val

    @staticmethod
    def tensors(seed: int = 1, n: int = N) -> tuple[torch.Tensor, torch.Tensor]:
        g = _generator(seed)
        y = torch.randint(0, 2, (n,), generator=g)
        x = torch.randn(n, 1, 6, 6, generator=g) * 0.5
        x[:, :, 1:3, 1:3] += y.view(-1, 1, 1, 1).float()
        return x, y

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(*self.tensors()), batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        if not self.with_val:
            return []
        return DataLoader(TensorDataset(*self.tensors(seed=2, n=32)), batch_size=self.batch_size)


class TokenData(pl.LightningDataModule):
    """Sequences of a noisy periodic token pattern, for language models."""

    def __init__(self, vocab: int = 11, length: int = 8, batch_size: int = 16) -> None:
        super().__init__()
        self.vocab, self.length, self.batch_size = vocab, length, batch_size

    def tokens(self) -> torch.Tensor:
        g = _generator(3)
        start = torch.randint(0, self.vocab, (N, 1), generator=g)
        step = torch.randint(1, 3, (N, 1), generator=g)
        tokens = (start + step * torch.arange(self.length + 1)) % self.vocab
        noise = torch.rand(tokens.shape, generator=g) < 0.1
        return torch.where(noise, torch.randint(0, self.vocab, tokens.shape, generator=g), tokens)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.tokens()), batch_size=self.batch_size, shuffle=True)


class _Stream(IterableDataset):
    """An iterable data set without ``len``: the samples of ``ImageData`` in a fixed order."""

    def __iter__(self):
        x, y = ImageData.tensors()
        yield from zip(x, y)


class StreamData(pl.LightningDataModule):
    def __init__(self, batch_size: int = 16) -> None:
        super().__init__()
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Stream(), batch_size=self.batch_size)


# ---------------------------------------------------------------------------------------- modules
def _mlp(inputs: int, hidden: int, outputs: int) -> nn.Module:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, outputs))


class RegressionModule(pl.LightningModule):
    """MSE regression on ``(x, y)`` batches with ``(N, 1)`` outputs, or on dict batches."""

    def __init__(self, hidden: int = 16, lr: float = 0.05, dict_batches: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.dict_batches = dict_batches
        self.net = _mlp(4, hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        if self.dict_batches:
            loss = F.mse_loss(self(batch["features"])[:, 0], batch["target"])
        else:
            loss = F.mse_loss(self(batch[0]), batch[1])
        self.log("train_loss", loss)
        return loss

    def reference_loss(self, batch) -> torch.Tensor:
        x, y = (batch["features"], batch["target"]) if isinstance(batch, dict) else (batch[0], batch[1][:, 0])
        w1, b1, w2, b2 = (p.detach().double() for p in self.net.parameters())
        prediction = (torch.tanh(x.double() @ w1.T + b1) @ w2.T + b2)[:, 0]
        return ((prediction - y.double()) ** 2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)


class StandardizingRegression(RegressionModule):
    """Preprocessing in ``on_after_batch_transfer``: inputs arrive with a large offset."""

    def __init__(self, hidden: int = 16, lr: float = 0.05, offset: float = 50.0) -> None:
        super().__init__(hidden=hidden, lr=lr, dict_batches=False)
        self.offset = offset

    def on_after_batch_transfer(self, batch, dataloader_idx):
        x, y = batch
        return x - self.offset, y

    def reference_loss(self, batch) -> torch.Tensor:
        return super().reference_loss((batch[0] - self.offset, batch[1]))


class SmallCNN(pl.LightningModule):
    """A two-class CNN with BatchNorm and dropout; ``label_smoothing`` in its own loss.

    Its ``training_step`` does what real ones do: updates a torchmetrics metric, appends to a list
    (Lightning 2's ``training_step_outputs`` idiom), logs, draws random noise for augmentation, and
    returns a dict with the loss and an accuracy.
    """

    def __init__(
        self,
        lr: float = 0.05,
        label_smoothing: float = 0.0,
        freeze_backbone: bool = False,
        noise: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.backbone = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten()
        )
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(4 * 36, 2))
        self.train_accuracy = torchmetrics.classification.BinaryAccuracy()
        self.training_step_outputs: list[torch.Tensor] = []
        if freeze_backbone:
            self.backbone.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.hparams.noise:
            x = x + self.hparams.noise * torch.randn_like(x)
        logits = self(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing)
        self.train_accuracy(logits.argmax(-1), y)
        self.log("train_acc", self.train_accuracy, on_epoch=True)
        self.training_step_outputs.append(loss.detach())
        margin = (logits.gather(1, y.unsqueeze(1))[:, 0] - logits.gather(1, 1 - y.unsqueeze(1))[:, 0]).mean()
        return {"loss": loss, "acc": (logits.argmax(-1) == y).float().mean(), "margin": margin.detach()}

    def on_train_epoch_end(self) -> None:
        self.training_step_outputs.clear()

    def compute_loss(self, batch) -> torch.Tensor:
        """The plain cross-entropy, as a method a config can name (``loss_fn: compute_loss``)."""
        return F.cross_entropy(self(batch[0]), batch[1])

    def reference_loss(self, batch, label_smoothing: float | None = None) -> torch.Tensor:
        eps = self.hparams.label_smoothing if label_smoothing is None else label_smoothing
        with torch.no_grad():
            self.eval()
            logits = self(batch[0]).double()
        log_p = logits.log_softmax(-1)
        nll = -log_p.gather(1, batch[1].unsqueeze(1))[:, 0]
        return ((1 - eps) * nll - eps * log_p.mean(-1)).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(
            [p for p in self.parameters() if p.requires_grad], lr=self.hparams.lr, momentum=0.9
        )


class LSTMLanguageModel(pl.LightningModule):
    """A next-token LSTM whose output layer shares the embedding's weight."""

    def __init__(self, vocab: int = 11, width: int = 12, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.embedding = nn.Embedding(vocab, width)
        self.lstm = nn.LSTM(width, width, batch_first=True)
        self.output = nn.Linear(width, vocab, bias=False)
        self.output.weight = self.embedding.weight  # tied

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.output(self.lstm(self.embedding(tokens))[0])

    def training_step(self, batch, batch_idx):
        (tokens,) = batch
        logits = self(tokens[:, :-1])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))

    def reference_loss(self, batch) -> torch.Tensor:
        (tokens,) = batch
        with torch.no_grad():
            self.eval()
            logits = self(tokens[:, :-1]).double()
        return -logits.log_softmax(-1).gather(-1, tokens[:, 1:].unsqueeze(-1)).mean()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class _Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, t, w = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(b, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        h = h + self.proj(attended.transpose(1, 2).reshape(b, t, w))
        return h + self.mlp(self.norm2(h))


class TransformerLanguageModel(pl.LightningModule):
    """A tiny causal Transformer with tied input and output embeddings."""

    def __init__(
        self, vocab: int = 11, width: int = 8, heads: int = 2, length: int = 8, lr: float = 0.01
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.embedding = nn.Embedding(vocab, width)
        self.position = nn.Parameter(0.1 * torch.randn(length, width))
        self.block = _Block(width, heads)
        self.norm = nn.LayerNorm(width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embedding(tokens) + self.position[: tokens.shape[1]]
        return self.norm(self.block(h)) @ self.embedding.weight.T

    def training_step(self, batch, batch_idx):
        (tokens,) = batch
        logits = self(tokens[:, :-1])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))

    def reference_loss(self, batch) -> torch.Tensor:
        return LSTMLanguageModel.reference_loss(self, batch)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class ManualOptimization(SmallCNN):
    """Steps its optimizer itself: its training_step returns nothing to measure."""

    def __init__(self, lr: float = 0.05) -> None:
        super().__init__(lr=lr)
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        optimizer = self.optimizers()
        loss = self.compute_loss(batch)
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()


def smoothed_cross_entropy(model, batch) -> torch.Tensor:
    """A plain function ``loss_fn(model, batch)``, without a return annotation, for YAML configs."""
    return F.cross_entropy(model(batch[0]), batch[1], label_smoothing=0.1)


def dict_mse(model, batch) -> torch.Tensor:
    """The regression loss of dict batches as a plain function (``--loss_fn user_modules.dict_mse``)."""
    return F.mse_loss(model(batch["features"])[:, 0], batch["target"])


def expected_grid_loss(batches, reference_loss) -> float:
    """The per-sample mean over ``batches`` of a module's reference loss (weighted batch means)."""
    total = count = 0
    for batch in batches:
        size = len(batch["target"]) if isinstance(batch, dict) else len(batch[0])
        total += float(reference_loss(batch)) * size
        count += size
    return total / count if count else math.nan
