"""Sharded evaluation: two shards reduced together give the one-process numbers.

Two threads stand in for two processes: each holds its own copy of the model and a disjoint shard
of the data, and ``reduce_sum`` sums their tensors through a barrier, exactly like an all-reduce.
Every instrument computed this way must equal the same instrument on all the data in one process.
"""

import copy

import pytest
import torch
from problems import ThreadWorld, mlp, vector_batches

from lightning_landscape import (
    compute_landscape,
    hessian_eigenvalues,
    hessian_trace,
    sharpness,
    trajectory_landscape,
)
from lightning_landscape.core.base.batches import batch_weights
from lightning_landscape.core.base.distributed import ShardFailure, all_sum, guarded_sum, is_sharded
from lightning_landscape.core.measures.noise import gradient_noise_scale


def shards(batches, size: int = 2):
    """Interleaved shards of the samples of ``batches`` (as evaluation_subset deals them)."""
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    return [[(x[rank::size], y[rank::size])] for rank in range(size)]


@pytest.fixture
def problem():
    model = mlp()
    batches = vector_batches(sizes=(12, 9, 7))
    return model, batches, shards(batches)


def sharded_results(model, parts, function):
    """``function(model_copy, shard)`` computed by two threads, each on its own copy."""
    copies = [copy.deepcopy(model) for _ in parts]
    results = ThreadWorld(len(parts)).run(lambda rank: function(copies[rank], parts[rank]))
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def test_guarded_sum_and_all_sum_are_identities_outside_sharded():
    assert not is_sharded()
    value = torch.tensor([1.5, 2.0])
    assert all_sum(value) is value
    assert torch.equal(guarded_sum(lambda: value, shape=(2,), dtype=torch.float32), value)


def test_batch_weights_are_shares_of_all_shards(problem):
    _, batches, parts = problem
    weights = ThreadWorld().run(lambda rank: batch_weights(parts[rank]))
    assert weights[0] == [14 / 28] and weights[1] == [14 / 28]
    assert batch_weights(batches) == [12 / 28, 9 / 28, 7 / 28]


def test_landscape_of_two_shards_equals_one_process(problem):
    model, batches, parts = problem
    whole = compute_landscape(model, batches, num_points=5)
    halves = sharded_results(model, parts, lambda m, b: compute_landscape(m, b, num_points=5))
    for half in halves:
        torch.testing.assert_close(half.loss, whole.loss, rtol=1e-5, atol=0)
        torch.testing.assert_close(half.accuracy, whole.accuracy, rtol=1e-5, atol=0)
        assert half.num_samples == 28  # the metadata records every shard's samples together


def test_curvature_of_two_shards_equals_one_process(problem):
    model, batches, parts = problem
    top = hessian_eigenvalues(model, batches, k=2).eigenvalues
    halves = sharded_results(model, parts, lambda m, b: hessian_eigenvalues(m, b, k=2).eigenvalues)
    for half in halves:
        torch.testing.assert_close(half, top, rtol=1e-5, atol=0)
    for method in ("exact_ggn", "hutch++"):
        trace = hessian_trace(model, batches, method=method, num_probes=12).estimate
        halves = sharded_results(
            model, parts, lambda m, b, method=method: hessian_trace(m, b, method=method, num_probes=12)
        )
        for half in halves:
            assert half.estimate == pytest.approx(trace, rel=1e-5)


@pytest.mark.parametrize(
    ("measure", "options"),
    [
        ("keskar", {"num_ascent_steps": 5}),
        ("average", {"num_probes": 4}),
        ("basin_volume", {"num_probes": 3}),
    ],
)
def test_sharpness_of_two_shards_equals_one_process(problem, measure, options):
    # in float64: Keskar's 100·(max L − L)/(1 + L) magnifies float32 rounding of the loss sums,
    # whose order the shards change
    model, batches, _ = problem
    model = model.double()
    batches = [(x.double(), y) for x, y in batches]
    parts = shards(batches)
    whole = sharpness(model, batches, measure=measure, **options)
    halves = sharded_results(model, parts, lambda m, b: sharpness(m, b, measure=measure, **options))
    for half in halves:
        assert half.value == pytest.approx(whole.value, rel=1e-5)
        assert half.center_loss == pytest.approx(whole.center_loss, rel=1e-6)


def test_gradient_noise_scale_of_two_shards_equals_one_process(problem):
    model, batches, parts = problem
    whole = gradient_noise_scale(model, batches)
    halves = sharded_results(model, parts, lambda m, b: gradient_noise_scale(m, b))
    for half in halves:
        assert half.num_samples == whole.num_samples == 28
        assert half.b_simple == pytest.approx(whole.b_simple, rel=1e-5)


def test_trajectory_plane_of_two_shards_equals_one_process(problem):
    model, batches, parts = problem
    generator = torch.Generator().manual_seed(5)
    final = {n: p.detach().clone() for n, p in model.named_parameters()}
    snapshots = [
        {n: t + 0.2 * k * torch.randn(t.shape, generator=generator) for n, t in final.items()}
        for k in range(3)
    ] + [final]
    whole = trajectory_landscape(model, batches, snapshots, num_points=4)
    halves = sharded_results(model, parts, lambda m, b: trajectory_landscape(m, b, snapshots, num_points=4))
    for half in halves:
        torch.testing.assert_close(half.landscape.loss, whole.landscape.loss, rtol=1e-5, atol=0)
        torch.testing.assert_close(half.snapshot_loss, whole.snapshot_loss, rtol=1e-5, atol=0)


@pytest.mark.parametrize("fails_from_call", [1, 2])
def test_a_failure_on_one_shard_raises_on_every_shard_without_hanging(problem, fails_from_call):
    """On the first call, the loss is refused when it is checked, before any work; later, inside
    the computation: every shard stops at the same reduction either way."""
    model, _, parts = problem
    copies = [copy.deepcopy(model) for _ in parts]
    calls = [0]

    def loss_fn(module, batch):
        if module is copies[1]:
            calls[0] += 1
            if calls[0] >= fails_from_call:
                raise RuntimeError("bad batch on shard 1")
        return torch.nn.functional.cross_entropy(module(batch[0]), batch[1])

    world = ThreadWorld(timeout=30)
    for work in (
        lambda rank: compute_landscape(copies[rank], parts[rank], num_points=3, loss_fn=loss_fn),
        lambda rank: hessian_eigenvalues(copies[rank], parts[rank], loss_fn=loss_fn).eigenvalues,
        lambda rank: sharpness(
            copies[rank], parts[rank], measure="keskar", num_ascent_steps=2, loss_fn=loss_fn
        ),
    ):
        calls[0] = 0
        first, second = world.run(work)
        assert isinstance(first, ShardFailure), first
        assert "bad batch on shard 1" in str(second)
        if fails_from_call == 1:  # refused where it failed, naming the loss
            assert isinstance(second, ValueError) and "`loss_fn`" in str(second)
        else:
            assert isinstance(second, RuntimeError) and not isinstance(second, ShardFailure)
    assert world.calls[0] == world.calls[1]  # every reduction was entered by both shards
