"""Figures of curves between minima: the loss along the trained curve and along the straight line."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..core.landscapes.connectivity import BarrierMatrix, ConnectivityResult

__all__ = ["plot_barrier_matrix", "plot_connectivity"]


def plot_connectivity(result: ConnectivityResult, *, log_scale: bool = False) -> Figure:
    """Loss (and accuracy, when recorded) along the straight line and along the trained curve.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from lightning_landscape.core.landscapes.connectivity import connect
        >>> a, b = nn.Linear(3, 2), nn.Linear(3, 2)
        >>> data = [(torch.randn(8, 3), torch.randint(0, 2, (8,)))]
        >>> fig = plot_connectivity(connect(a, data, a, b, steps=5, num_points=5))
        >>> len(fig.axes) >= 1
        True
    """
    panels = 2 if result.curve_accuracy is not None and result.linear_accuracy is not None else 1
    fig = Figure(figsize=(5.0 * panels + 1.0, 3.8), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    t = result.t.numpy()
    paths = (
        ("straight line", result.linear_loss, result.linear_accuracy, result.linear_barrier, "tab:red", "--"),
        (
            f"{result.curve} curve, {result.num_bends} bend{'s' if result.num_bends > 1 else ''}",
            result.curve_loss,
            result.curve_accuracy,
            result.curve_barrier,
            "tab:blue",
            "-",
        ),
    )
    for name, loss, accuracy, height, color, style in paths:
        axes[0].plot(
            t, np.ma.masked_invalid(loss.numpy()), style, color=color, label=f"{name} (barrier {height:.3g})"
        )
        if panels == 2 and accuracy is not None:
            axes[1].plot(t, 100 * np.ma.masked_invalid(accuracy.numpy()), style, color=color, label=name)
    if log_scale:
        axes[0].set_yscale("log")
    axes[0].set_xlabel("t (0: θ_a, 1: θ_b)")
    axes[0].set_ylabel("loss")
    axes[0].legend(fontsize=8)
    axes[0].set_title("loss between two solutions", fontsize=9)
    if panels == 2:
        axes[1].set_xlabel("t (0: θ_a, 1: θ_b)")
        axes[1].set_ylabel("accuracy (%)")
        axes[1].set_title("accuracy between two solutions", fontsize=9)
    return fig


def plot_barrier_matrix(matrix: BarrierMatrix, labels: list[str] | None = None) -> Figure:
    """The pairwise straight-path barriers as a heat map.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import barrier_matrix
        >>> nets = [nn.Linear(3, 2) for _ in range(3)]
        >>> matrix = barrier_matrix(nets[0], data, [n.state_dict() for n in nets], num_points=5)
        >>> fig = plot_barrier_matrix(matrix, labels=["a", "b", "c"])
        >>> len(fig.axes) >= 1
        True
    """
    n = matrix.barriers.shape[0]
    labels = labels or [f"θ_{i}" for i in range(n)]
    fig = Figure(figsize=(1.0 + 0.7 * n, 0.6 + 0.7 * n), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(matrix.barriers.numpy(), cmap="magma")
    fig.colorbar(image, ax=ax, label="straight-path barrier")
    ax.set_xticks(range(n), labels)
    ax.set_yticks(range(n), labels)
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                f"{float(matrix.barriers[i, j]):.2g}",
                ha="center",
                va="center",
                color="white",
                fontsize=8,
            )
    return fig
