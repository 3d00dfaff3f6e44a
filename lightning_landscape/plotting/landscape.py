"""Figures of a :class:`~lightning_landscape.LandscapeResult` (object-oriented matplotlib API).

Nothing here touches pyplot's global state or writes files: every function returns a new
``matplotlib.figure.Figure``. Non-finite losses (diverged grid points) are masked, never drawn.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..core.base.results import LandscapeResult

__all__ = [
    "landscape_figures",
    "plot_landscape_1d",
    "plot_landscape_contour",
    "plot_landscape_surface",
]


def _values(result: LandscapeResult, log_scale: bool) -> tuple[np.ma.MaskedArray, str]:
    loss = result.loss.numpy().astype(np.float64)
    if log_scale:
        with np.errstate(divide="ignore", invalid="ignore"):
            loss = np.where(loss > 0, np.log10(loss), np.nan)
        return np.ma.masked_invalid(loss), "log10 loss"
    return np.ma.masked_invalid(loss), "loss"


def _axis_label(result: LandscapeResult, axis: int) -> str:
    if result.normalization is None:
        return f"direction {axis + 1} (not normalized)"
    return f"direction {axis + 1} ({result.normalization}-normalized)"


def _title(result: LandscapeResult, what: str) -> str:
    parts = [what]
    if result.epoch is not None:
        parts.append(f"epoch {result.epoch}")
    if result.global_step is not None:
        parts.append(f"step {result.global_step}")
    if result.num_nonfinite:
        parts.append(f"{result.num_nonfinite} diverged point(s) masked")
    return " · ".join(parts)


def _note_empty(ax, values: np.ma.MaskedArray) -> bool:
    if values.count() == 0:
        text = getattr(ax, "text2D", ax.text)  # 3D axes place axes-fraction text with text2D
        text(
            0.5,
            0.5,
            "every grid point diverged (non-finite loss)",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        return True
    return False


def plot_landscape_1d(result: LandscapeResult, *, log_scale: bool = False) -> Figure:
    """Loss (left axis) and accuracy in percent (right axis, dashed) along one direction.

    Example:
        >>> import torch
        >>> from lightning_landscape import compute_landscape
        >>> net = torch.nn.Linear(3, 2)
        >>> data = [(torch.randn(8, 3), torch.randint(0, 2, (8,)))]
        >>> fig = plot_landscape_1d(compute_landscape(net, data, dims=1, num_points=5))
        >>> len(fig.axes)
        2
    """
    if result.dims != 1:
        raise ValueError(f"plot_landscape_1d needs a 1D result, got dims={result.dims}.")
    values, label = _values(result, log_scale)
    x = result.coords[0].numpy()
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    if not _note_empty(ax, values):
        ax.plot(x, values, color="tab:blue", label=label)
    ax.axvline(0.0, color="grey", lw=0.5)
    ax.set_xlabel(_axis_label(result, 0))
    ax.set_ylabel(label, color="tab:blue")
    if result.accuracy is not None:
        acc_ax = ax.twinx()
        acc = np.ma.masked_invalid(result.accuracy.numpy() * 100.0)
        acc_ax.plot(x, acc, color="tab:red", ls="--", label="accuracy")
        acc_ax.set_ylabel("accuracy (%)", color="tab:red")
        acc_ax.set_ylim(-2, 102)
    ax.set_title(_title(result, "loss landscape (1D)"))
    return fig


def _grid(result: LandscapeResult, log_scale: bool):
    if result.dims != 2:
        raise ValueError(f"this plot needs a 2D result, got dims={result.dims}.")
    values, label = _values(result, log_scale)
    x, y = np.meshgrid(result.coords[0].numpy(), result.coords[1].numpy(), indexing="ij")
    return x, y, values, label


def plot_landscape_contour(
    result: LandscapeResult,
    *,
    filled: bool = False,
    levels: int | np.ndarray = 20,
    log_scale: bool = False,
    vrange: tuple[float, float] | None = None,
) -> Figure:
    """Contours of a 2D landscape: labeled lines, or filled with a colour bar (``filled=True``).

    The centre θ₀ is marked with a cross. ``vrange`` fixes the levels' range (frames of one
    animation share it).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import compute_landscape
        >>> result = compute_landscape(net, data, num_points=3)
        >>> fig = plot_landscape_contour(result, filled=True)
        >>> len(fig.axes) >= 1
        True
    """
    x, y, values, label = _grid(result, log_scale)
    fig = Figure(figsize=(5.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    if vrange is not None and vrange[0] < vrange[1] and isinstance(levels, int):
        levels = np.linspace(vrange[0], vrange[1], levels + 1)
    if not _note_empty(ax, values) and values.count() > 1 and values.min() < values.max():
        if filled:
            mappable = ax.contourf(x, y, values, levels=levels, cmap="viridis")
            fig.colorbar(mappable, ax=ax, label=label)
        else:
            lines = ax.contour(x, y, values, levels=levels, cmap="viridis", linewidths=0.8)
            ax.clabel(lines, inline=True, fontsize=7, fmt="%.3g")
    ax.plot([0.0], [0.0], marker="x", color="red", ms=8, ls="none")
    ax.set_xlabel(_axis_label(result, 0))
    ax.set_ylabel(_axis_label(result, 1))
    ax.set_aspect("equal", adjustable="box")
    ax.set_title(_title(result, "filled contours" if filled else "contours"), fontsize=9)
    return fig


def plot_landscape_surface(
    result: LandscapeResult,
    *,
    log_scale: bool = False,
    elev: float = 30.0,
    azim: float = -60.0,
) -> Figure:
    """A 3D surface of a 2D landscape; diverged points leave holes.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import compute_landscape
        >>> result = compute_landscape(net, data, num_points=3)
        >>> fig = plot_landscape_surface(result)
        >>> fig.axes[0].name
        '3d'
    """
    x, y, values, label = _grid(result, log_scale)
    fig = Figure(figsize=(6, 5), layout="constrained")
    ax = fig.add_subplot(projection="3d")
    if not _note_empty(ax, values):
        ax.plot_surface(x, y, values.filled(np.nan), cmap="viridis", linewidth=0, antialiased=True)
    ax.view_init(elev=elev, azim=azim)
    ax.set_xlabel("direction 1")
    ax.set_ylabel("direction 2")
    ax.set_zlabel(label)
    ax.set_title(_title(result, "surface"), fontsize=9)
    return fig


def landscape_figures(result: LandscapeResult, *, log_scale: bool = False) -> dict[str, Figure]:
    """Every figure of a result, keyed by tag suffix.

    1D: ``{"curve"}``; 2D: ``{"contour", "contour_filled", "surface_3d"}``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import compute_landscape
        >>> result = compute_landscape(net, data, num_points=3)
        >>> sorted(landscape_figures(result))
        ['contour', 'contour_filled', 'surface_3d']
    """
    if result.dims == 1:
        return {"curve": plot_landscape_1d(result, log_scale=log_scale)}
    return {
        "contour": plot_landscape_contour(result, log_scale=log_scale),
        "contour_filled": plot_landscape_contour(result, filled=True, log_scale=log_scale),
        "surface_3d": plot_landscape_surface(result, log_scale=log_scale),
    }
