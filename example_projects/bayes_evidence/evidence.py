"""Smith & Le 2018, §2: the Bayesian evidence of logistic regression tracks its test cross-entropy.

    python example_projects/bayes_evidence/evidence.py --out example_projects/bayes_evidence/figures

Logistic regression on scikit-learn's digits binarized as "digit ≥ 5", 64 pixels (scaled to [0, 1])
and a bias, 65 weights sharing one Gaussian prior of precision λ. For each λ on a log grid from
10^-3 to 10^3, each training-set size N (50 and 400) and each labelling (the informative one, and
labels drawn at random, p = ½), the weights are fitted exactly (Newton's method on the regularized
summed cross-entropy, to machine precision), then :func:`lightning_landscape.log_evidence` gives the
Laplace evidence with the exact Hessian (a model this small needs no estimate). The evidence ratio
against the null model that guesses every label with probability ½ (``log P(y|x) + N log 2``) is
plotted with the test cross-entropy on the held-out digits (true labels) against λ.

Writes ``evidence.png`` and ``evidence.md`` (the peak of the ratio and the minimum of the test
cross-entropy for each case).
"""

from __future__ import annotations

import argparse
import math
import os

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from lightning_landscape import log_evidence

SIZES = (50, 400)


def binarized_digits(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The 1797 digits as float64 ``(x, y)``, ``y = 1`` for digits ≥ 5, in a seeded random order."""
    from sklearn.datasets import load_digits

    images, digits = load_digits(return_X_y=True)
    order = torch.randperm(len(digits), generator=torch.Generator().manual_seed(seed))
    x = torch.tensor(images, dtype=torch.float64)[order] / 16.0
    y = (torch.tensor(digits)[order] >= 5).double()
    return x, y


def bce(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean negative log likelihood per sample, the loss :func:`log_evidence` expects."""
    x, y = batch
    return F.binary_cross_entropy_with_logits(model(x).squeeze(-1), y)


def newton_fit(x: torch.Tensor, y: torch.Tensor, prior_precision: float, steps: int = 100) -> nn.Linear:
    """The minimum of ``Σ_n CE_n(w) + (λ/2)‖w‖²`` over weights and bias, by Newton's method."""
    phi = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    w = torch.zeros(phi.shape[1], dtype=x.dtype)
    eye = torch.eye(phi.shape[1], dtype=x.dtype)
    for _ in range(steps):
        p = torch.sigmoid(phi @ w)
        gradient = phi.T @ (p - y) + prior_precision * w
        hessian = phi.T @ (phi * (p * (1 - p)).unsqueeze(1)) + prior_precision * eye
        step = torch.linalg.solve(hessian, gradient)
        w = w - step
        if float(step.abs().max()) < 1e-12:
            break
    model = nn.Linear(x.shape[1], 1).double()
    with torch.no_grad():
        model.weight.copy_(w[:-1].unsqueeze(0))
        model.bias.fill_(float(w[-1]))
    return model


def sweep(num_points: int, seed: int = 0) -> list[dict]:
    """One row per (labels, N, λ): evidence ratio, train accuracy, test accuracy and cross-entropy."""
    x, y = binarized_digits(seed)
    test_x, test_y = x[max(SIZES) :], y[max(SIZES) :]
    random_y = torch.bernoulli(torch.full((max(SIZES),), 0.5), generator=torch.Generator().manual_seed(seed))
    rows = []
    for labels in ("informative", "random"):
        for n in SIZES:
            train_x = x[:n]
            train_y = y[:n] if labels == "informative" else random_y[:n].double()
            for lam in torch.logspace(-3, 3, num_points, dtype=torch.float64).tolist():
                model = newton_fit(train_x, train_y, lam)
                evidence = log_evidence(
                    model, [(train_x, train_y)], prior_precision=lam, loss_fn=bce, method="exact"
                )
                with torch.no_grad():
                    train_logits = model(train_x).squeeze(-1)
                    test_logits = model(test_x).squeeze(-1)
                rows.append(
                    {
                        "labels": labels,
                        "n": n,
                        "prior_precision": lam,
                        "log_evidence_ratio": evidence.log_evidence + n * math.log(2),
                        "occam_term": evidence.occam_term,
                        "train_accuracy": float(((train_logits > 0).double() == train_y).double().mean()),
                        "test_accuracy": float(((test_logits > 0).double() == test_y).double().mean()),
                        "test_cross_entropy": float(F.binary_cross_entropy_with_logits(test_logits, test_y)),
                    }
                )
    return rows


def figure(rows: list[dict]) -> Figure:
    fig = Figure(figsize=(12, 4.2 * len(SIZES)), layout="constrained")
    axes = fig.subplots(len(SIZES), 2, squeeze=False)
    for (evidence_ax, test_ax), n in zip(axes, SIZES, strict=True):
        for labels, style in (("informative", "o-"), ("random", "s--")):
            mine = [r for r in rows if r["n"] == n and r["labels"] == labels]
            lams = [r["prior_precision"] for r in mine]
            evidence_ax.plot(
                lams, [r["log_evidence_ratio"] for r in mine], style, ms=3, label=f"{labels} labels"
            )
            test_ax.plot(lams, [r["test_cross_entropy"] for r in mine], style, ms=3, label=f"{labels} labels")
        evidence_ax.axhline(0, color="grey", lw=0.8, ls=":")
        test_ax.axhline(math.log(2), color="grey", lw=0.8, ls=":", label="chance (log 2)")
        evidence_ax.set(
            xscale="log",
            xlabel="prior precision λ",
            ylabel="log P(y|x) − log P(y|null) (nats)",
            title=f"N = {n}: evidence ratio (training set)",
        )
        test_ax.set(
            xscale="log",
            xlabel="prior precision λ",
            ylabel="test cross-entropy (true labels)",
            title=f"N = {n}: generalization",
        )
        evidence_ax.legend(fontsize=8)
        test_ax.legend(fontsize=8)
    return fig


def summary(rows: list[dict]) -> str:
    lines = [
        "| labels | N | λ at peak evidence | peak log evidence ratio | λ at lowest test CE | lowest test CE "
        "| ratio > 0 at some λ | train / test accuracy at λ = 1e-3 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for labels in ("informative", "random"):
        for n in SIZES:
            mine = [r for r in rows if r["n"] == n and r["labels"] == labels]
            peak = max(mine, key=lambda r: r["log_evidence_ratio"])
            best = min(mine, key=lambda r: r["test_cross_entropy"])
            weak = mine[0]
            lines.append(
                f"| {labels} | {n} | {peak['prior_precision']:.3g} | {peak['log_evidence_ratio']:+.2f} "
                f"| {best['prior_precision']:.3g} | {best['test_cross_entropy']:.3f} "
                f"| {'yes' if peak['log_evidence_ratio'] > 0 else 'no'} "
                f"| {weak['train_accuracy']:.1%} / {weak['test_accuracy']:.1%} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="figures")
    parser.add_argument("--num-points", type=int, default=25, help="values of λ on the log grid")
    args = parser.parse_args(argv)
    rows = sweep(args.num_points)
    os.makedirs(args.out, exist_ok=True)
    figure(rows).savefig(os.path.join(args.out, "evidence.png"), dpi=80)
    text = summary(rows)
    with open(os.path.join(args.out, "evidence.md"), "w") as fh:
        fh.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
