"""Eval-mode BatchNorm folded into the layer before it: the same function, the same Hessian."""

import os
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F
from problems import GlobalRNG, assert_same_state, dense_hessian, snapshot
from torch import nn

from lightning_landscape.core.base.params import gradient_context
from lightning_landscape.core.linalg import _folding as folding
from lightning_landscape.core.linalg._folding import folded_batchnorm
from lightning_landscape.core.linalg.hessian import HessianOperator

DIGITS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
    "example_projects",
    "digits",
)


class Block(nn.Module):
    """A residual block in the ResNet style: conv → bn → relu → conv → bn, plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels, affine=False)

    def forward(self, x):
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + x)


class Net(nn.Module):
    def __init__(self, body: nn.Module, features: int) -> None:
        super().__init__()
        self.body = body
        self.head = nn.Linear(features, 3)

    def forward(self, x):
        return self.head(self.body(x).flatten(1))


def _image_net() -> nn.Module:
    body = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), Block(3))
    return Net(body, 3 * 16)


def _conv1d_net() -> nn.Module:
    body = nn.Sequential(nn.Conv1d(2, 3, 3), nn.BatchNorm1d(3, affine=False), nn.Tanh())
    return Net(body, 3 * 14)


def _conv3d_net() -> nn.Module:
    body = nn.Sequential(nn.Conv3d(2, 2, 2, bias=False), nn.BatchNorm3d(2), nn.Tanh())
    return Net(body, 2 * 27)


def _linear_net() -> nn.Module:
    body = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 4), nn.BatchNorm1d(4))
    return Net(body, 4)


# name → (model factory, input shape, names of the BatchNorms that fold)
CASES = {
    "conv2d and a residual block": (_image_net, (2, 4, 4), ["body.1", "body.3.bn1", "body.3.bn2"]),
    "conv1d, non-affine": (_conv1d_net, (2, 16), ["body.1"]),
    "conv3d without bias": (_conv3d_net, (2, 4, 4, 4), ["body.1"]),
    "linear, twice": (_linear_net, (5,), ["body.1", "body.4"]),
}


def _problem(case: str, seed: int = 0):
    factory, shape, folded = CASES[case]
    torch.manual_seed(seed)
    model = factory().double()
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(24, *shape, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (24,), generator=g)
    model.train()
    with torch.no_grad():
        for module in model.modules():  # non-trivial affine parameters, then running statistics
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
                module.weight.uniform_(0.5, 2.0, generator=g)
                module.bias.normal_(generator=g)
        model(x * 2 + 1)
    return model.eval(), x, y, folded


def _as_written_and_folded(model: nn.Module, call):
    """``call(model)`` as written and inside :func:`folded_batchnorm`, with the folded names."""
    with torch.no_grad():
        plain = call(model)
        with folded_batchnorm(model) as names:
            folded = call(model)
    return plain, folded, names


def _small_image_model(factory) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return factory().double().eval(), torch.randn(5, 2, 4, 4, dtype=torch.float64)


@pytest.mark.parametrize("case", list(CASES))
def test_folded_pairs_compute_the_same_function(case):
    model, x, _, expected = _problem(case)
    plain, folded, names = _as_written_and_folded(model, lambda m: m(x))
    assert names == expected
    torch.testing.assert_close(folded, plain, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", list(CASES))
def test_the_folded_product_graphs_give_the_dense_hessian(case):
    model, x, y, expected = _problem(case)
    dense = dense_hessian(model, x, y)
    batches = [(x[:10], y[:10]), (x[10:], y[10:])]  # uneven: per-sample weighting still holds
    with gradient_context(model):
        op = HessianOperator(model, batches)
        built = op.dense()
        plain = HessianOperator(model, batches, fold_batchnorm=False).dense()
    assert op.folded_batchnorm == expected
    torch.testing.assert_close(built, dense, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(plain, dense, rtol=1e-9, atol=1e-11)


class UsedTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)

    def forward(self, x):
        z = self.conv(x)
        return self.bn(z) + z


def _hooked() -> nn.Module:
    model = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2))
    model[1].register_forward_hook(lambda module, inputs, output: output * 2)
    return model


@pytest.mark.parametrize(
    "factory",
    [
        UsedTwice,
        _hooked,
        lambda: nn.Sequential(nn.BatchNorm2d(2), nn.Conv2d(2, 2, 3, padding=1)),
        lambda: nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2, track_running_stats=False)),
        lambda: nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(2)),
    ],
    ids=["layer output used twice", "hooked", "norm before layer", "batch statistics", "not adjacent"],
)
def test_pairs_that_are_not_a_layer_feeding_only_an_eval_norm_stay_as_written(factory):
    model, x = _small_image_model(factory)
    plain, folded, names = _as_written_and_folded(model, lambda m: m(x))
    assert names == []
    assert torch.equal(folded, plain)


class DataDependent(nn.Module):
    """A forward that torch.fx cannot trace (a branch on tensor values) around a foldable child."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2))

    def forward(self, x):
        z = self.features(x)
        return z if z.sum() > 0 else -z


class OptionalArgument(nn.Module):
    """A forward with an optional argument, which tracing would follow down one branch only."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2))

    def forward(self, x, scale=None):
        z = self.features(x)
        return z if scale is None else z * scale


@pytest.mark.parametrize("factory", [DataDependent, OptionalArgument])
def test_a_module_that_cannot_be_traced_whole_is_searched_child_by_child(factory):
    model, x = _small_image_model(factory)
    calls = (lambda m: m(x)) if factory is DataDependent else (lambda m: (m(x), m(x, 3.0)))
    plain, folded, names = _as_written_and_folded(model, calls)
    assert names == ["features.1"]
    assert "forward" not in vars(model)
    torch.testing.assert_close(folded, plain, rtol=1e-12, atol=1e-12)


def test_inputs_batchnorm_would_read_differently_take_the_written_path():
    # Linear on (N, L, C) then BatchNorm1d normalizing dim 1 (L == C here): not a per-output-feature
    # affine map of the linear layer, so the pair must run as written even though it was folded
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)).double()
    with torch.no_grad():
        model.train()(torch.randn(8, 4, 4, dtype=torch.float64) * 3 + 1)
    model.eval()
    x = torch.randn(5, 4, 4, dtype=torch.float64)
    plain, folded, names = _as_written_and_folded(model, lambda m: m(x))
    assert names == ["1"]
    assert torch.equal(folded, plain)


def test_the_model_is_as_before_after_the_block_even_when_it_raises():
    model, x, _, _ = _problem("conv2d and a residual block")
    before, rng = snapshot(model), GlobalRNG.capture()
    tree = [(name, id(module)) for name, module in model.named_modules()]
    with pytest.raises(RuntimeError, match="inside"), folded_batchnorm(model) as names:
        assert names and any("forward" in vars(m) for m in model.modules())
        raise RuntimeError("inside")
    assert not any("forward" in vars(m) for m in model.modules())
    assert [(name, id(module)) for name, module in model.named_modules()] == tree
    assert_same_state(before, model)
    assert rng.equals(GlobalRNG.capture())


def test_the_operator_rebuilds_unfolded_with_a_warning_when_folding_changes_the_loss(monkeypatch):
    model, x, y, _ = _problem("conv2d and a residual block")
    honest = folding._FoldedPair.forward
    monkeypatch.setattr(folding._FoldedPair, "forward", lambda self, z: honest(self, z) + 0.1)
    v = torch.randn(sum(p.numel() for p in model.parameters()), dtype=torch.float64)
    with gradient_context(model):
        op = HessianOperator(model, [(x, y)])
        with pytest.warns(UserWarning, match="changed the loss"):
            product = op.matvec(v)
        expected = HessianOperator(model, [(x, y)], fold_batchnorm=False).matvec(v)
    assert op.folded_batchnorm == []
    torch.testing.assert_close(product, expected, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_models_fold_without_a_false_alarm(dtype):
    # folding rounds W·s once more; in half precision the loss moves by a few units of rounding
    model, x, y, expected = _problem("conv2d and a residual block")
    model, x = model.to(dtype), x.to(dtype)
    v = torch.randn(sum(p.numel() for p in model.parameters()), dtype=dtype)
    with gradient_context(model), warnings.catch_warnings():
        warnings.simplefilter("error")
        op = HessianOperator(model, [(x, y)])
        op.matvec(v)
    assert op.folded_batchnorm == expected


def test_the_digits_cnn_and_a_torchvision_resnet_fold_every_conv_batchnorm_pair():
    torchvision = pytest.importorskip("torchvision")
    sys.path.insert(0, DIGITS)
    try:
        from digits import make_cnn
    finally:
        sys.path.remove(DIGITS)
    cnn = make_cnn().eval()
    resnet = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        plain = resnet(x)
        with folded_batchnorm(cnn) as cnn_names, folded_batchnorm(resnet) as resnet_names:
            folded = resnet(x)
    assert cnn_names == ["1", "4"]
    norms = [name for name, m in resnet.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert sorted(resnet_names) == sorted(norms) and len(norms) == 20
    torch.testing.assert_close(folded, plain, rtol=1e-4, atol=1e-5)
