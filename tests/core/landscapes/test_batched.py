"""Several grid points per forward (vmap) against one point per forward, and the fallback."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from problems import assert_same_state, bn_cnn, image_batches, mlp, snapshot, vector_batches, warm_up_bn
from torch import nn

from lightning_landscape import compute_landscape
from lightning_landscape.core.landscapes import _batched as batched
from lightning_landscape.core.landscapes.directions import moving_names


def models():
    cnn = bn_cnn()
    warm_up_bn(cnn, image_batches())
    return {
        "mlp": (mlp(), vector_batches(sizes=(8, 5, 11))),
        "cnn_bn_dropout": (cnn, image_batches()),
    }


@pytest.mark.parametrize("name", ["mlp", "cnn_bn_dropout"])
@pytest.mark.parametrize(("dims", "points_per_forward"), [(2, 7), (2, "auto"), (1, 4)])
def test_batched_grid_equals_sequential(name, dims, points_per_forward):
    model, batches = models()[name]
    before = snapshot(model)
    sequential = compute_landscape(model, batches, dims=dims, num_points=5)
    grouped = compute_landscape(
        model, batches, dims=dims, num_points=5, points_per_forward=points_per_forward
    )
    torch.testing.assert_close(grouped.loss, sequential.loss, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grouped.accuracy, sequential.accuracy, rtol=1e-5, atol=1e-7)
    assert_same_state(before, model)


def test_batched_custom_loss_and_small_memory_budget_give_the_same_numbers():
    model, batches = models()["cnn_bn_dropout"]

    def loss_fn(module, batch):
        return F.cross_entropy(module(batch[0]), batch[1]) + 0.1

    sequential = compute_landscape(model, batches, num_points=4, loss_fn=loss_fn)
    # a budget below one point's memory still evaluates, one point per chunk
    tiny = compute_landscape(
        model, batches, num_points=4, loss_fn=loss_fn, points_per_forward="auto", points_memory_mb=1e-6
    )
    torch.testing.assert_close(tiny.loss, sequential.loss, rtol=1e-5, atol=1e-7)
    assert tiny.accuracy is None and sequential.accuracy is None


def test_chunk_size_follows_the_memory_budget():
    model, batches = models()["mlp"]
    reference = {n: p.detach() for n, p in model.named_parameters()}
    directions = [{n: torch.ones_like(t) for n, t in reference.items()}]
    moving_numel = sum(t.numel() for t in reference.values())
    # activations of the largest batch (11 samples): 6 + 6 + 3 per sample
    per_point = 4 * (moving_numel + 2 * 11 * 15)
    assert moving_names(reference, directions) == list(reference)
    chunk = batched.points_per_chunk(model, batches, moving_numel, 10 * per_point)
    assert chunk == 10
    assert batched.balanced_chunk(441, 100) == 89  # five chunks of at most 89 instead of 4×100 + 41


class CallsItem(nn.Module):
    """A forward that vmap cannot map: it reads a tensor's value on the host."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x):
        if self.linear.weight.sum().item() > 1e9:
            return x[:, :3]
        return self.linear(x)


def test_unmappable_model_falls_back_with_one_warning():
    torch.manual_seed(0)
    model = CallsItem()
    batches = vector_batches()
    batched._WARNED.discard(CallsItem)
    sequential = compute_landscape(model, batches, num_points=3)
    with pytest.warns(RuntimeWarning, match="falling back to one point per forward"):
        first = compute_landscape(model, batches, num_points=3, points_per_forward=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = compute_landscape(model, batches, num_points=3, points_per_forward=4)
    assert torch.equal(first.loss, sequential.loss) and torch.equal(second.loss, sequential.loss)


@pytest.mark.parametrize("autocast", ["bf16", "fp16"])
@pytest.mark.parametrize("points_per_forward", [1, 4])
def test_autocast_is_close_and_recorded(autocast, points_per_forward):
    # every point must see its own weights: autocast's cast cache would keep the first point's
    # half-precision copy (the loss was then off by 74% on the MLP)
    model, batches = models()["mlp"]
    exact = compute_landscape(model, batches, num_points=3)
    rounded = compute_landscape(
        model, batches, num_points=3, autocast=autocast, points_per_forward=points_per_forward
    )
    torch.testing.assert_close(rounded.loss, exact.loss, rtol=1e-2, atol=0)
    assert not torch.equal(rounded.loss, exact.loss)
    assert rounded.extra["autocast"] == autocast and exact.extra.get("autocast") is None


def test_compiled_evaluation_equals_eager():
    model, batches = models()["mlp"]
    eager = compute_landscape(model, batches, num_points=3)
    compiled = compute_landscape(model, batches, num_points=3, compile=True)
    torch.testing.assert_close(compiled.loss, eager.loss, rtol=1e-5, atol=1e-7)
    assert compiled.extra["compile"] is True


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"points_per_forward": 0}, "`points_per_forward` must be an integer >= 1"),
        ({"points_per_forward": "many"}, "`points_per_forward` must be an integer >= 1"),
        ({"points_memory_mb": -1}, "`points_memory_mb` must be a finite number > 0"),
        ({"autocast": "fp8"}, "`autocast` must be one of"),
    ],
)
def test_bad_batching_options_are_refused(kwargs, message):
    model, batches = models()["mlp"]
    with pytest.raises((ValueError, TypeError), match=message):
        compute_landscape(model, batches, num_points=3, **kwargs)
