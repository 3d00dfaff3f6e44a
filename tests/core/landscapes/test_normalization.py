"""Filter / layer normalization against hand-checked and float64-numpy norms (acceptance 1)."""

import numpy as np
import pytest
import torch
from problems import bn_cnn

from lightning_landscape.core import normalize_direction, normalize_directions, random_directions
from lightning_landscape.core.base.params import perturbable_parameters


def _row_norms(t: torch.Tensor) -> np.ndarray:
    a = t.detach().double().numpy()
    return np.sqrt((a.reshape(a.shape[0], -1) ** 2).sum(axis=1))


def test_filter_normalization_by_hand():
    w = torch.tensor([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]])  # row norms 5, 2, 1
    d = torch.tensor([[0.0, 1.0], [3.0, 4.0], [-2.0, 0.0]])  # row norms 1, 5, 2
    out = normalize_direction(d, w, "filter")
    expected = torch.tensor([[0.0, 5.0], [1.2, 1.6], [-1.0, 0.0]])
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-7)
    assert torch.equal(d, torch.tensor([[0.0, 1.0], [3.0, 4.0], [-2.0, 0.0]])), "input was modified"


def test_filter_and_layer_norms_match_weights_on_bn_cnn():
    net = bn_cnn()
    weights = {n: p.detach() for n, p in perturbable_parameters(net).items()}
    raw = random_directions(weights, 1, seed=7)[0]
    filt = normalize_directions(raw, weights, "filter", ignore_bias_and_norm=True)
    layer = normalize_directions(raw, weights, "layer", ignore_bias_and_norm=True)
    checked_2d = checked_1d = 0
    for name, w in weights.items():
        if w.ndim >= 2:
            # every output filter (conv) / output row (linear) has the norm of the weights' slice
            np.testing.assert_allclose(_row_norms(filt[name]), _row_norms(w), rtol=1e-5)
            np.testing.assert_allclose(
                np.linalg.norm(layer[name].double().numpy()), np.linalg.norm(w.double().numpy()), rtol=1e-5
            )
            # direction of each slice is the raw one's (positive rescaling)
            cos = torch.nn.functional.cosine_similarity(filt[name].flatten(1), raw[name].flatten(1), dim=1)
            torch.testing.assert_close(cos, torch.ones_like(cos))
            checked_2d += 1
        else:
            # biases and BatchNorm affine parameters do not move
            assert torch.count_nonzero(filt[name]) == 0, name
            assert torch.count_nonzero(layer[name]) == 0, name
            checked_1d += 1
    assert checked_2d == 2 and checked_1d == 4  # conv.w, linear.w / conv.b, bn.w, bn.b, linear.b


def test_one_dimensional_parameters_when_not_ignored():
    w = torch.tensor([1.0, -2.0, 3.0])
    d = torch.tensor([5.0, 5.0, 5.0])
    # the paper's code: a copy of the weights under filter normalization
    assert torch.equal(normalize_direction(d, w, "filter", ignore_bias_and_norm=False), w)
    layer = normalize_direction(d, w, "layer", ignore_bias_and_norm=False)
    np.testing.assert_allclose(float(layer.norm()), float(w.norm()), rtol=1e-6)
    assert torch.equal(normalize_direction(d, w, None, ignore_bias_and_norm=False), d)
    assert torch.count_nonzero(normalize_direction(d, w, None, ignore_bias_and_norm=True)) == 0


def test_dead_filter_gives_zero_not_nan():
    w = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    out = normalize_direction(torch.ones(2, 2), w, "filter")
    assert torch.isfinite(out).all()
    assert torch.equal(out[0], torch.zeros(2))


def test_conv_filters_are_output_channels():
    w = torch.zeros(2, 3, 2, 2)
    w[0] = 1.0  # filter 0 norm sqrt(12)
    w[1, 0, 0, 0] = 4.0  # filter 1 norm 4
    out = normalize_direction(
        torch.randn(2, 3, 2, 2, generator=torch.Generator().manual_seed(0)), w, "filter"
    )
    np.testing.assert_allclose(_row_norms(out), [np.sqrt(12.0), 4.0], rtol=1e-6)


def test_shape_mismatch_and_unknown_names_are_errors():
    with pytest.raises(ValueError, match="shape"):
        normalize_direction(torch.ones(2, 3), torch.ones(3, 2))
    with pytest.raises(ValueError, match="not perturbable"):
        normalize_directions({"nope": torch.ones(1)}, {"w": torch.ones(1)})
