"""Zhang et al. 2017's random-label experiment on digits: networks memorize noise, test error follows it.

    python example_projects/random_labels/run.py --out example_projects/random_labels/figures

For each label-corruption level (default 0, 0.2, 0.5, 0.8, 1.0), an MLP 64-512-10 is trained with
SGD (lr 0.1, momentum 0.9, batch 64) on the 1200 digits training images whose labels are corrupted
by :class:`~lightning_landscape.data.RandomizedDataset` (fixed once, the same every epoch), until it
fits them (100% train accuracy) or ``--max-epochs``; the test set keeps its true labels. Writes
``random_labels.png`` (learning curves and final errors) and ``results.md``.
"""

from __future__ import annotations

import argparse
import os
import sys

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import Callback, EarlyStopping
from matplotlib.figure import Figure
from torch.utils.data import DataLoader

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "digits"))

from digits import DigitsDataModule  # noqa: E402

from lightning_landscape.data import RandomizedDataset  # noqa: E402
from lightning_landscape.modules import MLP  # noqa: E402


class Classifier(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = MLP(64, [512], 10)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.log("train/accuracy", (logits.argmax(-1) == y).float().mean(), on_step=False, on_epoch=True)
        return F.cross_entropy(logits, y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("test/accuracy", (self.net(x).argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)


class Curves(Callback):
    """Collects the epoch-level train and test accuracy."""

    def __init__(self) -> None:
        self.train, self.test = [], []

    def on_train_epoch_end(self, trainer, pl_module):
        self.train.append(float(trainer.callback_metrics["train/accuracy"]))
        self.test.append(float(trainer.callback_metrics["test/accuracy"]))


def run(fraction: float, max_epochs: int, root: str) -> Curves:
    digits = DigitsDataModule()
    digits.setup()
    noisy = RandomizedDataset(digits.train_set, corruption="labels", fraction=fraction, seed=0)
    seed_everything(0)
    curves = Curves()
    stop = EarlyStopping(
        "train/accuracy",
        mode="max",
        stopping_threshold=0.9999,  # strict ">" in float32: with 1200 images this means exactly 100%
        patience=max_epochs,
        check_on_train_epoch_end=True,
    )
    trainer = Trainer(
        max_epochs=max_epochs,
        callbacks=[curves, stop],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    train = DataLoader(noisy, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    trainer.fit(Classifier(), train, DataLoader(digits.test_set, batch_size=300))
    return curves


def figure(results: dict[float, Curves]) -> Figure:
    fig = Figure(figsize=(14, 4), layout="constrained")
    train_ax, test_ax, final_ax = fig.subplots(1, 3)
    for fraction, curves in results.items():
        epochs = range(1, len(curves.train) + 1)
        train_ax.plot(epochs, [100 * a for a in curves.train], label=f"{fraction:.0%} corrupted")
        test_ax.plot(epochs, [100 * a for a in curves.test], label=f"{fraction:.0%} corrupted")
    fractions = list(results)
    final_ax.plot(fractions, [100 * (1 - c.train[-1]) for c in results.values()], "o-", label="train error")
    final_ax.plot(fractions, [100 * (1 - c.test[-1]) for c in results.values()], "s-", label="test error")
    train_ax.set(
        xlabel="epoch", ylabel="train accuracy on the corrupted labels (%)", title="fitting the labels"
    )
    test_ax.set(xlabel="epoch", ylabel="test accuracy, true labels (%)", title="generalization")
    final_ax.set(xlabel="label corruption", ylabel="error at the end (%)", title="final errors")
    for ax in (train_ax, test_ax, final_ax):
        ax.legend(fontsize=7)
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="figures")
    parser.add_argument("--levels", type=float, nargs="+", default=[0.0, 0.2, 0.5, 0.8, 1.0])
    parser.add_argument("--max-epochs", type=int, default=300)
    args = parser.parse_args()
    results = {level: run(level, args.max_epochs, args.out) for level in args.levels}
    os.makedirs(args.out, exist_ok=True)
    figure(results).savefig(os.path.join(args.out, "random_labels.png"), dpi=90)
    rows = [
        "| label corruption | epochs to fit | final train error | final test error |",
        "|---|---|---|---|",
    ]
    for level, curves in results.items():
        rows.append(
            f"| {level:.0%} | {len(curves.train)} | {1 - curves.train[-1]:.1%} | {1 - curves.test[-1]:.1%} |"
        )
    table = "\n".join(rows)
    with open(os.path.join(args.out, "results.md"), "w") as fh:
        fh.write(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
