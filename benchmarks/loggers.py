"""What shipping the monitors' figures to three loggers costs: the digits example's monitors (its
config.yaml: a 2D and a 1D landscape, the trajectory with weight histograms, the sharpness
measures with the density, each run every epoch) timed with TensorBoard alone, then with
TensorBoard, an offline Weights & Biases and a local MLflow store at once.

    pip install ".[examples,wandb,mlflow]"
    python benchmarks/loggers.py [--epochs 4] [--repeats 2]

The monitors' own clock (``spent_seconds``: their computations and their reporting) is summed
over the monitors; the table gives the medians over ``--repeats`` runs of each setting.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import warnings

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "example_projects", "digits")
)

from digits import DigitsClassifier, DigitsDataModule  # noqa: E402
from lightning.pytorch import Trainer, seed_everything  # noqa: E402
from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger  # noqa: E402

import lightning_landscape as ll  # noqa: E402


def monitors() -> list:
    ce = {"loss_fn": "cross_entropy", "every_n_epochs": 1, "progress_bar": False}
    return [
        ll.LossLandscapeMonitor(dims=2, num_points=21, num_samples=1024, **ce),
        ll.LossLandscapeMonitor(dims=1, num_points=51, tag="landscape_1d", **ce),
        ll.TrajectoryMonitor(num_points=21, log_histograms=True, loss_fn="cross_entropy", progress_bar=False),
        ll.SharpnessMonitor(
            measures=["top_eigenvalue", "trace", "keskar", "filter_normalized_eigenvalue", "basin_volume"],
            measure_kwargs={"basin_volume": {"num_probes": 20, "num_scan": 15, "num_bisect": 10}},
            density=True,
            num_samples=1024,
            **ce,
        ),
    ]


def one_run(loggers: str, epochs: int, root: str) -> float:
    chosen = [TensorBoardLogger(os.path.join(root, "tb"), name="digits")]
    if loggers == "three":
        chosen.append(WandbLogger(project="benchmark", save_dir=root, offline=True))
        chosen.append(MLFlowLogger(experiment_name="benchmark", tracking_uri=f"file:{root}/mlruns"))
    watched = monitors()
    seed_everything(0)
    trainer = Trainer(
        max_epochs=epochs,
        callbacks=watched,
        logger=chosen,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(DigitsClassifier(arch="cnn"), DigitsDataModule(batch_size=64))
    if loggers == "three":
        chosen[1].experiment.finish()
    return sum(m.spent_seconds for m in watched)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"tensorboard": [], "three": []}
    for _ in range(args.repeats):
        for setting in times:  # alternate, so machine noise hits both alike
            with tempfile.TemporaryDirectory() as root:
                times[setting].append(one_run(setting, args.epochs, root))
    one, three = (statistics.median(times[k]) for k in ("tensorboard", "three"))
    print("| loggers | monitors' seconds (median) | runs |")
    print("|---|---|---|")
    print(f"| TensorBoard | {one:.2f} | {', '.join(f'{t:.2f}' for t in times['tensorboard'])} |")
    print(f"| TensorBoard + W&B + MLflow | {three:.2f} | {', '.join(f'{t:.2f}' for t in times['three'])} |")
    print(f"\nshipping to three loggers adds {100 * (three - one) / one:+.1f}% to the monitors' time")


if __name__ == "__main__":
    main()
