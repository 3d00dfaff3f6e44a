"""Li et al. 2018: filter normalization is invariant to rescaling (``../../README.md``, issue 15 item 4).

A ReLU MLP 64-64-10 is trained on digits (``digits.sgd_trained``); its first layer (weights and
bias) is multiplied by α and its second layer's weights by 1/α, for α ∈ {0.1, 1, 10}: the same
function, by the ReLU's positive homogeneity. Along one seeded random direction the
filter-normalized 1D loss curve is the same for every α, while the unnormalized curve and the
scale-dependent sharpness measures (top Hessian eigenvalue, Keskar) change by orders of magnitude.

    python example_projects/rescaling/run.py --out example_projects/rescaling/figures
"""

from __future__ import annotations

import argparse
import copy
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "digits"))

from digits import sgd_trained  # noqa: E402

from lightning_landscape import compute_landscape, hessian_eigenvalues, sharpness  # noqa: E402

ALPHAS = (0.1, 1.0, 10.0)


def rescaled(model: torch.nn.Module, alpha: float) -> torch.nn.Module:
    """The same function: first Linear (weights and bias) × α, second Linear's weights × 1/α."""
    copy_ = copy.deepcopy(model)
    first, second = (m for m in copy_.modules() if isinstance(m, torch.nn.Linear))
    with torch.no_grad():
        first.weight.mul_(alpha)
        first.bias.mul_(alpha)
        second.weight.div_(alpha)
    return copy_


def measure(samples: int = 1024, num_points: int = 21) -> dict[float, dict]:
    """Per α: the filter-normalized and the unnormalized 1D curves, λ_max and Keskar sharpness."""
    model, train_set = sgd_trained("mlp", epochs=5)
    x, y = train_set.tensors
    batches = [(x[:samples], y[:samples])]
    results = {}
    for alpha in ALPHAS:
        net = rescaled(model, alpha)
        results[alpha] = {
            "filter": compute_landscape(net, batches, dims=1, num_points=num_points, normalization="filter"),
            "none": compute_landscape(net, batches, dims=1, num_points=num_points, normalization=None),
            "top_eigenvalue": float(hessian_eigenvalues(net, batches, k=1).eigenvalues[0]),
            "keskar": sharpness(net, batches, measure="keskar").value,
        }
    return results


def table(results: dict[float, dict]) -> str:
    rows = [
        "| α | filter-normalized loss at t = −1, 0, 1 | unnormalized loss at t = −1, 0, 1 "
        "| top eigenvalue | Keskar |",
        "|---|---|---|---|---|",
    ]
    for alpha, r in results.items():
        f, n = r["filter"].loss, r["none"].loss
        ends = lambda c: f"{float(c[0]):.4f}, {float(c[len(c) // 2]):.4f}, {float(c[-1]):.4f}"  # noqa: E731
        rows.append(f"| {alpha:g} | {ends(f)} | {ends(n)} | {r['top_eigenvalue']:.4g} | {r['keskar']:.4g} |")
    return "\n".join(rows)


def figure(results: dict[float, dict]):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6), layout="constrained")
    axes = fig.subplots(1, 2)
    for alpha, r in results.items():
        for ax, key in zip(axes, ("filter", "none")):
            result = r[key]
            ax.plot(result.coords[0].numpy(), result.loss.numpy(), label=f"α = {alpha:g}", marker=".")
    axes[0].set(title="filter-normalized direction: one curve", xlabel="t", ylabel="training loss")
    axes[1].set(title="unnormalized direction", xlabel="t", yscale="log")
    for ax in axes:
        ax.legend()
    return fig


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="figures")
    parser.add_argument("--samples", type=int, default=1024)
    args = parser.parse_args(argv)
    results = measure(args.samples)
    os.makedirs(args.out, exist_ok=True)
    figure(results).savefig(os.path.join(args.out, "rescaling.png"), dpi=110)
    with open(os.path.join(args.out, "results.md"), "w") as fh:
        fh.write(table(results) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
