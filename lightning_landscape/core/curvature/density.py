"""The spectral density of the loss Hessian by stochastic Lanczos quadrature."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..._checks import check_int, check_params, check_seed
from ..base._inputs import evaluation_inputs
from ..base.evaluation import check_model
from ..base.losses import LossSpec
from ..base.params import chosen_names, gradient_context, selected_parameters
from ..base.results import ResultFile
from ..linalg.hessian import hessian_operator
from ..linalg.spectrum import SLQNodes, check_slq_size, slq_nodes

__all__ = ["hessian_density", "SpectralDensity"]


@dataclass(frozen=True)
class SpectralDensity(ResultFile):
    """Stochastic Lanczos quadrature estimate of the Hessian's eigenvalue density.

    Attributes:
        quadrature: nodes and weights per probe (:class:`~lightning_landscape.core.linalg.spectrum.SLQNodes`).
        num_probes: Rademacher probes used.
        num_steps: Lanczos steps per probe.
        seed: seed of the probes.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import hessian_density
        >>> density = hessian_density(net, data, num_probes=2, num_steps=8)
        >>> grid, values = density.density(num_bins=50)
        >>> grid.shape == values.shape
        True
    """

    quadrature: SLQNodes
    num_probes: int
    num_steps: int
    seed: int

    def density(self, num_bins: int = 400, sigma: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(grid, density)``: Gaussian-smoothed density on ``num_bins`` points spanning the nodes.

        ``sigma`` defaults to 1% of the spectral range.
        """
        low, high = float(self.quadrature.nodes.min()), float(self.quadrature.nodes.max())
        margin = 0.05 * (high - low or 1.0)
        grid = torch.linspace(low - margin, high + margin, num_bins, dtype=torch.float64)
        return grid, self.quadrature.density(grid, sigma or 0.01 * (high - low or 1.0))


def hessian_density(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    num_probes: int = 4,
    num_steps: int = 40,
    loss_fn: LossSpec = None,
    seed: int = 0,
    num_samples: int | None = None,
    params: str | Sequence[str] | None = None,
) -> SpectralDensity:
    """Eigenvalue density of the loss Hessian by stochastic Lanczos quadrature.

    ``num_probes × num_steps`` Hessian-vector products, on at most ``num_samples`` samples of
    ``batches``. Draw it with :func:`lightning_landscape.plotting.plot_hessian_density`. With
    ``params`` (glob patterns), of the matching parameters only; per layer:
    :func:`~lightning_landscape.core.curvature.blocks.blockwise`.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import hessian_density
        >>> density = hessian_density(net, data, num_probes=2, num_steps=8)
        >>> tuple(density.quadrature.nodes.shape)
        (2, 8)
    """
    check_model(model)
    check_int("num_probes", num_probes, minimum=1)
    check_int("num_steps", num_steps, minimum=2)
    check_seed("seed", seed)
    check_params("params", params)
    names = chosen_names(model, params)
    check_slq_size(num_probes, num_steps, sum(p.numel() for p in selected_parameters(model, params).values()))
    loss_fn, cached = evaluation_inputs(model, batches, loss_fn, num_samples)
    with gradient_context(model):
        op = hessian_operator(model, cached, loss_fn, names, None)
        nodes = slq_nodes(op, num_probes=num_probes, num_steps=num_steps, seed=seed)
    return SpectralDensity(quadrature=nodes, num_probes=num_probes, num_steps=num_steps, seed=seed)
