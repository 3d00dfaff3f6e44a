"""interpolate against the two models themselves, a closed form and an averaged model."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from problems import Quadratic, assert_same_state, bn_cnn, image_batches, quadratic_loss, snapshot, warm_up_bn

from lightning_landscape import interpolate
from lightning_landscape.core.landscapes.interpolation import interpolation_coordinates


def _plain_loss(model, batches):
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    model.eval()
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="mean").item()


def _two_bn_models():
    batches = image_batches(sizes=(9, 16))
    a, b = bn_cnn(seed=0), bn_cnn(seed=1)
    warm_up_bn(a, batches)
    warm_up_bn(b, image_batches(sizes=(12,), seed=7))  # different running statistics
    return a, b, batches


def test_end_points_reproduce_the_two_models():
    a, b, batches = _two_bn_models()
    model = bn_cnn(seed=5)
    result = interpolate(model, batches, a.state_dict(), b.state_dict(), num_points=9)
    alphas = result.coords[0].tolist()
    assert 0.0 in alphas and 1.0 in alphas
    loss_a, loss_b = _plain_loss(copy.deepcopy(a), batches), _plain_loss(copy.deepcopy(b), batches)
    assert float(result.loss[alphas.index(0.0)]) == pytest.approx(loss_a, rel=1e-6)
    assert float(result.loss[alphas.index(1.0)]) == pytest.approx(loss_b, rel=1e-6)


def test_batchnorm_buffers_are_interpolated():
    a, b, batches = _two_bn_models()
    result = interpolate(bn_cnn(), batches, a, b, num_points=5, span=(0.0, 1.0))
    average = copy.deepcopy(a)
    with torch.no_grad():
        for t, u in zip(average.state_dict().values(), b.state_dict().values()):
            if t.is_floating_point():
                t.copy_(0.5 * t + 0.5 * u)
    assert float(result.loss[2]) == pytest.approx(_plain_loss(average, batches), rel=1e-5)
    assert "1.running_mean" in result.directions[0]


def test_quadratic_matches_closed_form_and_model_is_untouched():
    model = Quadratic(seed=0)
    a = {k: v.clone() for k, v in Quadratic(seed=1).state_dict().items()}
    b = {k: v.clone() for k, v in Quadratic(seed=2).state_dict().items()}
    a["A"], b["A"] = model.A.clone(), model.A.clone()  # same quadratic, different points
    a["theta_star"], b["theta_star"] = model.theta_star.clone(), model.theta_star.clone()
    before = snapshot(model)
    dummy = [(torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1))]
    result = interpolate(model, dummy, a, b, num_points=11, span=(-1.0, 2.0), loss_fn=quadratic_loss)
    assert_same_state(before, model)
    ta = np.concatenate([a["weight"].numpy().ravel(), a["bias"].numpy()])
    tb = np.concatenate([b["weight"].numpy().ravel(), b["bias"].numpy()])
    expected = [model.closed_form((1 - al) * ta + al * tb) for al in result.coords[0].tolist()]
    np.testing.assert_allclose(result.loss.numpy(), expected, rtol=1e-6)
    assert result.accuracy is None and result.extra["kind"] == "interpolation"


def test_accepts_checkpoint_dicts_and_reports_missing_tensors():
    a, b, batches = _two_bn_models()
    checkpoint = {"state_dict": b.state_dict(), "epoch": 3}
    result = interpolate(bn_cnn(), batches, a, checkpoint, num_points=3, span=(0.0, 1.0))
    assert result.loss.shape == (3,)
    broken = dict(b.state_dict())
    broken.pop("0.weight")
    with pytest.raises(ValueError, match="state_b"):
        interpolate(bn_cnn(), batches, a, broken)
    with pytest.raises(TypeError, match="state_a"):
        interpolate(bn_cnn(), batches, 3, b)
    with pytest.raises(ValueError, match="span"):
        interpolate(bn_cnn(), batches, a, b, span=(1.0, 0.0))


def test_coordinates_always_hold_both_models():
    alphas = interpolation_coordinates((-0.5, 1.5), 51)
    assert 0.0 in alphas.tolist() and 1.0 in alphas.tolist()
    assert torch.all(alphas[1:] > alphas[:-1])
    assert interpolation_coordinates((2.0, 3.0), 3).tolist() == [2.0, 2.5, 3.0]


def test_the_former_argument_order_is_refused_naming_the_argument():
    """Nothing was released: batches come second, as in every core function, and a call in the
    order of an early version fails before any work, naming what is wrong."""
    a, b = bn_cnn(seed=1), bn_cnn(seed=2)
    with pytest.raises((TypeError, ValueError), match="`state_b`"):
        interpolate(bn_cnn(), a, b, image_batches(), num_points=3)
