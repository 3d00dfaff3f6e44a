"""Noise scales against formulas and a brute-force float64 per-sample computation (issue 5, item 5)."""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from problems import GlobalRNG, assert_same_state, snapshot
from torch import nn

from lightning_landscape.core.measures.noise import gradient_noise_scale, sgd_noise_scale


def test_sgd_noise_scale_formula():
    assert sgd_noise_scale(0.1, 1000, 10) == pytest.approx(0.1 * (100 - 1))
    assert sgd_noise_scale(0.1, 96, 16, momentum=0.9) == pytest.approx(5.0)
    assert sgd_noise_scale(0.5, 64, 64) == 0.0  # full batch: no noise
    with pytest.raises(ValueError, match="batch_size"):
        sgd_noise_scale(0.1, 10, 20)
    with pytest.raises(ValueError, match="momentum"):
        sgd_noise_scale(0.1, 10, 2, momentum=1.0)


def _brute_force(model, x, y):
    rows = []
    for i in range(len(y)):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        rows.append(torch.cat([p.grad.flatten().double() for p in model.parameters()]))
    model.zero_grad(set_to_none=True)
    g = torch.stack(rows)
    mean = g.mean(0)
    trace = float(((g - mean) ** 2).sum() / (len(y) - 1))
    return trace / float(mean.square().sum()), trace


@pytest.mark.parametrize("custom_loss", [False, True])
def test_b_simple_matches_brute_force_per_sample_gradients_in_float64(custom_loss):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (30,), generator=g)
    loss_fn = (lambda m, b: F.cross_entropy(m(b[0]), b[1])) if custom_loss else None
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    rng = GlobalRNG.capture()
    before = snapshot(model)
    result = gradient_noise_scale(model, [(x[:13], y[:13]), (x[13:], y[13:])], loss_fn=loss_fn, chunk=7)
    assert_same_state(before, model)
    assert GlobalRNG.capture().equals(rng)
    expected_b, expected_trace = _brute_force(model, x, y)
    assert result.num_samples == 30
    assert result.b_simple == pytest.approx(expected_b, rel=1e-10)
    assert result.trace_covariance == pytest.approx(expected_trace, rel=1e-10)


def test_one_sample_cannot_estimate_a_variance_and_is_refused():
    from problems import mlp

    from lightning_landscape import NoiseScaleMonitor

    one = [(torch.randn(1, 4), torch.tensor([0]))]
    with pytest.raises(ValueError, match="`batches` hold 1 sample"):
        gradient_noise_scale(mlp(), one)
    with pytest.raises(ValueError, match="`num_samples` must be an integer >= 2"):
        gradient_noise_scale(mlp(), one * 3, num_samples=1)
    with pytest.raises(ValueError, match="`num_samples` must be at least 2"):
        NoiseScaleMonitor(num_samples=1)
    assert NoiseScaleMonitor(num_samples=1, measure_gradient_noise=False).num_samples == 1  # g alone
