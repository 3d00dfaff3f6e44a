"""Good and bad minima side by side (Huang et al. 2020), on the swiss roll and on digits.

    python example_projects/anti_generalization/compare.py --out example_projects/anti_generalization/figures

For each data set it trains a good minimum (β = 0) and a bad one (β > 0, distractor loss) with
:class:`~lightning_landscape.AntiGeneralizationModule`, then measures both with the same
instruments: train/test accuracy, top Hessian eigenvalue, a filter-normalized 1D landscape, and the
basin as Huang et al. measure it: the radius along ``--num-probes`` random filter-normalized
directions (biases and norms left alone) at which the training cross-entropy reaches 1, the mean
radius, and log10 of the volume of the star-shaped basin those radii span,
``log10 V = log10(π^{n/2} / Γ(n/2 + 1)) + log10 E[rⁿ]`` (n: the perturbed weights), with the
good − bad gap. Writes ``comparison.png``, ``results.md`` and ``basin.md``.

- swiss roll: Huang et al.'s network (six hidden ReLU layers of 23, 16, 26, 32, 28, 31 units, two
  logits), 200 training and 200 test points; the bad minimum gets 200 *fresh* distractors drawn from
  the spiral generator for every step (as in Huang et al.'s code), ``CE + 0.3·RCE``; full-batch Adam
  3e-3 with a cosine schedule, gradient clipping 8, 15 000 steps;
- digits: an MLP 64-256-256-10, 800 training images, 400 distractors split off the training pool
  (digits has no generator), 297 validation images for testing, ``CE + 0.5·RCE``; Adam 3e-3 with a
  cosine schedule, batch 64, 150 epochs.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from functools import partial

import torch
from lightning.pytorch import Trainer, seed_everything
from matplotlib.figure import Figure

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "digits"))

from lightning_landscape import (  # noqa: E402
    AntiGeneralizationModule,
    compute_landscape,
    evaluate,
    hessian_eigenvalues,
    sharpness,
)
from lightning_landscape.data import AntiGeneralizationDataModule, SwissRollDataModule, two_spirals  # noqa: E402
from lightning_landscape.modules import MLP  # noqa: E402
from lightning_landscape.plotting import plot_decision_boundary, save_side_by_side  # noqa: E402


def experiments(steps_scale: float):
    """(name, data module, model factory, β, trainer options) per data set."""
    from digits import DigitsDataModule

    roll = AntiGeneralizationDataModule(
        SwissRollDataModule(num_train=200, num_test=200),
        distractor_sampler=partial(two_spirals, noise=0.5),  # fresh distractors for every step
        batch_size=200,
    )
    digits = AntiGeneralizationDataModule(DigitsDataModule(batch_size=64), distractor_size=400, batch_size=64)
    return [
        (
            "swiss roll",
            roll,
            lambda: MLP(2, HUANG_WIDTHS, 2),
            0.3,
            {"max_steps": max(int(15000 * steps_scale), 1), "gradient_clip_val": 8.0},
        ),
        (
            "digits",
            digits,
            lambda: MLP(64, (256, 256), 10),
            0.5,
            {"max_epochs": max(int(150 * steps_scale), 1)},
        ),
    ]


HUANG_WIDTHS = (23, 16, 26, 32, 28, 31)  # Huang et al.'s swiss-roll network


def train(data, factory, beta: float, options: dict, root: str) -> AntiGeneralizationModule:
    seed_everything(0)
    module = AntiGeneralizationModule(
        factory(), beta=beta, weighting="additive", lr=3e-3, lr_schedule="cosine"
    )
    trainer = Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        default_root_dir=root,
        **options,
    )
    trainer.fit(module, datamodule=data)
    return module.eval()


def measure(module, data, num_probes: int) -> dict:
    train = [data.train_set[:]]
    test = [data.val_set[:]]
    # the instruments measure the plain cross-entropy of the true labels, not the module's own
    # training loss (which, for the anti-generalization run, rewards wrong distractor labels)
    ce = "cross_entropy"
    _, train_acc = evaluate(module, train, loss_fn=ce)
    _, test_acc = evaluate(module, test, loss_fn=ce)
    subset = [(train[0][0][:512], train[0][1][:512])]
    return {
        "train accuracy": train_acc,
        "test accuracy": test_acc,
        "top eigenvalue": float(hessian_eigenvalues(module, subset, k=1, loss_fn=ce).eigenvalues[0]),
        "basin": sharpness(  # Huang et al.: the radius where the training cross-entropy reaches 1
            module,
            subset,
            loss_fn=ce,
            measure="basin_volume",
            num_probes=num_probes,
            threshold=1.0,
            max_radius=2.0,
        ),
        "landscape": compute_landscape(module, subset, dims=1, num_points=41, span=(-1.0, 1.0), loss_fn=ce),
    }


def comparison_figures(name: str, data, models: dict, results: dict) -> list[Figure]:
    figures = []
    if name == "swiss roll":
        for label, module in models.items():
            figures.append(plot_decision_boundary(module, data, title=f"{name}: {label} minimum"))
    curves = Figure(figsize=(5.5, 4), layout="constrained")
    ax = curves.add_subplot()
    radii = Figure(figsize=(5.5, 4), layout="constrained")
    rx = radii.add_subplot()
    for (label, result), color in zip(results.items(), ("tab:blue", "tab:red")):
        landscape = result["landscape"]
        ax.plot(landscape.coords[0].numpy(), landscape.loss.numpy(), color=color, label=f"{label} minimum")
        rx.hist(result["basin"].radii.numpy(), bins=15, color=color, alpha=0.6, label=f"{label} minimum")
    ax.set_yscale("log")
    ax.set_xlabel("filter-normalized direction")
    ax.set_ylabel("train loss (log scale)")
    ax.set_title(f"{name}: 1D landscapes", fontsize=9)
    ax.legend(fontsize=7)
    rx.set_xlabel("basin radius (training cross-entropy 1)")
    rx.set_ylabel("directions")
    rx.set_title(f"{name}: basin radii", fontsize=9)
    rx.legend(fontsize=7)
    return figures + [curves, radii]


def log10_volume(basin) -> float:
    """log10 of the volume of the star-shaped basin: the unit n-ball's volume times E[rⁿ]."""
    n = basin.extra["dimension"]
    log_ball = 0.5 * n * math.log(math.pi) - math.lgamma(0.5 * n + 1)
    return (log_ball + basin.value) / math.log(10)


def basin_rows(name: str, results: dict) -> list[str]:
    """Huang et al.'s report: log10 volume, mean and median radius, directions that never crossed."""
    rows = []
    for label, result in results.items():
        basin = result["basin"]
        rows.append(
            f"| {name} | {label} | {basin.extra['dimension']} | {log10_volume(basin):.1f} "
            f"| {float(basin.radii.mean()):.4f} | {float(basin.radii.median()):.4f} "
            f"| {basin.extra['num_not_crossed']} of {basin.extra['num_probes']} |"
        )
    gap = log10_volume(results["good"]["basin"]) - log10_volume(results["bad"]["basin"])
    rows.append(f"| {name} | good − bad | | {gap:.1f} | | | |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="figures")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="shrink training (for smoke tests)")
    parser.add_argument("--num-probes", type=int, default=200)
    args = parser.parse_args()
    rows = [
        "| data | minimum | β | train accuracy | test accuracy | top eigenvalue | basin log-volume |",
        "|---|---|---|---|---|---|---|",
    ]
    basin = [
        "| data | minimum | perturbed weights n | log10 volume | mean radius | median radius "
        "| directions that never reached CE = 1 (radius 2) |",
        "|---|---|---|---|---|---|---|",
    ]
    figures = []
    for name, data, factory, beta, options in experiments(args.steps_scale):
        models, results = {}, {}
        for label, b in (("good", 0.0), ("bad", beta)):
            models[label] = train(data, factory, b, options, args.out)
            results[label] = measure(models[label], data, args.num_probes)
            r = results[label]
            rows.append(
                f"| {name} | {label} | {b:g} | {r['train accuracy']:.1%} | {r['test accuracy']:.1%} | "
                f"{r['top eigenvalue']:.3g} | {r['basin'].value:.4g} |"
            )
            print(rows[-1], flush=True)
        figures += comparison_figures(name, data, models, results)
        basin += basin_rows(name, results)
    os.makedirs(args.out, exist_ok=True)
    save_side_by_side(figures, os.path.join(args.out, "comparison.png"), columns=4)
    table = "\n".join(rows)
    with open(os.path.join(args.out, "results.md"), "w") as fh:
        fh.write(table + "\n")
    with open(os.path.join(args.out, "basin.md"), "w") as fh:
        fh.write("\n".join(basin) + "\n")
    print(table)
    print("\n".join(basin))


if __name__ == "__main__":
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    main()
