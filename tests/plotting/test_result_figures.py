"""``result_figures`` draws what a loaded result holds: a per-layer result's bars are its blocks'
values (the top eigenvalue of each block, or its trace), under the blocks' names."""

import pytest
import torch
from torch import nn

from lightning_landscape import blockwise, hessian_eigenvalues, hessian_trace
from lightning_landscape.plotting.results import result_figures


@pytest.mark.parametrize("function", [hessian_eigenvalues, hessian_trace], ids=lambda f: f.__name__)
def test_per_layer_bars_are_the_blocks_values(function):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    data = [(torch.randn(16, 3, dtype=torch.float64), torch.randint(0, 2, (16,)))]
    per_layer = blockwise(function, net, data, blocks="module")
    expected = [
        float(r.eigenvalues[0]) if function is hessian_eigenvalues else r.estimate
        for r in per_layer.results.values()
    ]

    figure = result_figures(per_layer)["per_layer"]()

    ax = figure.axes[0]
    assert ax.get_ylabel() == ("top eigenvalue" if function is hessian_eigenvalues else "trace")
    assert [t.get_text() for t in ax.get_xticklabels()] == list(per_layer.blocks) == ["0", "2"]
    assert [p.get_height() for p in ax.patches] == pytest.approx(expected, rel=1e-12)
