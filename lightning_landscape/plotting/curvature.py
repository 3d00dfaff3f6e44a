"""Figures of Hessian spectra."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..core.curvature import SpectralDensity

__all__ = ["plot_hessian_density"]


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
