"""Wall time of the digits example's 20-epoch training with and without ``LossLandscapeMonitor()``.

    python benchmarks/callback_overhead.py [--arch cnn] [--epochs 20] [--repeats 2]

Both runs use the same seed, a TensorBoardLogger in a temporary folder and no progress bar or
checkpoints; the monitor runs with its defaults. Runs alternate (plain, watched, plain, ...) and
the medians are reported, with the final weights of both runs compared (they must be identical:
observing never perturbs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.loggers import TensorBoardLogger

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "example_projects", "digits")
)

from digits import DigitsClassifier, DigitsDataModule  # noqa: E402

from lightning_landscape import LossLandscapeMonitor  # noqa: E402


def train(arch: str, epochs: int, callbacks: list, root: str) -> tuple[float, dict[str, torch.Tensor]]:
    seed_everything(0, verbose=False)
    model = DigitsClassifier(arch=arch)
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
    trainer.fit(model, DigitsDataModule(batch_size=64))
    return time.perf_counter() - start, {k: v.detach().clone() for k, v in model.state_dict().items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", choices=("cnn", "mlp"), default="cnn")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--every-n-epochs", type=int, default=None, help="override the default")
    parser.add_argument("--num-points", type=int, default=None, help="override the default")
    parser.add_argument("--num-samples", type=int, default=None, help="override the default")
    args = parser.parse_args()
    overrides = {
        key: value
        for key, value in (
            ("every_n_epochs", args.every_n_epochs),
            ("num_points", args.num_points),
            ("num_samples", args.num_samples),
        )
        if value is not None
    }
    plain, watched = [], []
    with tempfile.TemporaryDirectory() as root:
        for _ in range(args.repeats):
            seconds, plain_weights = train(args.arch, args.epochs, [], root)
            plain.append(seconds)
            monitor = LossLandscapeMonitor(**overrides)
            seconds, watched_weights = train(args.arch, args.epochs, [monitor], root)
            watched.append(seconds)
            same = all(torch.equal(plain_weights[k], watched_weights[k]) for k in plain_weights)
    base, with_monitor = statistics.median(plain), statistics.median(watched)
    defaults = LossLandscapeMonitor(**overrides)
    print(
        f"\ndigits {args.arch}, {args.epochs} epochs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {args.repeats} alternating repeats; LossLandscapeMonitor"
        f"({overrides or ''}): dims={defaults.dims}, num_points={defaults.num_points}, "
        f"num_samples={defaults.num_samples}, every_n_epochs={defaults.every_n_epochs}\n"
    )
    print("| run | wall median s | runs |")
    print("|---|---|---|")
    print(f"| without | {base:.1f} | {', '.join(f'{t:.1f}' for t in plain)} |")
    print(f"| with LossLandscapeMonitor() | {with_monitor:.1f} | {', '.join(f'{t:.1f}' for t in watched)} |")
    print(
        f"\noverhead: {100 * (with_monitor - base) / base:.0f}% of training time; "
        f"final weights identical: {same}"
    )


if __name__ == "__main__":
    main()
