"""What each instrument of issue 19 costs on the digits CNN, against its plain counterpart.

    python benchmarks/instruments.py [--samples 1024] [--repeats 3] [--threads N]

The digits CNN (BatchNorm) of ``example_projects/digits`` after 5 epochs of SGD, ``--samples``
training images in batches of 128, float32, on the CPU. Each row is the median wall time of
``--repeats`` calls (the model and data are built once); the plain row is what the instrument adds
to or replaces: the top eigenvalue of the whole Hessian, a 21×21 random filter-normalized plane.
``connect`` joins it to the same CNN trained from seed 1; ``barrier_matrix`` adds seed 2.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from landscape import trained_model  # noqa: E402

from lightning_landscape import (  # noqa: E402
    barrier_matrix,
    blockwise,
    compute_landscape,
    connect,
    hessian_eigenvalues,
    hessian_eigenvalues_per_batch,
    hessian_trace,
)


def rows(model, others, batches):
    plane = dict(dims=2, num_points=21)
    return {
        "top eigenvalue, whole Hessian (plain)": lambda: hessian_eigenvalues(model, batches),
        "top eigenvalue per layer (blockwise, 'module')": lambda: blockwise(
            hessian_eigenvalues, model, batches, blocks="module"
        ),
        "trace, whole Hessian (exact, plain)": lambda: hessian_trace(model, batches),
        "trace per layer (blockwise, 'module')": lambda: blockwise(hessian_trace, model, batches),
        "top eigenvalue per batch (hessian_eigenvalues_per_batch)": lambda: hessian_eigenvalues_per_batch(
            model, batches
        ),
        "21x21 plane, random directions (plain)": lambda: compute_landscape(model, batches, **plane),
        "21x21 plane, directions='hessian'": lambda: compute_landscape(
            model, batches, directions="hessian", **plane
        ),
        "21x21 plane, directions='hessian_extremes'": lambda: compute_landscape(
            model, batches, directions="hessian_extremes", **plane
        ),
        "21x21 plane over the last layer (params)": lambda: compute_landscape(
            model, batches, params="9.*", **plane
        ),
        "connect: Bezier curve, 1 bend, 100 steps, 21 points": lambda: connect(
            model, batches, model, others[0], steps=100, lr=0.05
        ),
        "barrier_matrix of 3 solutions (3 straight paths, 11 points)": lambda: barrier_matrix(
            model, batches, [model, *others]
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, x, y = trained_model("cnn", args.samples)
    sys.path.insert(
        0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "example_projects", "digits")
    )
    from digits import sgd_trained

    others = [sgd_trained("cnn", epochs=5, seed=seed)[0] for seed in (1, 2)]
    batches = [(x[i : i + 128], y[i : i + 128]) for i in range(0, x.shape[0], 128)]
    names = [n for n, _ in model.named_parameters()]
    print(
        f"digits CNN, {sum(p.numel() for p in model.parameters())} parameters ({names[-1]} last), "
        f"{x.shape[0]} samples, {len(batches)} batches, {torch.get_num_threads()} threads"
    )
    print("| instrument | seconds (median) |\n|---|---|")
    for name, call in rows(model, others, batches).items():
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
        print(f"| {name} | {statistics.median(times):.3f} |", flush=True)


if __name__ == "__main__":
    main()
