"""compute_landscape against closed forms and plain evaluation; it must never perturb the model."""

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from problems import (
    GlobalRNG,
    Quadratic,
    assert_same_state,
    bn_cnn,
    image_batches,
    mlp,
    quadratic_loss,
    snapshot,
    vector_batches,
    warm_up_bn,
)

from lightning_landscape import compute_landscape
from lightning_landscape.core import evaluate

DUMMY = [(torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1))]


def _flat(direction: dict, model: Quadratic) -> np.ndarray:
    return np.concatenate([direction["weight"].numpy().ravel(), direction["bias"].numpy()])


# ---------------------------------------------------------------- acceptance 2: closed form
@pytest.mark.parametrize("dims", [1, 2])
def test_quadratic_with_given_directions_matches_closed_form(dims):
    model = Quadratic()
    g = torch.Generator().manual_seed(5)
    given = [
        {
            "weight": torch.randn(3, 4, generator=g, dtype=torch.float64),
            "bias": torch.randn(3, generator=g, dtype=torch.float64),
        }
        for _ in range(dims)
    ]
    result = compute_landscape(
        model,
        DUMMY,
        dims=dims,
        num_points=7,
        span=(-2.0, 1.5),
        normalization=None,
        loss_fn=quadratic_loss,
        directions=given,
    )
    theta0 = model.flat().detach().numpy()
    axes = [_flat(d, model) for d in given]
    coords = [c.numpy() for c in result.coords]
    np.testing.assert_allclose(coords[0], np.linspace(-2.0, 1.5, 7), rtol=1e-12)
    expected = np.zeros([7] * dims)
    for index in np.ndindex(*expected.shape):
        theta = theta0 + sum(coords[k][i] * axes[k] for k, i in enumerate(index))
        expected[index] = model.closed_form(theta)
    np.testing.assert_allclose(result.loss.numpy(), expected, rtol=1e-5)
    assert result.accuracy is None and result.seed is None


def test_quadratic_with_random_filter_normalized_directions_matches_closed_form():
    model = Quadratic(seed=3)
    result = compute_landscape(model, DUMMY, dims=2, num_points=5, loss_fn=quadratic_loss, seed=11)
    # bias directions are zero (biasbn); weight rows carry the weights' row norms
    assert torch.count_nonzero(result.directions[0]["bias"]) == 0
    np.testing.assert_allclose(
        result.directions[1]["weight"].norm(dim=1).numpy(),
        model.weight.detach().norm(dim=1).numpy(),
        rtol=1e-5,
    )
    theta0 = model.flat().detach().numpy()
    d0, d1 = (_flat(d, model) for d in result.directions)
    a, b = (c.numpy() for c in result.coords)
    expected = np.array([[model.closed_form(theta0 + x * d0 + y * d1) for y in b] for x in a])
    np.testing.assert_allclose(result.loss.numpy(), expected, rtol=1e-5)


# ---------------------------------------------------------------- acceptance 3: the centre
@pytest.mark.parametrize("dims", [1, 2])
def test_center_equals_plain_evaluation_of_unperturbed_model(dims):
    model = bn_cnn()
    batches = image_batches(sizes=(7, 16, 9))  # uneven batches: per-sample weighting matters
    warm_up_bn(model, batches)
    model.train()
    result = compute_landscape(model, batches, dims=dims, num_points=5)
    # independent reference: one eval-mode forward over all samples at once
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    model.eval()
    with torch.no_grad():
        logits = model(x)
    model.train()
    ref_loss = F.cross_entropy(logits, y).item()
    ref_acc = (logits.argmax(1) == y).double().mean().item()
    assert result.center_index == (2,) * dims
    assert result.center_loss == pytest.approx(ref_loss, rel=1e-6)
    assert result.center_accuracy == pytest.approx(ref_acc, abs=1e-12)
    loss, acc = evaluate(model, batches)
    assert loss == pytest.approx(ref_loss, rel=1e-6) and acc == pytest.approx(ref_acc)
    assert result.num_samples == 32


# ---------------------------------------------------------------- never perturbs
def test_compute_landscape_leaves_model_and_rng_untouched():
    model = bn_cnn()
    batches = image_batches()
    warm_up_bn(model, batches)
    model.train()
    model[1].eval()  # a mix of train / eval flags
    model[0].weight.requires_grad_(False)  # a frozen parameter
    loss = F.cross_entropy(model(batches[0][0]), batches[0][1])
    loss.backward()  # .grad populated (except the frozen weight)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    rng_before = GlobalRNG.capture()
    before = snapshot(model)
    result = compute_landscape(model, batches, dims=2, num_points=5, span=(-3.0, 3.0))
    assert_same_state(before, model)
    assert GlobalRNG.capture().equals(rng_before)
    assert "0.weight" not in result.directions[0]  # frozen: never moved
    assert torch.count_nonzero(result.directions[0]["5.weight"]) > 0


def test_model_is_restored_when_the_loss_function_raises():
    model = mlp()
    before = snapshot(model)
    calls = []

    def failing_loss(m, batch):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return F.cross_entropy(m(batch[0]), batch[1])

    with pytest.raises(RuntimeError, match="boom"):
        compute_landscape(model, vector_batches(sizes=(8,)), dims=1, num_points=5, loss_fn=failing_loss)
    assert_same_state(before, model)


def test_works_inside_inference_mode():
    model = bn_cnn()
    batches = image_batches()
    before = snapshot(model)
    plain = compute_landscape(model, batches, dims=1, num_points=5)
    with torch.inference_mode():
        inside = compute_landscape(model, batches, dims=1, num_points=5)
    assert_same_state(before, model)
    torch.testing.assert_close(inside.loss, plain.loss, rtol=0, atol=0)


# ---------------------------------------------------------------- directions
def test_same_seed_same_raw_directions_renormalized_to_current_weights():
    model = mlp()
    batches = vector_batches()
    first = compute_landscape(model, batches, dims=2, num_points=3, seed=4)
    again = compute_landscape(model, batches, dims=2, num_points=3, seed=4)
    other = compute_landscape(model, batches, dims=2, num_points=3, seed=5)
    for a, b in zip(first.directions, again.directions):
        assert all(torch.equal(a[n], b[n]) for n in a)
    assert not torch.equal(first.directions[0]["0.weight"], other.directions[0]["0.weight"])
    assert not torch.equal(first.directions[0]["0.weight"], first.directions[1]["0.weight"])
    with torch.no_grad():
        model[0].weight.mul_(3.0)  # training moved the weights: same raw draw, re-normalized
    later = compute_landscape(model, batches, dims=2, num_points=3, seed=4)
    torch.testing.assert_close(later.directions[0]["0.weight"], 3.0 * first.directions[0]["0.weight"])


def test_given_directions_absent_names_do_not_move_and_normalization_applies():
    model = mlp()
    batches = vector_batches()
    d = {"0.weight": torch.ones(6, 4)}
    raw = compute_landscape(model, batches, dims=1, num_points=3, normalization=None, directions=[d])
    assert torch.equal(raw.directions[0]["0.weight"], torch.ones(6, 4))
    assert torch.count_nonzero(raw.directions[0]["2.weight"]) == 0
    filt = compute_landscape(model, batches, dims=1, num_points=3, normalization="filter", directions=[d])
    np.testing.assert_allclose(
        filt.directions[0]["0.weight"].norm(dim=1).numpy(),
        model[0].weight.detach().norm(dim=1).numpy(),
        rtol=1e-5,
    )
    # moving only layer 0 by hand reproduces the end points
    with torch.no_grad():
        saved = model[0].weight.clone()
        model[0].weight.add_(1.0)
        plus, _ = evaluate(model, batches)
        model[0].weight.copy_(saved)
    assert float(raw.loss[2]) == pytest.approx(plus, rel=1e-6)


def _given(**tensors):
    """A direction for ``mlp()``: its tensors, replaced where given."""
    base = {
        n: torch.randn(p.shape, generator=torch.Generator().manual_seed(1))
        for n, p in mlp().named_parameters()
    }
    return {**base, **tensors}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"directions": [{"nope": torch.ones(1)}]}, r"`directions`\[0\] names \['nope'\]"),
        ({"directions": [{"0.weight": torch.ones(6, 4)}], "dims": 2}, "`directions` must hold 2"),
        ({"directions": {"0.weight": torch.ones(6, 4)}, "dims": 1}, "`directions` must be a sequence"),
        ({"directions": [{"0.weight": torch.ones(4, 6)}], "normalization": None}, "shape"),
        ({"directions": [_given(**{"0.weight": torch.full((6, 4), math.nan)})]}, "NaN or infinite"),
        ({"directions": [_given(**{"2.bias": torch.tensor([0.0, math.inf, 1.0])})]}, "NaN or infinite"),
        ({"directions": [_given(**{"0.weight": torch.ones(6, 4, dtype=torch.complex64)})]}, "real numbers"),
        ({"directions": [_given(**{"0.weight": torch.ones(6, 4, dtype=torch.bool)})]}, "real numbers"),
        ({"directions": [{"0.weight": [[1.0] * 4] * 6}]}, "must be a tensor"),
        ({"directions": [_given(), _given()], "dims": 2}, "parallel"),
        ({"directions": [_given(), {n: -3 * t for n, t in _given().items()}], "dims": 2}, "parallel"),
        (
            {"directions": [{n: torch.zeros_like(t) for n, t in _given().items()}]},
            "`directions`: direction 0 moves nothing",
        ),
        ({"directions": "sideways"}, "`directions` must be one of"),
    ],
)
def test_bad_directions_are_clear_errors_before_any_work(kwargs, match):
    kwargs = {"dims": 1, **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        compute_landscape(mlp(), _NoData(), num_points=3, **kwargs)


class _NoData:
    """Batches that fail when read: a refusal must come before any work."""

    def __iter__(self):
        raise AssertionError("the data was read before the arguments were checked")


def test_huge_direction_entries_are_normalized_in_float64():
    """1e38 entries overflow a float32 norm: the direction must still get the filters' norms."""
    model = mlp()
    huge = compute_landscape(model, vector_batches(), dims=1, num_points=3, directions=[_given()])
    scaled = {n: t * 1e38 for n, t in _given().items()}
    same = compute_landscape(model, vector_batches(), dims=1, num_points=3, directions=[scaled])
    for name in scaled:
        torch.testing.assert_close(same.directions[0][name], huge.directions[0][name], rtol=1e-6, atol=0)
    torch.testing.assert_close(same.loss, huge.loss, rtol=1e-6, atol=0)


# ---------------------------------------------------------------- divergence and bad input
def test_diverging_grid_is_recorded_not_raised():
    model = mlp()
    result = compute_landscape(model, vector_batches(), dims=2, num_points=5, span=(-1e38, 1e38))
    assert result.num_nonfinite > 0
    assert torch.isfinite(result.loss[2, 2])
    assert np.isfinite(result.max_loss_rise)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_points": 1}, "num_points"),
        ({"span": (1, -1)}, "span"),
        ({"span": (0, float("nan"))}, "span"),
        ({"normalization": "foo"}, "normalization"),
        ({"dims": 3}, "dims"),
        ({"seed": -1}, "seed"),
        ({"num_samples": 0}, "num_samples"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        compute_landscape(mlp(), vector_batches(), **kwargs)


def test_empty_batches_and_bad_loss_fn():
    with pytest.raises(ValueError, match="empty"):
        compute_landscape(mlp(), [])
    with pytest.raises(TypeError, match="loss_fn"):
        compute_landscape(mlp(), vector_batches(), loss_fn=3)
    with pytest.raises(ValueError, match="`loss_fn` 'cross_entropyy' is neither"):
        compute_landscape(mlp(), vector_batches(), loss_fn="cross_entropyy")


def test_num_samples_limits_the_subset_and_custom_loss_has_no_accuracy():
    result = compute_landscape(
        mlp(),
        vector_batches(sizes=(8, 8)),
        dims=1,
        num_points=3,
        num_samples=10,
        loss_fn=lambda m, b: F.cross_entropy(m(b[0]), b[1]),
    )
    assert result.num_samples == 10 and result.accuracy is None


def test_accuracy_is_nan_where_the_loss_is_nan():
    model = mlp()
    with torch.no_grad():
        model[2].bias.fill_(float("nan"))  # every logit NaN, everywhere on the grid
    result = compute_landscape(model, vector_batches(), dims=1, num_points=3)
    assert torch.isnan(result.loss).all() and torch.isnan(result.accuracy).all()
