"""Paper-scale landscapes with the ``lightning-landscape surface`` command: points per second.

Li et al. evaluated 51×51 grids on the whole CIFAR-10 training set (50 000 images). This script
runs the command as a user would (a subprocess, ``--num_samples all``) on the CIFAR example's
ResNet-20 (``example_projects/cifar10_resnet``) and a synthetic CIFAR-shaped data set of
``--num_images`` images (uint8 pixels from a fixed seed, normalized as the example's data module
does), on 1 and 2 processes, and reports the command's own count of grid points per second
(evaluation only), the start-up time (loading, checks, directions) and the projected time of the
paper's 51×51 full-data landscape.

    python benchmarks/paper_scale.py                         # 1 and 2 CPU processes
    python benchmarks/paper_scale.py --accelerator gpu --devices 1 --points_per_forward auto \\
        --autocast bf16                                      # on a GPU
    python benchmarks/paper_scale.py --smoke                 # tiny sizes, to check the script
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CIFAR = os.path.join(ROOT, "example_projects", "cifar10_resnet")
PAPER_POINTS = 51 * 51


class SyntheticCIFAR(pl.LightningDataModule):
    """``num_images`` CIFAR-shaped images (uint8 pixels drawn from ``seed``) and labels, normalized
    with CIFAR-10's channel statistics like the example's ``CIFAR10DataModule``."""

    def __init__(self, num_images: int = 50_000, batch_size: int = 128, num_workers: int = 0, seed: int = 0):
        super().__init__()
        self.num_images, self.batch_size, self.num_workers, self.seed = (
            num_images,
            batch_size,
            num_workers,
            seed,
        )

    def setup(self, stage: str | None = None) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        pixels = torch.randint(0, 256, (self.num_images, 3, 32, 32), dtype=torch.uint8, generator=generator)
        labels = torch.randint(0, 10, (self.num_images,), generator=generator)
        mean = torch.tensor((0.4914, 0.4822, 0.4465)).view(1, 3, 1, 1)
        std = torch.tensor((0.2470, 0.2435, 0.2616)).view(1, 3, 1, 1)
        self.train_set = TensorDataset((pixels.float() / 255.0 - mean) / std, labels)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, self.batch_size, shuffle=True, num_workers=self.num_workers)


def _run(args: argparse.Namespace, folder: str, devices: int) -> dict[str, float]:
    sys.path.insert(0, CIFAR)
    from cifar import CifarClassifier

    config = os.path.join(folder, "config.yaml")
    with open(config, "w") as fh:
        fh.write(
            "model:\n  class_path: cifar.CifarClassifier\n  init_args: {depth: 20}\n"
            "data:\n  class_path: paper_scale.SyntheticCIFAR\n"
            f"  init_args: {{num_images: {args.num_images}}}\n"
        )
    checkpoint = os.path.join(folder, "resnet20.pt")
    if not os.path.exists(checkpoint):
        torch.manual_seed(0)
        torch.save(CifarClassifier(depth=20).state_dict(), checkpoint)
    out = os.path.join(folder, f"surface_{devices}")
    command = [sys.executable, "-m", "lightning_landscape.cli", "surface", "--model_config", config]
    command += ["--ckpt_path", checkpoint, "--output_dir", out, "--num_samples", "all", "--dims", "1"]
    command += ["--num_points", str(args.num_points), "--chunk_points", str(args.chunk_points)]
    command += [
        "--eval_batch_size",
        str(args.eval_batch_size),
        "--loss_fn",
        "cross_entropy",
        "--accelerator",
        args.accelerator,
    ]
    command += ["--devices", str(devices), "--strategy", "ddp" if devices > 1 else "auto"]
    command += ["--points_per_forward", str(args.points_per_forward)]
    if args.autocast:
        command += ["--autocast", args.autocast]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([HERE, CIFAR, os.environ.get("PYTHONPATH", "")])}
    if args.threads is not None:
        env["OMP_NUM_THREADS"] = str(args.threads)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the command failed:\n{' '.join(command)}\n{done.stderr[-3000:]}")
    found = re.search(r"(\d+) grid points in ([\d.]+) s \(([\d.e+-]+) points/s\)", done.stderr)
    if found is None:
        raise SystemExit(f"no throughput line in the command's output:\n{done.stderr[-2000:]}")
    points, grid_seconds, rate = int(found[1]), float(found[2]), float(found[3])
    startup = wall - grid_seconds
    return {
        "devices": devices,
        "points": points,
        "grid_s": grid_seconds,
        "rate": rate,
        "startup_s": startup,
        "paper_h": (PAPER_POINTS / rate + startup) / 3600,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num_images", type=int, default=50_000)
    parser.add_argument("--num_points", type=int, default=3, help="points of the measured 1D grid")
    parser.add_argument("--chunk_points", type=int, default=1)
    parser.add_argument("--eval_batch_size", type=int, default=500)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2], help="process counts to measure")
    parser.add_argument("--points_per_forward", default="1")
    parser.add_argument("--autocast", choices=["bf16", "fp16"], default=None)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="OMP_NUM_THREADS of each process (default: torch's and Fabric's)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check that the script works")
    parser.add_argument("--out", default=None, help="write the markdown table here too")
    args = parser.parse_args()
    if args.smoke:
        args.num_images, args.num_points, args.eval_batch_size = 200, 2, 100
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for devices in args.devices:
            rows.append(_run(args, folder, devices))
            print(rows[-1], file=sys.stderr)
    lines = [
        f"ResNet-20 (CIFAR example), {args.num_images} synthetic CIFAR-shaped images, `--num_samples all`, "
        f"batch {args.eval_batch_size}, points_per_forward {args.points_per_forward}, "
        f"autocast {args.autocast}, "
        f"{args.accelerator}, torch {torch.__version__}, {os.cpu_count()} CPU cores, threads per process "
        f"{args.threads or 'default'}",
        "",
        "| processes | grid points | evaluation s | points/s | start-up s | projected 51×51 full data |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['devices']} | {row['points']} | {row['grid_s']:.1f} | {row['rate']:.4g} | "
            f"{row['startup_s']:.1f} | {row['paper_h']:.2f} h |"
        )
    if len(rows) > 1:
        lines += [
            "",
            f"Scaling from {rows[0]['devices']} to {rows[-1]['devices']} processes: "
            f"{rows[-1]['rate'] / rows[0]['rate']:.2f}× the points per second.",
        ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
