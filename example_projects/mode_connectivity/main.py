"""Mode connectivity on the digits: two CNNs trained from different seeds, joined by a trained curve.

    python example_projects/mode_connectivity/main.py [--out example_projects/mode_connectivity/figures]

Trains the digits CNN (BatchNorm, dropout) twice with Lightning, from seeds 0 and 1, then trains a
Bézier curve with one bend and a polygonal chain with one bend between the two solutions
(Garipov et al. 2018) with :func:`lightning_landscape.connect`, and evaluates both curves and the
straight line on the training set (BatchNorm statistics re-estimated at every point). Writes
``curve_vs_line.png`` (loss and accuracy along the three paths) and ``results.md`` (the
barriers). About a minute on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
from lightning.pytorch import Trainer, seed_everything
from matplotlib.figure import Figure

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "digits"))

from digits import DigitsClassifier, DigitsDataModule  # noqa: E402

from lightning_landscape import connect  # noqa: E402


def train(seed: int, epochs: int) -> DigitsClassifier:
    seed_everything(seed, workers=True)
    model = DigitsClassifier(arch="cnn")
    trainer = Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DigitsDataModule(batch_size=64, split_seed=0))
    return model.eval()


def batches_of(dataset, size: int = 128) -> list[tuple[torch.Tensor, torch.Tensor]]:
    x, y = dataset.tensors
    return [(x[i : i + size], y[i : i + size]) for i in range(0, x.shape[0], size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "figures"))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--num-points", type=int, default=21)
    args = parser.parse_args()
    started = time.perf_counter()
    a, b = train(0, args.epochs), train(1, args.epochs)
    data = DigitsDataModule(batch_size=64, split_seed=0)
    data.setup("fit")
    train_batches = batches_of(data.train_set)
    paths = {}
    for curve in ("bezier", "polychain"):
        paths[curve] = connect(
            a.net,
            train_batches,
            a.net.state_dict(),
            b.net.state_dict(),
            curve=curve,
            num_bends=1,
            steps=args.steps,
            lr=args.lr,
            num_points=args.num_points,
        )
    os.makedirs(args.out, exist_ok=True)
    write_figure(paths, os.path.join(args.out, "curve_vs_line.png"))
    write_table(paths, os.path.join(args.out, "results.md"), time.perf_counter() - started)
    print(open(os.path.join(args.out, "results.md")).read())


def write_figure(paths, path: str) -> None:
    fig = Figure(figsize=(11, 4), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    line = paths["bezier"]
    t = line.t.numpy()
    rows = [("straight line", line.linear_loss, line.linear_accuracy, "tab:red", "--")]
    rows += [
        (f"{name} curve, 1 bend", r.curve_loss, r.curve_accuracy, color, "-")
        for (name, r), color in zip(paths.items(), ("tab:blue", "tab:green"))
    ]
    for name, loss, accuracy, color, style in rows:
        loss_ax.plot(t, loss.numpy(), style, color=color, label=name)
        acc_ax.plot(t, 100 * accuracy.numpy(), style, color=color, label=name)
    loss_ax.set_yscale("log")
    loss_ax.set_ylabel("training loss")
    acc_ax.set_ylabel("training accuracy (%)")
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("t (0: the CNN from seed 0, 1: from seed 1)")
        ax.legend(fontsize=8)
    fig.suptitle("Two digits CNNs: the straight line crosses a ridge, a trained curve does not", fontsize=10)
    fig.savefig(path, dpi=110)


def write_table(paths, path: str, seconds: float) -> None:
    line = paths["bezier"]
    rows = [("straight line", line.linear_barrier, line.linear_loss, line.linear_accuracy)]
    rows += [
        (f"{name} curve, 1 bend", r.curve_barrier, r.curve_loss, r.curve_accuracy)
        for name, r in paths.items()
    ]
    lines = [
        "| path | barrier (training loss) | highest loss | lowest accuracy |",
        "|---|---|---|---|",
    ]
    for name, height, loss, accuracy in rows:
        lines.append(
            f"| {name} | {height:.4f} | {float(loss.max()):.4f} | {100 * float(accuracy.min()):.1f}% |"
        )
    lines.append("")
    lines.append(f"Two digits CNNs (seeds 0 and 1), {len(line.t)} points per path, {seconds:.0f} s in all.")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
