"""The layer-wise Gauss-Newton trace against per-sample Jacobians and the dense Hessian."""

import pytest
import torch
from problems import bn_cnn, image_batches, mlp, vector_batches, warm_up_bn
from torch import nn

from lightning_landscape.core.base.params import gradient_context
from lightning_landscape.core.linalg._exact_trace import jacobian_ggn_trace, layerwise_ggn_trace
from lightning_landscape.core.linalg.hessian import HessianOperator


def strided_cnn() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, stride=2, padding=1, dilation=1),
        nn.ReLU(),
        nn.Conv2d(3, 4, 2, padding=0, bias=False),
        nn.Flatten(),
        nn.Linear(4, 5),
    )


class SequenceNet(nn.Module):
    """A Linear layer applied along a sequence dimension (per-sample gradients sum over positions)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.embed = nn.Linear(4, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        return self.head(torch.relu(self.embed(x.view(x.shape[0], 2, 2).repeat(1, 1, 2))).mean(1))


CASES = {
    "mlp": (mlp, vector_batches),
    "bn_cnn": (bn_cnn, image_batches),
    "strided_cnn": (strided_cnn, image_batches),
    "sequence": (SequenceNet, vector_batches),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_layerwise_trace_equals_the_jacobian_trace(name):
    build, data = CASES[name]
    model, batches = build(), data()
    if name == "bn_cnn":
        warm_up_bn(model, batches)
    with gradient_context(model):
        fast = layerwise_ggn_trace(model, batches)
        slow = jacobian_ggn_trace(model, batches)
        names = [n for n, p in model.named_parameters() if p.ndim > 1]
        fast_weights = layerwise_ggn_trace(model, batches, names)
        slow_weights = jacobian_ggn_trace(model, batches, names)
    assert fast is not None and fast == pytest.approx(slow, rel=1e-5)
    assert fast_weights == pytest.approx(slow_weights, rel=1e-5) and fast_weights < fast


def test_for_a_relu_network_it_is_the_trace_of_the_dense_hessian():
    model, batches = mlp(), vector_batches()
    with gradient_context(model):
        fast = layerwise_ggn_trace(model, batches)
        dense = HessianOperator(model, batches).dense()
    assert fast == pytest.approx(float(dense.trace()), rel=1e-5)


@pytest.mark.parametrize(
    "model",
    [
        nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.Linear(6, 3)),  # a module it cannot handle
        nn.Sequential(nn.Linear(4, 6), nn.ReLU(inplace=True), nn.Linear(6, 3)),  # output overwritten
    ],
    ids=["layer_norm", "inplace_relu"],
)
def test_unsupported_models_return_none_and_leave_no_hooks(model):
    batches = vector_batches()
    with gradient_context(model):
        assert layerwise_ggn_trace(model, batches) is None
        assert jacobian_ggn_trace(model, batches) > 0
    assert all(not m._forward_hooks for m in model.modules())


def test_a_layer_called_twice_falls_back():
    layer = nn.Linear(4, 4)
    model = nn.Sequential(layer, nn.ReLU(), layer, nn.Linear(4, 3))
    with gradient_context(model):
        assert layerwise_ggn_trace(model, vector_batches()) is None
