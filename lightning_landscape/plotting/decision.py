"""Decision boundaries of classifiers with 2D inputs (e.g. the swiss roll)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from ..core.base.params import module_device, observing

__all__ = ["plot_decision_boundary"]


def _points(data: Any, stage: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(x, y)`` of a data module's train or validation loader, or of a given pair."""
    if isinstance(data, (tuple, list)):
        return data[0] if stage == "train" else (data[1] if len(data) > 1 else None)
    loader = data.train_dataloader() if stage == "train" else data.val_dataloader()
    if isinstance(loader, (dict, list)) or hasattr(loader, "iterables"):
        iterables = getattr(loader, "iterables", loader)
        loader = iterables["train"] if isinstance(iterables, dict) else (iterables[0] if iterables else None)
    if loader is None:
        return None
    xs, ys = zip(*[(b[0], b[1]) for b in loader])
    return torch.cat(xs), torch.cat(ys)


def plot_decision_boundary(
    model: nn.Module, data: Any, *, resolution: int = 200, margin: float = 0.5, title: str | None = None
) -> Figure:
    """The predicted class over the plane, with training (circles) and test (crosses) points.

    Args:
        model: a classifier of 2D inputs returning ``(N, C)`` logits; evaluated in eval mode and left
            exactly as it was.
        data: a LightningDataModule (its set up ``train_dataloader``/``val_dataloader``; for an
            :class:`~lightning_landscape.data.AntiGeneralizationDataModule` the clean training data) or
            ``((x_train, y_train), (x_test, y_test))``.
        resolution: grid points per axis.
        margin: extra room around the data.
        title: the figure's title.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> x, y = torch.randn(20, 2), torch.randint(0, 2, (20,))
        >>> fig = plot_decision_boundary(nn.Linear(2, 2), ((x, y),), resolution=20)
        >>> len(fig.axes) >= 1
        True
    """
    train = _points(data, "train")
    if train is None:
        raise ValueError("`data` has no training points to draw.")
    test = _points(data, "val")
    every = torch.cat([train[0]] + ([test[0]] if test is not None else [])).float()
    low, high = (every.min(0).values - margin).tolist(), (every.max(0).values + margin).tolist()
    gx, gy = np.meshgrid(np.linspace(low[0], high[0], resolution), np.linspace(low[1], high[1], resolution))
    grid = torch.tensor(np.stack([gx.ravel(), gy.ravel()], axis=1), dtype=torch.float32)
    with observing(model):
        parameter = next(model.parameters())
        probs = model(grid.to(module_device(model), parameter.dtype)).softmax(-1).cpu().numpy()
    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.add_subplot()
    if probs.shape[1] == 2:
        filled = ax.contourf(
            gx, gy, probs[:, 1].reshape(gx.shape), levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.6
        )
        fig.colorbar(filled, ax=ax, label="p(class 1)")
    else:
        ax.contourf(gx, gy, probs.argmax(1).reshape(gx.shape), cmap="tab10", alpha=0.4)
    for points, marker, label in ((train, "o", "train"), (test, "x", "test")):
        if points is not None:
            ax.scatter(
                points[0][:, 0],
                points[0][:, 1],
                c=points[1],
                cmap="bwr",
                marker=marker,
                s=12,
                label=label,
                edgecolors="k" if marker == "o" else None,
                linewidths=0.3,
            )
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title(title or "decision boundary", fontsize=9)
    ax.set_aspect("equal")
    return fig
