"""Compare the small- and large-batch minima of the batch-size experiment (Li et al. 2018, §4).

    python example_projects/batch_size/compare.py lightning_logs/batch_size \
        --out example_projects/batch_size/figures

Reads the four runs' final checkpoints and saved results, and writes into ``--out``:

- ``interpolation.png`` / ``interpolation_wd.png``: loss and accuracy along the line from the
  small-batch to the large-batch solution (train solid, test dashed), without and with weight decay;
- ``trajectory_<run>.png``: each run's path on its PCA plane;
- ``landscape_1d_<run>.png``: each run's filter-normalized 1D landscape;
- ``comparison.png``: all of them in one image;
- ``results.md``: train/test accuracy, weight norm and the share of the path's variance on its PCA
  plane (Li et al. report 40–90%) of every run (also printed).
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "digits"))

from digits import DigitsClassifier, DigitsDataModule  # noqa: E402

from lightning_landscape import LandscapeResult, TrajectoryResult, evaluate, interpolate  # noqa: E402
from lightning_landscape.plotting import (  # noqa: E402
    plot_interpolation,
    plot_landscape_1d,
    plot_trajectory,
    save_side_by_side,
)

RUNS = ("small_batch", "large_batch", "small_batch_wd", "large_batch_wd")


def _newest(pattern: str) -> str:
    files = sorted(glob.glob(pattern), key=os.path.getmtime)
    if not files:
        raise SystemExit(f"nothing matches {pattern}: run the four configs first (see README.md)")
    return files[-1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("log_dir", help="the TensorBoardLogger folder holding the four runs")
    parser.add_argument("--out", default="figures")
    parser.add_argument("--num-points", type=int, default=41)
    args = parser.parse_args()

    data = DigitsDataModule()
    data.setup()
    train = DataLoader(data.train_set, batch_size=600)
    test = DataLoader(data.test_set, batch_size=600)

    checkpoints = {
        run: torch.load(_newest(f"{args.log_dir}/{run}/checkpoints/*.ckpt"), weights_only=True)
        for run in RUNS
    }
    trajectories = {
        run: TrajectoryResult.load(_newest(f"{args.log_dir}/{run}/trajectory/trajectory-*.npz"))
        for run in RUNS
    }
    rows = [
        "| run | batch size | weight decay | train accuracy | test accuracy | ‖θ‖ "
        "| PCA plane: explained variance PC1 + PC2 |",
        "|---|---|---|---|---|---|---|",
    ]
    for run, checkpoint in checkpoints.items():
        model = DigitsClassifier(
            **{k: v for k, v in checkpoint["hyper_parameters"].items() if not k.startswith("_")}
        )
        model.load_state_dict(checkpoint["state_dict"])
        _, train_acc = evaluate(model, train, loss_fn="cross_entropy")  # with the accuracy
        _, test_acc = evaluate(model, test, loss_fn="cross_entropy")
        norm = torch.sqrt(sum(p.detach().square().sum() for p in model.parameters())).item()
        batch = 16 if run.startswith("small") else 600
        cells = [
            run,
            str(batch),
            f"{model.hparams.weight_decay:g}",
            f"{train_acc:.1%}",
            f"{test_acc:.1%}",
            f"{norm:.2f}",
            f"{float(trajectories[run].pca.explained_variance_ratio[:2].sum()):.1%}",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    table = "\n".join(rows)
    print(table)

    figures = {}
    template = DigitsClassifier()
    for suffix in ("", "_wd"):
        small, large = checkpoints[f"small_batch{suffix}"], checkpoints[f"large_batch{suffix}"]
        curves = [
            interpolate(template, loader, small, large, num_points=args.num_points, loss_fn="cross_entropy")
            for loader in (train, test)
        ]
        fig = plot_interpolation(*curves, labels=("small batch", "large batch"))
        fig.axes[0].set_title(f"small → large batch, {'with' if suffix else 'no'} weight decay", fontsize=9)
        figures[f"interpolation{suffix}"] = fig
    for run in RUNS:
        figures[f"trajectory_{run}"] = plot_trajectory(trajectories[run])
        figures[f"trajectory_{run}"].axes[0].set_title(run, fontsize=9)
        landscape = LandscapeResult.load(_newest(f"{args.log_dir}/{run}/landscapes/landscape-*.npz"))
        figures[f"landscape_1d_{run}"] = plot_landscape_1d(landscape)
        figures[f"landscape_1d_{run}"].axes[0].set_title(f"{run}: filter-normalized 1D", fontsize=9)

    os.makedirs(args.out, exist_ok=True)
    for name, fig in figures.items():
        fig.savefig(os.path.join(args.out, f"{name}.png"), dpi=90)
    order = (
        ["interpolation", "interpolation_wd"]
        + [f"trajectory_{r}" for r in RUNS]
        + [f"landscape_1d_{r}" for r in RUNS]
    )
    save_side_by_side([figures[name] for name in order], os.path.join(args.out, "comparison.png"), columns=4)
    with open(os.path.join(args.out, "results.md"), "w") as fh:
        fh.write(table + "\n")
    print(f"wrote {len(figures)} figures, comparison.png and results.md to {args.out}")


if __name__ == "__main__":
    main()
