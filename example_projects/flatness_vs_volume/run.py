"""Flatness vs volume (Zhang, Reid, Valle Pérez & Louis, arXiv 2103.06219) on binarized digits.

    python example_projects/flatness_vs_volume/run.py --out example_projects/flatness_vs_volume/figures

Digits 0–4 are class 0, 5–9 class 1. A fully connected ReLU net 64-40-40-2 is trained (full-batch
Adam) on 300 training images, a fraction of whose labels is flipped (default 0, 10, ..., 50%),
until it fits them all, as in Zhang et al.'s protocol; 500 test images keep their true labels.
For every run it measures, on the training set as trained:

- the top Hessian eigenvalue and Keskar's ε-sharpness (flatness);
- the Laplace log evidence with prior precision ``--prior-precision`` (Smith & Le), with the
  Gauss-Newton matrix as curvature: where training stops, a ReLU net's Hessian still has negative
  eigenvalues far larger than λ/N, which leave the Hessian form undefined;
- ``log P(f)``, the prior volume of the function on training ∪ test inputs: the (corrupted) training
  labels on the training images and the net's predictions on the test images (Zhang et al.'s f),
  by NNGP + expectation propagation from ``--init-samples`` random networks of the same
  architecture and initialization.

Then it rescales the clean-label net's first layer by c and its second layer by 1/c (c = 10, 100),
which keeps the function: the flatness measures move, the volume and the test error do not.

Writes ``flatness_vs_volume.png`` (each measure against test error) and ``results.md`` (the table
of every run, the Spearman rank correlation of each measure with test error, the rescaling table).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.figure import Figure
from torch import nn

from lightning_landscape import function_volume, hessian_eigenvalues, log_evidence, sharpness

MEASURES = {
    "top_eigenvalue": "top Hessian eigenvalue",
    "keskar": "Keskar sharpness (ε = 1e-3)",
    "log_evidence": "Laplace log evidence (nats)",
    "log_prior": "log P(f), prior volume (nats)",
}


def make_net() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 2))


def binarized_digits(num_train: int, num_test: int):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target >= 5, dtype=torch.long)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train, test = order[:num_train], order[num_train : num_train + num_test]
    return x[train], y[train], x[test], y[test]


def corrupt(y: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    flipped = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[
        : round(fraction * len(y))
    ]
    y = y.clone()
    y[flipped] = 1 - y[flipped]
    return y


def fit(x: torch.Tensor, y: torch.Tensor, seed: int, max_steps: int) -> tuple[nn.Module, int, float]:
    """Full-batch Adam until every training label is fitted (or ``max_steps``).

    Returns the net, the steps taken and the final training accuracy.
    """
    torch.manual_seed(seed)
    net = make_net()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    steps = 0
    while steps < max_steps:
        steps += 1
        optimizer.zero_grad()
        logits = net(x)
        F.cross_entropy(logits, y).backward()
        optimizer.step()
        if bool((logits.argmax(-1) == y).all()):
            break
    with torch.no_grad():
        accuracy = float((net(x).argmax(-1) == y).float().mean())
    return net, steps, accuracy


def measure(net, x_train, y_train, x_test, args: argparse.Namespace) -> dict[str, float]:
    data = [(x_train, y_train)]
    with torch.no_grad():
        predicted = net(x_test).argmax(-1)
    volume = function_volume(
        make_net,
        torch.cat([x_train, x_test]),
        target=torch.cat([y_train, predicted]),
        num_init_samples=args.init_samples,
    )
    evidence = log_evidence(
        net,
        data,
        prior_precision=args.prior_precision,
        curvature="ggn",
        num_probes=args.evidence_probes,
        num_steps=args.evidence_steps,
    )
    return {
        "top_eigenvalue": float(hessian_eigenvalues(net, data).eigenvalues[0]),
        "keskar": sharpness(net, data, measure="keskar").value,
        "log_evidence": evidence.log_evidence,
        "log_prior": volume.log_probability,
    }


def test_error(net, x_test, y_test) -> float:
    with torch.no_grad():
        return float((net(x_test).argmax(-1) != y_test).float().mean())


def spearman(a: list[float], b: list[float]) -> float:
    ranks = [np.argsort(np.argsort(v)).astype(float) for v in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


def rescaled(net: nn.Module, c: float) -> nn.Module:
    """θ1 → c·θ1 (first layer, bias included), W2 → W2/c: the same function for a ReLU net."""
    out = make_net()
    out.load_state_dict(net.state_dict())
    with torch.no_grad():
        out[0].weight.mul_(c)
        out[0].bias.mul_(c)
        out[2].weight.div_(c)
    return out


def figure(rows: list[dict]) -> Figure:
    fig = Figure(figsize=(10, 8))
    levels = sorted({r["corruption"] for r in rows})
    colours = {level: colormaps["viridis"](i / max(len(levels) - 1, 1)) for i, level in enumerate(levels)}
    for ax, (key, label) in zip(fig.subplots(2, 2).ravel(), MEASURES.items()):
        for level in levels:
            chosen = [r for r in rows if r["corruption"] == level]
            ax.scatter(
                [r[key] for r in chosen],
                [100 * r["test_error"] for r in chosen],
                color=colours[level],
                label=f"{100 * level:.0f}% flipped",
            )
        rho = spearman([r[key] for r in rows], [r["test_error"] for r in rows])
        ax.set(xlabel=label, ylabel="test error (%)", title=f"Spearman ρ = {rho:+.2f}")
        if key == "top_eigenvalue":
            ax.set_xscale("log")
    fig.axes[0].legend(fontsize=8)
    fig.suptitle("Flatness vs volume on binarized digits (FC 64-40-40-2)")
    fig.tight_layout()
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures"))
    parser.add_argument("--levels", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--num-train", type=int, default=300)
    parser.add_argument("--num-test", type=int, default=500)
    parser.add_argument("--max-steps", type=int, default=5000)
    parser.add_argument("--init-samples", type=int, default=4000)
    parser.add_argument("--prior-precision", type=float, default=1.0)
    parser.add_argument("--evidence-probes", type=int, default=30, help="SLQ probes of the log determinant")
    parser.add_argument("--evidence-steps", type=int, default=60, help="Lanczos steps per probe")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    x_train, y_clean, x_test, y_test = binarized_digits(args.num_train, args.num_test)

    rows, clean_net = [], None
    for level in args.levels:
        for seed in range(args.seeds):
            y_train = corrupt(y_clean, level, seed)
            net, steps, accuracy = fit(x_train, y_train, seed, args.max_steps)
            values = measure(net, x_train, y_train, x_test, args)
            rows.append(
                {
                    "corruption": level,
                    "seed": seed,
                    "steps": steps,
                    "train_accuracy": accuracy,
                    "test_error": test_error(net, x_test, y_test),
                    **values,
                }
            )
            print({k: round(v, 4) if isinstance(v, float) else v for k, v in rows[-1].items()}, flush=True)
            if level == args.levels[0] and seed == 0:
                clean_net, clean_labels = net, y_train

    lines = [
        f"FC 64-40-40-2 on {args.num_train} binarized digits (test: {args.num_test}), full-batch Adam to "
        f"100% training accuracy; Laplace evidence with the Gauss-Newton matrix and prior precision "
        f"λ = {args.prior_precision}; volume from {args.init_samples} "
        "random nets (NNGP + EP) on training ∪ test inputs.",
        "",
        "| labels flipped | seed | Adam steps | train accuracy | test error "
        "| top eigenvalue | Keskar | log evidence | log P(f) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {100 * r['corruption']:.0f}% | {r['seed']} | {r['steps']} | {100 * r['train_accuracy']:.1f}% "
            f"| {100 * r['test_error']:.1f}% | {r['top_eigenvalue']:.4g} | {r['keskar']:.4g} "
            f"| {r['log_evidence']:.1f} | {r['log_prior']:.1f} |"
        )
    lines += ["", "Spearman rank correlation with test error across all runs:", ""]
    lines += ["| measure | ρ |", "|---|---|"]
    for key, label in MEASURES.items():
        lines.append(
            f"| {label} | {spearman([r[key] for r in rows], [r['test_error'] for r in rows]):+.2f} |"
        )

    lines += ["", "Rescaling the clean-label net (first layer × c, second layer ÷ c): the same function.", ""]
    lines += [
        "| c | test error | top eigenvalue | Keskar | log evidence | log P(f) |",
        "|---|---|---|---|---|---|",
    ]
    for c in (1.0, 10.0, 100.0):
        net = rescaled(clean_net, c)
        values = measure(net, x_train, clean_labels, x_test, args)
        lines.append(
            f"| {c:g} | {100 * test_error(net, x_test, y_test):.1f}% | {values['top_eigenvalue']:.4g} | "
            f"{values['keskar']:.4g} | {values['log_evidence']:.1f} | {values['log_prior']:.1f} |"
        )
    with open(os.path.join(args.out, "results.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    figure(rows).savefig(os.path.join(args.out, "flatness_vs_volume.png"), dpi=110)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
