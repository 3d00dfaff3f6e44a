"""The exact Hessian trace of any module whose forward is piecewise linear (issue 26, item 5): a
ReLU/max-pool/BatchNorm CNN written as a LightningModule, with its own training_step as the loss,
gets the exact route, equal to the dense Hessian's trace; anything else keeps Hutch++."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from problems import dense_hessian
from torch import nn

import lightning_landscape as ll
from lightning_landscape.core.linalg._exact_trace import is_cross_entropy_on, is_piecewise_linear


class LitCNN(pl.LightningModule):
    """Written as a module (no Sequential): conv, BatchNorm, ReLU, max-pool, then a linear head."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.norm = nn.BatchNorm2d(3)
        self.head = nn.Linear(3 * 2 * 2, 4)
        self.label_smoothing = label_smoothing

    def forward(self, x):
        h = F.max_pool2d(torch.relu(self.norm(self.conv(x))), 2)
        return self.head(torch.flatten(h, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, label_smoothing=self.label_smoothing)
        self.log("train_loss", loss)  # outside a Trainer: silenced by the library
        return loss


def _data():
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(n, 1, 4, 4, generator=g), torch.randint(0, 4, (n,), generator=g)) for n in (6, 5)]


def _warmed(model):
    model.train()
    with torch.no_grad():
        for x, _ in _data():
            model(x)
    return model.eval()


def test_a_relu_maxpool_batchnorm_cnn_module_gets_the_exact_trace_equal_to_the_dense_hessians():
    model = _warmed(LitCNN())
    assert is_piecewise_linear(model)
    result = ll.hessian_trace(model, _data())  # the default loss: its own training_step
    assert result.method == "exact_ggn" and result.stderr == 0.0
    x = torch.cat([b[0] for b in _data()])
    y = torch.cat([b[1] for b in _data()])
    dense = float(torch.trace(dense_hessian(model, x, y)))
    assert result.estimate == pytest.approx(dense, rel=1e-5)


def test_a_loss_that_is_not_the_cross_entropy_keeps_hutch_plus_plus():
    smoothed = _warmed(LitCNN(label_smoothing=0.1))
    loss = ll.core.base.losses.resolve_loss_fn(None, smoothed)
    assert not is_cross_entropy_on(smoothed, _data(), loss)
    assert ll.hessian_trace(smoothed, _data(), num_probes=6).method == "hutch++"
    with pytest.raises(ValueError, match="`method='exact_ggn'` is the trace of the cross-entropy"):
        ll.hessian_trace(smoothed, _data(), method="exact_ggn")


class _Tanh(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 2)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


class _Shared(_Tanh):
    def forward(self, x):
        return self.b(torch.relu(self.a(torch.relu(self.a(x)))))  # one layer twice: quadratic in its weight


class _Product(_Tanh):
    def forward(self, x):
        h = self.a(x)
        return self.b(h * torch.relu(h))


class _Residual(_Tanh):
    def forward(self, x):
        return self.b(torch.relu(self.a(x)) + 0.5 * x)


class _Untraceable(_Tanh):
    def forward(self, x):
        if x.sum() > 0:  # control flow on data: fx cannot trace it
            return self.b(torch.relu(self.a(x)))
        return self.b(self.a(x))


@pytest.mark.parametrize(
    ("model", "linear"),
    [(_Tanh(), False), (_Shared(), False), (_Product(), False), (_Residual(), True), (_Untraceable(), False)],
)
def test_only_a_graph_linear_in_each_parameter_is_proven(model, linear):
    assert is_piecewise_linear(model) is linear
