"""What the digits example's monitors cost: training time without them, with their default budgeted
schedule, and with the fixed schedule the example used before the budget.

    python benchmarks/callback_overhead.py                          # the digits example, 20 epochs
    python benchmarks/callback_overhead.py --workload realistic     # 50 000 samples, 100 epochs

Workloads (the digits CNN, SGD lr 0.05, batch 64, seed 0, a TensorBoardLogger in a temporary
folder, no progress bar or checkpoints):

- ``digits``: the digits example as shipped (1200 training images);
- ``realistic``: a training set of ``--train-size`` (50 000) samples built once from the 1200
  digits training images by fixed random augmentations (a shift of up to one pixel in each
  direction and Gaussian noise of deviation 0.05, drawn from a seeded generator), so an epoch costs
  what a CIFAR-sized epoch of a small model does relative to the monitors' subsets.

Schedules: ``none`` (no monitors), ``budget`` (the monitors of ``example_projects/digits/config.yaml``
as shipped: default ``budget=0.1``), ``fixed`` (the same monitors on the example's former fixed
schedule: landscapes every 5 epochs, sharpness every 10, trajectory snapshots every epoch). For each
it prints the wall time, the overhead against ``none``, every monitor's own measured seconds, share
of the training time and runs taken, and checks that the final weights equal those of ``none`` and
that every monitor's final result is the same under both schedules.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import os
import sys
import tempfile
import time

import torch
import yaml
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import TensorDataset

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "example_projects", "digits"))

from digits import DigitsClassifier, DigitsDataModule  # noqa: E402

from lightning_landscape import LossLandscapeMonitor, SharpnessMonitor, TrajectoryMonitor  # noqa: E402

FORMER_SCHEDULE = {"landscape": 5, "landscape_1d": 5, "trajectory": 1, "sharpness": 10}


class AugmentedDigits(DigitsDataModule):
    """The digits split, with the training set replaced by ``size`` fixed augmented copies."""

    def __init__(self, size: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.size = size

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        x, y = self.train_set.tensors
        generator = torch.Generator().manual_seed(1234)
        index = torch.randint(0, len(y), (self.size,), generator=generator)
        shifts = torch.randint(-1, 2, (self.size, 2), generator=generator)
        images = x[index].clone()
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                chosen = (shifts[:, 0] == dx) & (shifts[:, 1] == dy)
                images[chosen] = torch.roll(images[chosen], shifts=(dx, dy), dims=(2, 3))
        images = images + 0.05 * torch.randn(images.shape, generator=generator)
        self.train_set = TensorDataset(images, y[index])


def config_monitors(schedule: str) -> list:
    """The digits example's monitors, as its config builds them (``fixed``: the former schedule)."""
    config = yaml.safe_load(open(os.path.join(ROOT, "example_projects", "digits", "config.yaml")))
    monitors = []
    for entry in config["trainer"]["callbacks"]:
        module, name = entry["class_path"].rsplit(".", 1)
        options = copy.deepcopy(entry.get("init_args", {}))
        cls = getattr(importlib.import_module(module), name)
        if schedule == "fixed":
            options["every_n_epochs"] = FORMER_SCHEDULE[options.get("tag", _default_tag(cls))]
        monitors.append(cls(**options))
    return monitors


def _default_tag(cls) -> str:
    return {
        LossLandscapeMonitor: "landscape",
        SharpnessMonitor: "sharpness",
        TrajectoryMonitor: "trajectory",
    }[cls]


def train(data, epochs: int, callbacks: list, root: str) -> tuple[float, dict[str, torch.Tensor]]:
    seed_everything(0, verbose=False)
    model = DigitsClassifier(arch="cnn")
    trainer = Trainer(
        max_epochs=epochs,
        accelerator="auto",
        devices=1,
        logger=TensorBoardLogger(root, name="overhead"),
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        deterministic=True,
    )
    start = time.perf_counter()
    trainer.fit(model, data)
    return time.perf_counter() - start, {k: v.detach().clone() for k, v in model.state_dict().items()}


def final_result(monitor):
    if isinstance(monitor, SharpnessMonitor):
        return dict(monitor.last_values)
    result = monitor.last_result
    return result.landscape.loss if isinstance(monitor, TrajectoryMonitor) else result.loss


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b or (a != a and b != b)  # NaN equals NaN here


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workload", choices=("digits", "realistic"), default="digits")
    parser.add_argument("--epochs", type=int, default=None, help="default: 20 (digits), 100 (realistic)")
    parser.add_argument("--train-size", type=int, default=50_000, help="realistic: training samples")
    parser.add_argument(
        "--schedules", nargs="+", choices=("none", "budget", "fixed"), default=["none", "budget", "fixed"]
    )
    args = parser.parse_args()
    epochs = args.epochs or (20 if args.workload == "digits" else 100)
    data = (
        DigitsDataModule(batch_size=64)
        if args.workload == "digits"
        else AugmentedDigits(args.train_size, batch_size=64)
    )
    rows, finals, weights, walls = [], {}, {}, {}
    with tempfile.TemporaryDirectory() as root:
        for schedule in args.schedules:
            monitors = [] if schedule == "none" else config_monitors(schedule)
            walls[schedule], weights[schedule] = train(data, epochs, monitors, root)
            finals[schedule] = {m.tag: final_result(m) for m in monitors}
            for m in monitors:
                training = walls[schedule] - sum(x.spent_seconds for x in monitors)
                if m.every_n_epochs is None:
                    runs = f"{epochs - len(m.skipped_epochs)} + final"
                else:  # no extra final run where the last epoch-end run was at the last epoch
                    extra = "" if epochs % m.every_n_epochs == 0 else " + final"
                    runs = f"{epochs // m.every_n_epochs}{extra}"
                share = 100 * m.spent_seconds / training
                rows.append(f"| {schedule} | {m.tag} | {m.spent_seconds:.1f} | {share:.1f}% | {runs} |")
            print(f"{schedule}: {walls[schedule]:.1f} s", flush=True)
    size = len(data.train_set) if hasattr(data, "train_set") else "?"
    print(
        f"\n{args.workload}: digits CNN, {size} training samples, {epochs} epochs, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads\n"
    )
    print("| schedule | wall s | overhead against none | final weights as without monitors |")
    print("|---|---|---|---|")
    base = walls.get("none")
    for schedule, wall in walls.items():
        overhead = f"{100 * (wall - base) / base:.1f}%" if base else "–"
        identical = all(
            torch.equal(weights[schedule][k], v) for k, v in weights.get("none", weights[schedule]).items()
        )
        print(f"| {schedule} | {wall:.1f} | {overhead} | {identical} |")
    print("\n| schedule | monitor | its seconds | share of training time | epoch-end runs |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    if "budget" in finals and "fixed" in finals:
        agree = {tag: same(finals["budget"][tag], finals["fixed"][tag]) for tag in finals["budget"]}
        print(f"\nfinal results identical under both schedules: {agree}")


if __name__ == "__main__":
    main()
