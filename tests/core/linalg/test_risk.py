"""EmpiricalRisk (core/risk.py): the per-sample mean loss at an offset, its gradient and the model as a
pure function, against plain autograd on the whole data."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_landscape.core.base.params import gradient_context
from lightning_landscape.core.linalg._risk import EmpiricalRisk


@pytest.fixture
def problem():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3)).double()
    model.eval()
    x, y = torch.randn(13, 4, dtype=torch.float64), torch.randint(0, 3, (13,))
    return model, x, y, [(x[:8], y[:8]), (x[8:], y[8:])]  # unequal batches: weights 8/13, 5/13


def test_loss_and_gradient_at_an_offset_are_the_per_sample_mean_over_all_batches(problem):
    model, x, y, batches = problem
    names = ["0.weight", "3.bias"]
    delta = [
        torch.full((5, 4), 0.01, dtype=torch.float64),
        torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64),
    ]
    with gradient_context(model):
        risk = EmpiricalRisk(model, batches, names=names)
        assert risk.weights == [8 / 13, 5 / 13] and risk.dim == 23
        value, grads = risk.loss_and_grad(delta)
        again = risk.loss(delta)
        center = risk.loss()
    reference = {n: p.detach().clone() for n, p in model.named_parameters()}
    for n, d in zip(names, delta):
        reference[n] = (reference[n] + d).requires_grad_(True)
    loss = nn.functional.cross_entropy(torch.func.functional_call(model, reference, (x,)), y)
    expected = torch.autograd.grad(loss, [reference[n] for n in names])
    assert value == pytest.approx(float(loss.detach()), rel=1e-12)
    assert again == pytest.approx(value, rel=1e-12)
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)
    plain = nn.functional.cross_entropy(model(x), y)
    assert center == pytest.approx(
        float(plain), rel=1e-12
    )  # the model is back at θ₀ after gradient_context too


def test_the_pure_function_is_the_model_and_differentiates_only_the_chosen_parameters(problem):
    model, x, _, _ = problem
    risk = EmpiricalRisk(model, names=["3.weight"])
    theta = risk.parameters()
    assert list(theta) == ["3.weight"] and not theta["3.weight"].requires_grad
    torch.testing.assert_close(risk.function(x)(theta), model(x))
    jac = torch.func.jacrev(risk.function(x[:2]))(theta)["3.weight"]
    assert jac.shape == (2, 3, 3, 5)
    flat = risk.flatten([torch.ones(3, 5, dtype=torch.float64)])
    assert flat.shape == (15,) and [t.shape for t in risk.split(flat)] == [torch.Size([3, 5])]


def test_unknown_or_missing_parameters_are_refused_by_name(problem):
    model, *_ = problem
    with pytest.raises(ValueError, match=r"`names` \['nope'\] are not trainable parameters"):
        EmpiricalRisk(model, names=["nope"])
    with pytest.raises(ValueError, match="no trainable parameters"):
        EmpiricalRisk(nn.Linear(2, 2).requires_grad_(False))
