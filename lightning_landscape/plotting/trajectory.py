"""Figures of trajectories (PCA plane) and of 1D interpolations between two models."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..core.base.results import LandscapeResult
from ..core.landscapes.trajectory import TrajectoryResult

__all__ = ["plot_interpolation", "plot_trajectory"]


def plot_trajectory(
    result: TrajectoryResult, *, levels: int = 20, log_scale: bool = False, upto: int | None = None
) -> Figure:
    """The optimizer's path projected on its PCA plane, over the loss contours of that plane.

    Axes are labeled ``PC1 (xx.x%)`` / ``PC2 (xx.x%)`` with the explained variance; the start is a
    green circle, the end (θ_final, the origin) a red star; each snapshot is annotated with its
    epoch. The title gives the largest distance of a snapshot from the plane relative to the largest
    distance of any snapshot from θ_final, so a misleading plane is visible at a glance. With
    ``upto``, only the path up to snapshot ``upto`` is drawn (a frame of the animation), on the
    same axes as the whole path.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> weights = dict(net.named_parameters())
        >>> moved = lambda i: {n: p.detach() + 0.1 * i * torch.randn_like(p) for n, p in weights.items()}
        >>> path = [moved(i) for i in range(3)]
        >>> from lightning_landscape import trajectory_landscape
        >>> result = trajectory_landscape(net, data, path, num_points=3)
        >>> fig = plot_trajectory(result)
        >>> len(fig.axes) >= 1
        True
    """
    landscape = result.landscape
    x, y = (c.numpy() for c in landscape.coords)
    values = landscape.loss.numpy()
    if log_scale:
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(values > 0, np.log10(values), np.nan)
    values = np.ma.masked_invalid(values)
    fig = Figure(figsize=(6, 5), layout="constrained")
    ax = fig.add_subplot()
    if values.count() > 1 and values.min() < values.max():
        gx, gy = np.meshgrid(x, y, indexing="ij")
        filled = ax.contourf(gx, gy, values, levels=levels, cmap="viridis", alpha=0.85)
        lines = ax.contour(gx, gy, values, levels=levels, colors="k", linewidths=0.4)
        ax.clabel(lines, inline=True, fontsize=6, fmt="%.2g")
        fig.colorbar(filled, ax=ax, label="log10 loss" if log_scale else "loss")
    whole = result.pca.coords.numpy()
    path = whole if upto is None else whole[: upto + 1]
    _limit_to(ax.set_xlim, x)
    _limit_to(ax.set_ylim, y)
    ax.plot(path[:, 0], path[:, 1], "-o", color="white", mec="black", ms=4, lw=1.2)
    ax.plot(path[0, 0], path[0, 1], "o", color="tab:green", ms=9, mec="black", label="start")
    ax.plot(0.0, 0.0, "*", color="tab:red", ms=14, mec="black", label="end (θ_final)")
    for (px, py), epoch in zip(path, result.epochs):
        ax.annotate(str(epoch), (px, py), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ratio = result.pca.explained_variance_ratio.numpy() * 100
    ax.set_xlabel(f"PC1 ({ratio[0]:.1f}%)")
    ax.set_ylabel(f"PC2 ({ratio[1]:.1f}%)")
    residual = result.pca.residuals.numpy()
    extent = float(np.max(np.hypot(np.linalg.norm(whole, axis=1), residual)))
    relative = float(residual.max()) / extent if extent > 0 else 0.0
    ax.set_title(
        f"trajectory on its PCA plane · largest distance from the plane {relative:.1%} of the path's extent",
        fontsize=8,
    )
    ax.legend(loc="best", fontsize=7)
    return fig


def _limit_to(set_limits, values: np.ndarray) -> None:
    """Fix the axis to the range of ``values`` where that range is finite and not a point (a
    diverged run's plane can have NaN coordinates: its axes are then left to matplotlib)."""
    finite = values[np.isfinite(values)]
    if finite.size and finite.min() < finite.max():
        set_limits(float(finite.min()), float(finite.max()))


def plot_interpolation(
    train: LandscapeResult,
    validation: LandscapeResult | None = None,
    *,
    labels: tuple[str, str] = ("θ_a", "θ_b"),
    log_scale: bool = False,
) -> Figure:
    """Loss (left axis, blue) and accuracy (right axis, red) along an interpolation.

    Solid lines are the training data, dashed lines the validation data (Li et al. Fig. 2 style);
    α = 0 and α = 1 are marked with the ``labels`` of the two models on the top axis; points where
    the training loss is not finite are shaded.

    Example:
        >>> import torch
        >>> from lightning_landscape import interpolate
        >>> a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
        >>> data = [(torch.randn(8, 3), torch.randint(0, 2, (8,)))]
        >>> fig = plot_interpolation(interpolate(a, data, a, b, num_points=5))
        >>> fig.axes[0].lines[0].get_linestyle()
        '-'
    """
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.add_subplot()
    acc_ax = ax.twinx() if train.accuracy is not None else None
    for result, style, name in ((train, "-", "train"), (validation, "--", "validation")):
        if result is None:
            continue
        alpha = result.coords[0].numpy()
        loss = result.loss.numpy()
        if log_scale:
            with np.errstate(divide="ignore", invalid="ignore"):
                loss = np.where(loss > 0, np.log10(loss), np.nan)
        ax.plot(alpha, np.ma.masked_invalid(loss), style, color="tab:blue", label=f"{name} loss")
        if acc_ax is not None and result.accuracy is not None:
            acc = np.ma.masked_invalid(result.accuracy.numpy() * 100)
            acc_ax.plot(alpha, acc, style, color="tab:red", label=f"{name} accuracy")
    alpha = train.coords[0].numpy()
    ax.set_xlim(alpha.min(), alpha.max())
    diverged = ~np.isfinite(train.loss.numpy())
    if diverged.any():
        half = 0.5 * (alpha.max() - alpha.min()) / max(len(alpha) - 1, 1)
        for position in alpha[diverged]:
            ax.axvspan(position - half, position + half, color="grey", alpha=0.15, lw=0)
        ax.text(
            0.01, 0.02, "grey: loss not finite (masked)", transform=ax.transAxes, fontsize=7, color="grey"
        )
    for position in (0.0, 1.0):
        ax.axvline(position, color="grey", lw=0.6)
    models = ax.secondary_xaxis("top")
    models.set_xticks([0.0, 1.0], labels=list(labels))
    ax.set_xlabel("α   (θ = (1 − α)·θ_a + α·θ_b)")
    ax.set_ylabel("log10 loss" if log_scale else "loss", color="tab:blue")
    handles, names = ax.get_legend_handles_labels()
    if acc_ax is not None:
        acc_ax.set_ylabel("accuracy (%)", color="tab:red")
        acc_ax.set_ylim(-2, 102)
        more_handles, more_names = acc_ax.get_legend_handles_labels()
        handles, names = handles + more_handles, names + more_names
    ax.legend(handles, names, loc="upper center", fontsize=7, ncols=2, bbox_to_anchor=(0.5, -0.18))
    return fig
