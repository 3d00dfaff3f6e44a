"""Figures of Hessian spectra."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from ..core.base.results import SharpnessRecord
from ..core.curvature.density import SpectralDensity
from ..core.landscapes.ratio_map import EigenvalueRatioMap
from ..core.measures.registry import BasinVolumeResult
from ..core.measures.report import SharpnessReport, block_value

__all__ = ["plot_basin_radii", "plot_eigenvalue_ratio_map", "plot_hessian_density", "sharpness_figures"]


def plot_hessian_density(
    density: SpectralDensity, *, num_bins: int = 400, sigma: float | None = None, floor: float = 1e-8
) -> Figure:
    """Log-scale eigenvalue density of the Hessian (stochastic Lanczos quadrature), as in PyHessian.

    The extreme Ritz values of every probe are marked with ticks at the bottom.

    Example:
        >>> import torch
        >>> from lightning_landscape import hessian_density
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> fig = plot_hessian_density(hessian_density(net, data, num_probes=2, num_steps=10))
        >>> fig.axes[0].get_yscale()
        'log'
    """
    grid, values = density.density(num_bins=num_bins, sigma=sigma)
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.semilogy(grid.numpy(), np.maximum(values.numpy(), floor), color="tab:blue")
    nodes = density.quadrature.nodes
    ax.plot(nodes.max(dim=1).values.numpy(), np.full(nodes.shape[0], floor), "|", color="tab:red", ms=12)
    ax.plot(nodes.min(dim=1).values.numpy(), np.full(nodes.shape[0], floor), "|", color="tab:red", ms=12)
    ax.set_ylim(bottom=floor)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density (log scale)")
    ax.set_title(
        f"Hessian spectral density · SLQ, {density.num_probes} probes × {density.num_steps} steps", fontsize=9
    )
    return fig


def plot_eigenvalue_ratio_map(result: EigenvalueRatioMap, *, vmax: float = 0.5) -> Figure:
    """Heat map of ``|λ_min/λ_max|`` (Li et al.): dark where convex, bright where not.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import eigenvalue_ratio_map
        >>> ratio = eigenvalue_ratio_map(net, data, num_points=3, max_iter=8)
        >>> fig = plot_eigenvalue_ratio_map(ratio)
        >>> len(fig.axes)  # the map and its colour bar
        2
    """
    fig = Figure(figsize=(5.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    x, y = (c.numpy() for c in result.coords)
    mesh = ax.pcolormesh(x, y, result.ratio.numpy().T, cmap="viridis", vmin=0.0, vmax=vmax, shading="nearest")
    fig.colorbar(mesh, ax=ax, label="|λ_min / λ_max|")
    ax.plot([0.0], [0.0], marker="x", color="red", ms=8, ls="none")
    ax.set_xlabel("direction 1 (filter-normalized)")
    ax.set_ylabel("direction 2 (filter-normalized)")
    ax.set_title("Hessian eigenvalue ratio over the landscape", fontsize=9)
    return fig


def plot_basin_radii(result: BasinVolumeResult, *, bins: int = 20) -> Figure:
    """Histogram of the basin radii along random filter-normalized directions (Huang et al.).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import basin_volume
        >>> result = basin_volume(net, data, num_probes=3, max_radius=50.0, num_scan=5, num_bisect=3)
        >>> fig = plot_basin_radii(result)
        >>> fig.axes[0].get_ylabel()
        'directions'
    """
    if not isinstance(result, BasinVolumeResult):
        raise ValueError(f"a basin_volume result is needed, got measure={result.measure!r}.")
    fig = Figure(figsize=(5.5, 3.5), layout="constrained")
    ax = fig.add_subplot()
    radii = result.radii.numpy()
    crossed = result.crossed.numpy() if result.crossed.numel() == radii.size else np.ones(radii.size, bool)
    parts = [radii[crossed], radii[~crossed]]
    ax.hist(
        parts,
        bins=bins,
        stacked=True,
        color=["tab:blue", "tab:red"],
        edgecolor="white",
        label=["crossed the threshold", "never crossed (radius = max_radius)"],
    )
    not_crossed = int((~crossed).sum())
    ax.set_xlabel("radius to the loss threshold (filter-normalized units)")
    ax.set_ylabel("directions")
    relation = "≥" if not_crossed else "="  # uncrossed directions count at max_radius: a lower bound
    ax.set_title(
        f"basin radii · log E[rⁿ] {relation} {result.value:.4g} (n = {result.extra.get('dimension')})"
        + (f" · {not_crossed} never crossed: a lower bound" if not_crossed else ""),
        fontsize=9,
    )
    if not_crossed:
        ax.legend(fontsize=7)
    return fig


def plot_per_layer_curvature(
    blocks: list[str], top_eigenvalue: torch.Tensor | None = None, trace: torch.Tensor | None = None
) -> Figure:
    """Bar charts of the top eigenvalue and the trace of each diagonal block of the Hessian.

    Example:
        >>> import torch
        >>> fig = plot_per_layer_curvature(["features", "head"], top_eigenvalue=torch.tensor([3.0, 1.0]))
        >>> labels = " ".join(t.get_text() for t in fig.axes[0].get_xticklabels())
        >>> labels
        'features head'
    """
    panels = [
        (name, v) for name, v in (("top eigenvalue", top_eigenvalue), ("trace", trace)) if v is not None
    ]
    if not panels:
        raise ValueError("give `top_eigenvalue` or `trace` (one value per block).")
    fig = Figure(figsize=(max(5.0, 0.45 * len(blocks) + 2.0), 2.6 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    positions = np.arange(len(blocks))
    for ax, (name, values) in zip(axes, panels):
        ax.bar(positions, values.double().numpy(), color="tab:blue")
        ax.set_ylabel(name)
        ax.set_xticks(positions, blocks, rotation=45, ha="right", fontsize=8)
        ax.axhline(0.0, color="black", lw=0.5)
    axes[0].set_title("Hessian curvature per layer (diagonal blocks)", fontsize=9)
    return fig


def plot_per_batch_eigenvalues(values: torch.Tensor, *, bins: int = 20) -> Figure:
    """Histogram of the top Hessian eigenvalue of each minibatch on its own.

    Example:
        >>> import torch
        >>> fig = plot_per_batch_eigenvalues(torch.tensor([1.0, 2.0, 4.0]))
        >>> fig.axes[0].get_ylabel()
        'batches'
    """
    fig = Figure(figsize=(5.5, 3.5), layout="constrained")
    ax = fig.add_subplot()
    finite = values[torch.isfinite(values)].double().numpy()
    ax.hist(finite, bins=bins, color="tab:orange", edgecolor="white")
    ax.set_xlabel("top eigenvalue of one batch's loss")
    ax.set_ylabel("batches")
    ax.set_title(f"per-batch λ_max · {len(finite)} batches · median {np.median(finite):.4g}", fontsize=9)
    return fig


def sharpness_figures(report: SharpnessReport | SharpnessRecord) -> dict[str, Figure]:
    """Every figure a :class:`~lightning_landscape.SharpnessReport` holds the results of, by name:
    ``hessian_density``, ``basin_radii``, ``per_layer``, ``per_batch_top_eigenvalue``,
    ``eigenvalue_ratio_map`` (those that were measured). A
    :class:`~lightning_landscape.SharpnessRecord` (a file of an earlier version) is read through
    :meth:`SharpnessReport.from_record <lightning_landscape.SharpnessReport.from_record>`."""
    if isinstance(report, SharpnessRecord):
        report = SharpnessReport.from_record(report)
    figures = {}
    if report.density is not None:
        figures["hessian_density"] = plot_hessian_density(report.density)
    basin = report.measures.get("basin_volume")
    if isinstance(basin, BasinVolumeResult) and basin.radii.numel():
        figures["basin_radii"] = plot_basin_radii(basin)
    if report.per_layer:
        blocks = next(iter(report.per_layer.values())).blocks
        values = {
            measure: torch.tensor([block_value(r) for r in found.results.values()], dtype=torch.float64)
            for measure, found in report.per_layer.items()
        }
        figures["per_layer"] = plot_per_layer_curvature(
            list(blocks), values.get("top_eigenvalue"), values.get("trace")
        )
    if report.per_batch is not None:
        figures["per_batch_top_eigenvalue"] = plot_per_batch_eigenvalues(report.per_batch.eigenvalues[:, 0])
    if report.ratio_map is not None:
        figures["eigenvalue_ratio_map"] = plot_eigenvalue_ratio_map(report.ratio_map)
    return figures
