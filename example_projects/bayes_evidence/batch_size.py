"""Smith & Le 2018, §4–5: at a fixed learning rate, is there an optimal batch size, and does it grow
with the learning rate ε and the training-set size N?

    python example_projects/bayes_evidence/batch_size.py --out example_projects/bayes_evidence/figures

A shallow ReLU network (one hidden layer of 256) trained by plain SGD (no momentum, no weight
decay) at a fixed learning rate ε for a fixed number of updates (the same stochastic-differential-
equation "time" ε·steps for every batch size), with batch sizes B on a geometric grid (the last
batch of an epoch is dropped, so every update sees exactly B samples), several seeds each, on two
data sets:

- ``digits``: N of the 1200 digits training images (a different subset per seed); test accuracy on
  the 597 held-out digits; (ε, N) ∈ {(0.05, 200), (0.2, 200), (0.05, 800)};
- ``swiss_roll``: Huang et al.'s two spirals with noise 1.0 (classes overlap, so a network that
  fits every training point overfits: a harder task than digits, with a real generalization gap);
  N fresh training points per seed, 2000 test points, coordinates divided by 10;
  (ε, N) ∈ {(0.1, 100), (0.4, 100), (0.1, 400)}.

Every run is a Lightning ``Trainer`` with a :class:`~lightning_landscape.NoiseScaleMonitor`, which
logs the noise scale ``g = ε (N/B − 1)``. Smith & Le's claim: test accuracy peaks at an
intermediate B, and the best B grows in proportion to ε and to N, so curves of test accuracy
against g line up. Writes ``batch_size.png`` (accuracy against B and against g for each (ε, N),
one row per data set) and ``batch_size.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from statistics import mean, stdev

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch import Trainer, seed_everything
from matplotlib.figure import Figure
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "digits"))

from digits import DigitsDataModule  # noqa: E402

from lightning_landscape import NoiseScaleMonitor  # noqa: E402
from lightning_landscape.data import two_spirals  # noqa: E402

# (ε, N) per data set: ε ×4 at fixed N, and N ×4 at fixed ε
SETTINGS = {
    "digits": ((0.05, 200), (0.2, 200), (0.05, 800)),
    "swiss_roll": ((0.1, 100), (0.4, 100), (0.1, 400)),
}
BATCH_SIZES = (2, 4, 8, 16, 32, 64, 100, 128, 200, 400, 800)
DATASETS = tuple(SETTINGS)


def make_data(dataset: str, n: int, seed: int):
    """``((train_x, train_y), (test_x, test_y))``: N training samples drawn for ``seed``, fixed test set."""
    if dataset == "swiss_roll":
        (x, y), (test_x, test_y) = (
            two_spirals(n, noise=1.0, seed=1000 + seed),
            two_spirals(2000, 1.0, 999_999),
        )
        return (x / 10, y), (test_x / 10, test_y)  # coordinates of order 10, scaled to order 1
    digits = DigitsDataModule()
    digits.setup()
    x, y = digits.train_set.tensors
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(1000 + seed))[:n]
    test_x = torch.cat([digits.val_set.tensors[0], digits.test_set.tensors[0]])
    test_y = torch.cat([digits.val_set.tensors[1], digits.test_set.tensors[1]])
    return (x[order].flatten(1), y[order]), (test_x.flatten(1), test_y)


class Classifier(pl.LightningModule):
    def __init__(self, lr: float, num_inputs: int, num_classes: int) -> None:
        super().__init__()
        self.lr = lr
        self.net = torch.nn.Sequential(
            torch.nn.Linear(num_inputs, 256), torch.nn.ReLU(), torch.nn.Linear(256, num_classes)
        )

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def train_once(job: tuple[str, float, int, int, int, int]) -> dict:
    """One run: ``(data set, ε, N, B, seed, steps)`` → the logged g, final train loss, test accuracy."""
    dataset, lr, n, b, seed, steps = job
    torch.set_num_threads(1)
    (x, y), (test_x, test_y) = make_data(dataset, n, seed)
    train_set = TensorDataset(x, y)
    seed_everything(seed, verbose=False)
    model = Classifier(lr, x.shape[1], int(y.max()) + 1 if dataset == "digits" else 2)
    monitor = NoiseScaleMonitor(measure_gradient_noise=False)
    trainer = Trainer(
        max_steps=steps,
        max_epochs=-1,
        callbacks=[monitor],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    loader = DataLoader(
        train_set, batch_size=b, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(seed)
    )
    trainer.fit(model, loader)
    model.eval()
    with torch.no_grad():
        train_loss = float(F.cross_entropy(model.net(x), y))
        test_accuracy = float((model.net(test_x).argmax(-1) == test_y).float().mean())
    return {
        "dataset": dataset,
        "lr": lr,
        "n": n,
        "b": b,
        "seed": seed,
        "g": float(trainer.callback_metrics["noise_scale/g/group_0"]),
        "train_loss": train_loss,
        "test_accuracy": test_accuracy,
    }


def sweep(datasets, batch_sizes, seeds: int, steps: int, workers: int) -> list[dict]:
    jobs = [
        (dataset, lr, n, b, seed, steps)
        for dataset in datasets
        for lr, n in SETTINGS[dataset]
        for b in batch_sizes
        if b <= n
        for seed in range(seeds)
    ]
    if workers == 1:
        return [train_once(job) for job in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(train_once, jobs))


def grouped(rows: list[dict]) -> dict[tuple[float, int], list[tuple[int, float, float, float]]]:
    """(ε, N) → [(B, g, mean test accuracy, its standard error)] in increasing B (one data set's rows)."""
    out: dict[tuple[float, int], list] = {}
    for lr, n in dict.fromkeys((r["lr"], r["n"]) for r in rows):
        curve = []
        for b in sorted({r["b"] for r in rows if (r["lr"], r["n"]) == (lr, n)}):
            runs = [r for r in rows if (r["lr"], r["n"], r["b"]) == (lr, n, b)]
            accs = [r["test_accuracy"] for r in runs]
            err = stdev(accs) / len(accs) ** 0.5 if len(accs) > 1 else 0.0
            curve.append((b, runs[0]["g"], mean(accs), err))
        out[lr, n] = curve
    return out


def figure(rows: list[dict]) -> Figure:
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig = Figure(figsize=(12, 4.5 * len(datasets)), layout="constrained")
    for (b_ax, g_ax), dataset in zip(fig.subplots(len(datasets), 2, squeeze=False), datasets, strict=True):
        _panels(b_ax, g_ax, dataset, [r for r in rows if r["dataset"] == dataset])
    return fig


def _panels(b_ax, g_ax, dataset: str, rows: list[dict]) -> None:
    for (lr, n), curve in grouped(rows).items():
        bs, gs, accs, errs = zip(*curve, strict=True)
        label = f"ε = {lr:g}, N = {n}"
        b_ax.errorbar(
            bs, [100 * a for a in accs], [100 * e for e in errs], marker="o", ms=3, capsize=2, label=label
        )
        positive = [i for i, g in enumerate(gs) if g > 0]
        g_ax.errorbar(
            [gs[i] for i in positive],
            [100 * accs[i] for i in positive],
            [100 * errs[i] for i in positive],
            marker="o",
            ms=3,
            capsize=2,
            label=label,
        )
    b_ax.set(
        xscale="log",
        xlabel="batch size B",
        ylabel="test accuracy (%)",
        title=f"{dataset}: accuracy against B",
    )
    g_ax.set(
        xscale="log",
        xlabel="noise scale g = ε (N/B − 1)",
        ylabel="test accuracy (%)",
        title=f"{dataset}: accuracy against g (full batch, g = 0, left out)",
    )
    b_ax.legend(fontsize=8)
    g_ax.legend(fontsize=8)


def summary(rows: list[dict]) -> str:
    lines = [
        "| data | ε | N | B_opt | g at B_opt | best test accuracy | full-batch test accuracy "
        "| smallest-B test accuracy | max train loss at the end |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == dataset]
        lines += [_row(dataset, lr, n, curve, mine) for (lr, n), curve in grouped(mine).items()]
    return "\n".join(lines)


def _row(dataset: str, lr: float, n: int, curve: list, rows: list[dict]) -> str:
    best = max(curve, key=lambda c: c[2])
    worst_loss = max(r["train_loss"] for r in rows if (r["lr"], r["n"]) == (lr, n))
    return (
        f"| {dataset} | {lr:g} | {n} | {best[0]} | {best[1]:.3g} | {best[2]:.1%} ± {best[3]:.1%} "
        f"| {curve[-1][2]:.1%} ± {curve[-1][3]:.1%} | {curve[0][2]:.1%} ± {curve[0][3]:.1%} "
        f"| {worst_loss:.3g} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="figures")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3000, help="SGD updates per run")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=list(BATCH_SIZES))
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel processes")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    args = parser.parse_args(argv)
    rows = sweep(args.datasets, args.batch_sizes, args.seeds, args.steps, args.workers)
    os.makedirs(args.out, exist_ok=True)
    figure(rows).savefig(os.path.join(args.out, "batch_size.png"), dpi=80)
    text = summary(rows)
    with open(os.path.join(args.out, "batch_size.md"), "w") as fh:
        fh.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
