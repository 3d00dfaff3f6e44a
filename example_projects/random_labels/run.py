"""Zhang et al. 2017's randomization tests on digits: networks memorize noise, test error follows it.

    python example_projects/random_labels/run.py --out example_projects/random_labels/figures

Every variant of the paper's suite, made by :class:`~lightning_landscape.data.RandomizedDataset`
(fixed once, the same every epoch, no augmentation, no regularization):

- ``labels-p``: each training label redrawn with probability p from all ten classes
  (p ∈ {0, 0.2, 0.4, 0.6, 0.8, 1}; p = 0 is the true labels); the test set keeps its true labels;
- ``shuffled_pixels``: one permutation of the 64 pixel positions, applied to every training *and*
  test image;
- ``random_pixels``: a different permutation for each image (training and test);
- ``gaussian``: every image replaced by Gaussian noise with the data set's mean and deviation.

Each is trained with SGD (momentum 0.9, batch 64) on the 1200 digits training images, by an MLP
64-512-10 (lr 0.1) and by the digits CNN (two 3×3 conv blocks of 32 channels with BatchNorm, no
dropout; lr 0.01), the same hyperparameters for every variant, until it fits the training labels
(100% train accuracy) or ``--max-epochs``. Writes ``random_labels.png`` and
``results.md`` (epochs to fit, final train and test error per variant and network).
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
from torch.utils.data import DataLoader, Dataset, TensorDataset

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "digits"))

from digits import DigitsDataModule, make_cnn  # noqa: E402

from lightning_landscape.data import RandomizedDataset  # noqa: E402
from lightning_landscape.modules import MLP  # noqa: E402

LEVELS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
PIXELS = ("shuffled_pixels", "random_pixels", "gaussian")
ARCHS = ("mlp", "cnn")
LR = {"mlp": 0.1, "cnn": 0.01}  # per network, the same for every variant (Zhang et al.)


def make_network(arch: str) -> torch.nn.Module:
    if arch == "mlp":
        return torch.nn.Sequential(torch.nn.Flatten(), MLP(64, [512], 10))
    return make_cnn(channels=32, dropout=0.0)


class Classifier(pl.LightningModule):
    def __init__(self, arch: str) -> None:
        super().__init__()
        self.net = make_network(arch)
        self.lr = LR[arch]

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.log("train/accuracy", (logits.argmax(-1) == y).float().mean(), on_step=False, on_epoch=True)
        return F.cross_entropy(logits, y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("test/accuracy", (self.net(x).argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


class Curves(Callback):
    """Collects the epoch-level train and test accuracy."""

    def __init__(self) -> None:
        self.train, self.test = [], []

    def on_train_epoch_end(self, trainer, pl_module):
        self.train.append(float(trainer.callback_metrics["train/accuracy"]))
        self.test.append(float(trainer.callback_metrics["test/accuracy"]))


def materialize(dataset: Dataset) -> TensorDataset:
    """The randomized items, computed once (they are fixed) and stacked."""
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    return TensorDataset(torch.stack(xs).float(), torch.as_tensor(ys))


def variant_data(variant: str, digits: DigitsDataModule) -> tuple[TensorDataset, TensorDataset]:
    """The training and test sets of one variant ("labels-<p>" or a pixel corruption)."""
    if variant.startswith("labels-"):
        train = RandomizedDataset(digits.train_set, fraction=float(variant.split("-")[1]), seed=0)
        return materialize(train), digits.test_set
    # the same seed gives the same permutation for "shuffled_pixels"; the per-image draws of
    # "random_pixels" and "gaussian" come from (seed, index), so the test set gets its own seed
    train = RandomizedDataset(digits.train_set, corruption=variant, seed=0)
    test_seed = 0 if variant == "shuffled_pixels" else 1
    test = RandomizedDataset(digits.test_set, corruption=variant, seed=test_seed)
    return materialize(train), materialize(test)


def run(arch: str, variant: str, max_epochs: int, root: str) -> Curves:
    digits = DigitsDataModule()
    digits.setup()
    train_set, test_set = variant_data(variant, digits)
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
    train = DataLoader(train_set, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    trainer.fit(Classifier(arch), train, DataLoader(test_set, batch_size=300))
    return curves


def label(variant: str) -> str:
    if variant.startswith("labels-"):
        level = float(variant.split("-")[1])
        return "true labels" if level == 0 else f"labels {level:.0%} corrupted"
    return variant.replace("_", " ")


def figure(results: dict[tuple[str, str], Curves]) -> Figure:
    archs = sorted({arch for arch, _ in results}, key=ARCHS.index)
    fig = Figure(figsize=(15, 4.2 * len(archs)), layout="constrained")
    axes = fig.subplots(len(archs), 3, squeeze=False)
    for row, arch in zip(axes, archs, strict=True):
        train_ax, test_ax, final_ax = row
        mine = {variant: c for (a, variant), c in results.items() if a == arch}
        for variant, curves in mine.items():
            epochs = range(1, len(curves.train) + 1)
            style = "-" if variant.startswith("labels-") else "--"
            train_ax.plot(epochs, [100 * a for a in curves.train], style, label=label(variant))
            test_ax.plot(epochs, [100 * a for a in curves.test], style, label=label(variant))
        levels = [v for v in mine if v.startswith("labels-")]
        if levels:
            xs = [float(v.split("-")[1]) for v in levels]
            final_ax.plot(xs, [100 * (1 - mine[v].train[-1]) for v in levels], "o-", label="train error")
            final_ax.plot(xs, [100 * (1 - mine[v].test[-1]) for v in levels], "s-", label="test error")
            final_ax.axhline(90, color="grey", lw=0.8, ls=":", label="chance")
        train_ax.set(
            xlabel="epoch", ylabel="train accuracy (%)", title=f"{arch}: fitting the training labels"
        )
        test_ax.set(xlabel="epoch", ylabel="test accuracy (%)", title=f"{arch}: generalization")
        final_ax.set(
            xlabel="label corruption p", ylabel="error at the end (%)", title=f"{arch}: final errors"
        )
        for ax in row:
            ax.legend(fontsize=7)
    return fig


def table(results: dict[tuple[str, str], Curves]) -> str:
    rows = [
        "| network | variant | epochs to fit | final train error | final test error |",
        "|---|---|---|---|---|",
    ]
    for (arch, variant), curves in results.items():
        rows.append(
            f"| {arch} | {label(variant)} | {len(curves.train)} | {1 - curves.train[-1]:.1%} "
            f"| {1 - curves.test[-1]:.1%} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="figures")
    parser.add_argument("--archs", nargs="+", choices=ARCHS, default=list(ARCHS))
    parser.add_argument("--levels", type=float, nargs="+", default=list(LEVELS))
    parser.add_argument("--pixels", nargs="*", choices=PIXELS, default=list(PIXELS))
    parser.add_argument("--max-epochs", type=int, default=300)
    args = parser.parse_args()
    variants = [f"labels-{level:g}" for level in args.levels] + list(args.pixels)
    results = {}
    for arch in args.archs:
        for variant in variants:
            results[arch, variant] = run(arch, variant, args.max_epochs, args.out)
            curves = results[arch, variant]
            print(
                f"{arch} {label(variant)}: {len(curves.train)} epochs, test error {1 - curves.test[-1]:.1%}"
            )
    os.makedirs(args.out, exist_ok=True)
    figure(results).savefig(os.path.join(args.out, "random_labels.png"), dpi=80)
    text = table(results)
    with open(os.path.join(args.out, "results.md"), "w") as fh:
        fh.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
