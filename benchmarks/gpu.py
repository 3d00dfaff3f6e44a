"""Landscape and curvature timings on the accelerator: the digits CNN and a ResNet-20 on synthetic
CIFAR-shaped data, sequential vs ``points_per_forward="auto"`` vs bf16 autocast, against the floor.

    python benchmarks/gpu.py --out gpu_results.md          # on a GPU (CUDA), the figures
    python benchmarks/gpu.py --smoke --out smoke.md        # anywhere, tiny sizes: does it run

Per model: the floor (``points²`` plain eval-mode forward passes over the samples), our 2D landscape
sequentially, batched (``points_per_forward="auto"``) and under bf16 autocast (with its largest
relative difference from the full-precision grid), the top Hessian eigenvalue, and
``loss-landscapes``' ``random_plane`` when it is installed. Times are medians of ``--repeats``
after one warm-up, with the device synchronized; the markdown table goes to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
from torch import nn

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "example_projects", "digits"))
sys.path.insert(0, os.path.join(ROOT, "example_projects", "cifar10_resnet"))

from cifar import cifar_resnet  # noqa: E402
from digits import make_cnn  # noqa: E402

import lightning_landscape as ll  # noqa: E402


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(work, device: torch.device, repeats: int) -> tuple[float, object]:
    result = work()  # warm-up (kernels, caches, cudnn autotuning)
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        result = work()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def problem(name: str, samples: int, device: torch.device) -> tuple[nn.Module, list]:
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    if name == "digits CNN":
        model, shape = make_cnn(), (1, 8, 8)
    else:
        model, shape = cifar_resnet(20), (3, 32, 32)
    x = torch.randn(samples, *shape, generator=generator)
    y = torch.randint(0, 10, (samples,), generator=generator)
    batch = min(samples, 256)
    batches = [(x[i : i + batch].to(device), y[i : i + batch].to(device)) for i in range(0, samples, batch)]
    return model.to(device).eval(), batches


def floor(model: nn.Module, batches: list, points: int) -> None:
    with torch.no_grad():
        for _ in range(points * points):
            for x, _ in batches:
                model(x)


def rows_for(name: str, args, device: torch.device) -> list[str]:
    model, batches = problem(name, args.samples, device)
    p = args.points
    grid = dict(dims=2, num_points=p)
    rows = []
    base, _ = timed(lambda: floor(model, batches, p), device, args.repeats)
    rows.append(f"| {name} | floor ({p}×{p} forwards) | {base:.3f} | 1.00× | |")
    seq_time, seq = timed(lambda: ll.compute_landscape(model, batches, **grid), device, args.repeats)
    rows.append(f"| {name} | ours, sequential | {seq_time:.3f} | {seq_time / base:.2f}× | |")
    auto_time, auto = timed(
        lambda: ll.compute_landscape(model, batches, points_per_forward="auto", **grid), device, args.repeats
    )
    diff = float(((auto.loss - seq.loss).abs() / seq.loss.abs()).max())
    rows.append(
        f"| {name} | ours, points_per_forward=auto | {auto_time:.3f} | {auto_time / base:.2f}× "
        f"| {seq_time / auto_time:.2f}× faster than sequential; max rel. diff {diff:.1e} |"
    )
    if device.type == "cuda" or args.smoke:
        bf16_time, bf16 = timed(
            lambda: ll.compute_landscape(model, batches, autocast="bf16", **grid), device, args.repeats
        )
        diff = float(((bf16.loss - seq.loss).abs() / seq.loss.abs()).max())
        ratio = bf16_time / base
        rows.append(
            f"| {name} | ours, bf16 autocast | {bf16_time:.3f} | {ratio:.2f}× | max rel. diff {diff:.1e} |"
        )
    eig_time, eig = timed(lambda: ll.hessian_eigenvalues(model, batches, k=1), device, args.repeats)
    rows.append(
        f"| {name} | top Hessian eigenvalue | {eig_time:.3f} | | λ = {float(eig.eigenvalues[0]):.4g}, "
        f"{eig.num_matvecs} products |"
    )
    try:
        import loss_landscapes
        import loss_landscapes.metrics
    except ImportError:
        rows.append(f"| {name} | loss-landscapes | – | | not installed |")
        return rows
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    metric = loss_landscapes.metrics.Loss(nn.CrossEntropyLoss(), x, y)
    try:
        peer_time, _ = timed(
            lambda: loss_landscapes.random_plane(model, metric, distance=1, steps=p, normalization="filter"),
            device,
            args.repeats,
        )
    except ZeroDivisionError:  # its filter normalization divides by a filter's norm, zero for a zero filter
        rows.append(
            f"| {name} | loss-landscapes random_plane | – | | fails: a filter of norm 0 (ZeroDivisionError) |"
        )
        return rows
    ratio = f"{peer_time / base:.2f}×" if base > 0 else "–"  # smoke sizes can time the floor at 0
    rows.append(f"| {name} | loss-landscapes random_plane | {peer_time:.3f} | {ratio} | |")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on whatever device there is")
    parser.add_argument("--points", type=int, default=None, help="grid points per axis (default 21, smoke 3)")
    parser.add_argument(
        "--samples", type=int, default=None, help="evaluation samples (default 1024, smoke 8)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (default 3, smoke 1)")
    parser.add_argument("--out", default=None, help="write the markdown summary here too")
    args = parser.parse_args(argv)
    args.points = args.points or (3 if args.smoke else 21)
    args.samples = args.samples or (8 if args.smoke else 1024)
    args.repeats = args.repeats or (1 if args.smoke else 3)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    lines = [
        f"{name}, torch {torch.__version__}, {args.points}×{args.points} grid, {args.samples} samples, "
        f"median of {args.repeats}{' (smoke mode)' if args.smoke else ''}",
        "",
        "| model | what | seconds | against the floor | notes |",
        "|---|---|---|---|---|",
    ]
    for model in ("digits CNN", "ResNet-20 (synthetic CIFAR-shaped)"):
        lines += rows_for(model, args, device)
    text = "\n".join(lines) + "\n"
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)
    print(text)


if __name__ == "__main__":
    main()
