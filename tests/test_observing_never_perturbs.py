"""Every public function that touches a model leaves it exactly as it was (DEVELOPERS.md #1).

Parameters, buffers, every submodule's train/eval flag, requires_grad, .grad (the same objects,
same values) and the torch, numpy and Python random streams are compared before and after.
"""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import user_measures  # noqa: F401  (registers the measure 'random_step', as a user's module would)
from problems import GlobalRNG, assert_same_state, bn_cnn, image_batches, snapshot, warm_up_bn
from torch import nn

import lightning_landscape as ll
from lightning_landscape.core.base._inputs import check_loss_fn
from lightning_landscape.core.measures.noise import gradient_noise_scale

OTHER_STATE = bn_cnn(seed=9).state_dict()  # built here: bn_cnn() reseeds torch


def fresh_bn_cnn() -> nn.Module:
    """``bn_cnn``'s architecture with a new random initialization at each call."""
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(64, 5),
    )


CALLS = {
    "evaluate": lambda m, b: ll.evaluate(m, b),
    "compute_landscape": lambda m, b: ll.compute_landscape(m, b, dims=2, num_points=3),
    "compute_landscape_batched": lambda m, b: ll.compute_landscape(m, b, num_points=3, points_per_forward=4),
    "compute_landscape_bf16": lambda m, b: ll.compute_landscape(m, b, num_points=3, autocast="bf16"),
    "compute_landscape_in_chunks": lambda m, b: ll.compute_landscape_in_chunks(
        m, b, num_points=3, chunk_points=4, points_per_forward=2
    ),
    "interpolate": lambda m, b: ll.interpolate(m, b, m.state_dict(), OTHER_STATE, num_points=3),
    "connect": lambda m, b: ll.connect(m, b, m.state_dict(), OTHER_STATE, steps=3, num_points=3),
    "barrier_matrix": lambda m, b: ll.barrier_matrix(m, b, [m.state_dict(), OTHER_STATE], num_points=3),
    "trajectory_landscape": lambda m, b: ll.trajectory_landscape(
        m,
        b,
        [
            {n: p.detach() + 0.01 * i * (k + 1) for k, (n, p) in enumerate(m.named_parameters())}
            for i in range(3)
        ],
        num_points=3,
    ),
    "hessian_eigenvalues": lambda m, b: ll.hessian_eigenvalues(m, b, k=1, max_iter=5, min_iter=2),
    "hessian_eigenvalues_per_layer": lambda m, b: ll.blockwise(
        ll.hessian_eigenvalues, m, b, blocks="module", max_iter=4
    ),
    "hessian_eigenvalues_per_batch": lambda m, b: ll.hessian_eigenvalues_per_batch(m, b, max_iter=4),
    "hessian_trace_per_layer": lambda m, b: ll.blockwise(
        ll.hessian_trace, m, b, blocks="parameter", num_probes=3
    ),
    "compute_landscape_hessian_plane": lambda m, b: ll.compute_landscape(
        m, b, num_points=3, directions="hessian_extremes"
    ),
    "compute_landscape_of_a_subset": lambda m, b: ll.compute_landscape(m, b, num_points=3, params="5.*"),
    "hessian_trace": lambda m, b: ll.hessian_trace(m, b, num_probes=3),
    "hessian_density": lambda m, b: ll.hessian_density(m, b, num_probes=1, num_steps=3),
    "eigenvalue_ratio_map": lambda m, b: ll.eigenvalue_ratio_map(m, b, num_points=2, max_iter=4),
    "sharpness": lambda m, b: ll.sharpness(m, b, measure="keskar", num_ascent_steps=2),
    "average_sharpness": lambda m, b: ll.average_sharpness(m, b, num_probes=2),
    "filter_normalized_eigenvalue": lambda m, b: ll.filter_normalized_eigenvalue(m, b, max_iter=4),
    "measure_top_eigenvalue": lambda m, b: ll.sharpness(
        m, b, measure="top_eigenvalue", max_iter=5, min_iter=2
    ),
    "measure_trace": lambda m, b: ll.sharpness(m, b, measure="trace", num_probes=3),
    "measure_basin_volume": lambda m, b: ll.sharpness(
        m, b, measure="basin_volume", num_probes=2, num_scan=3, num_bisect=2, threshold=10.0
    ),
    "measure_registered_outside": lambda m, b: ll.sharpness(m, b, measure="random_step", sigma=0.1),
    "gradient_noise_scale": lambda m, b: gradient_noise_scale(m, b),
    "log_evidence": lambda m, b: ll.log_evidence(m, b, prior_precision=1.0, num_probes=2, num_steps=3),
    "log_evidence_ggn": lambda m, b: ll.log_evidence(
        m, b, prior_precision=1.0, curvature="ggn", num_probes=2, num_steps=3
    ),
    "check_loss_fn": lambda m, b: check_loss_fn(m, b[0]),
    "function_volume": lambda m, b: ll.function_volume(
        fresh_bn_cnn,
        b[0][0][:5],
        model=m,
        num_init_samples=8,
        output_fn=lambda out: out[:, 1] - out[:, 0],
    ),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_public_function_leaves_model_and_random_streams_untouched(name):
    model = bn_cnn()
    batches = image_batches()
    warm_up_bn(model, batches)
    model.train()
    model[1].eval()  # mixed train/eval flags
    model[0].bias.requires_grad_(False)  # a frozen parameter
    F.cross_entropy(model(batches[0][0]), batches[0][1]).backward()  # populated .grad
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    rng = GlobalRNG.capture()
    before = snapshot(model)
    CALLS[name](model, batches)
    assert_same_state(before, model)
    assert GlobalRNG.capture().equals(rng)


@pytest.mark.parametrize("name", sorted(set(CALLS) - {"function_volume", "check_loss_fn"}))
def test_reading_a_shuffling_loader_leaves_the_random_streams_untouched(name):
    from torch.utils.data import DataLoader, TensorDataset

    model = bn_cnn()
    x = torch.cat([b[0] for b in image_batches()])
    y = torch.cat([b[1] for b in image_batches()])
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)  # draws from the global stream
    torch.manual_seed(3)
    rng = GlobalRNG.capture()
    CALLS[name](model, loader)
    assert GlobalRNG.capture().equals(rng)


def _backward_loss(model, batch):
    """A user's loss that calls ``backward()`` itself (where its graph allows it)."""
    x, y = batch
    loss = F.cross_entropy(model(x), y)
    if loss.requires_grad:
        loss.backward(retain_graph=True)
    return loss


BACKWARD_CALLS = {
    "evaluate": lambda m, b, f: ll.evaluate(m, b, loss_fn=f),
    "compute_landscape": lambda m, b, f: ll.compute_landscape(m, b, num_points=3, loss_fn=f),
    "hessian_eigenvalues": lambda m, b, f: ll.hessian_eigenvalues(m, b, max_iter=5, min_iter=2, loss_fn=f),
    "hessian_trace": lambda m, b, f: ll.hessian_trace(m, b, num_probes=3, loss_fn=f),
    "hessian_density": lambda m, b, f: ll.hessian_density(m, b, num_probes=1, num_steps=3, loss_fn=f),
    "keskar_sharpness": lambda m, b, f: ll.keskar_sharpness(m, b, num_ascent_steps=2, loss_fn=f),
    "adaptive_worst_sharpness": lambda m, b, f: ll.adaptive_worst_sharpness(
        m, b, num_ascent_steps=2, loss_fn=f
    ),
    "average_sharpness": lambda m, b, f: ll.average_sharpness(m, b, num_probes=2, loss_fn=f),
    "basin_volume": lambda m, b, f: ll.basin_volume(m, b, num_probes=2, num_scan=3, num_bisect=2, loss_fn=f),
    "log_evidence": lambda m, b, f: ll.log_evidence(
        m, b, prior_precision=1.0, num_probes=2, num_steps=3, loss_fn=f
    ),
    "connect": lambda m, b, f: ll.connect(
        m, b, m.state_dict(), OTHER_STATE, steps=2, num_points=3, loss_fn=f
    ),
    "gradient_noise_scale": lambda m, b, f: gradient_noise_scale(m, b, loss_fn=f),
}


@pytest.mark.parametrize("name", sorted(BACKWARD_CALLS))
def test_a_loss_that_calls_backward_itself_leaves_the_users_grad_values_alone(name):
    """``.grad`` is kept by value, not only by identity: the user's tensors never accumulate."""
    model = bn_cnn()
    batches = image_batches()
    F.cross_entropy(model(batches[0][0]), batches[0][1]).backward()
    before = snapshot(model)
    BACKWARD_CALLS[name](model, batches, _backward_loss)
    assert_same_state(before, model)  # the same .grad objects, with the same values
