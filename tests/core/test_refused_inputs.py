"""Inputs that used to give wrong numbers with no error are refused, naming the argument, or give a
documented warning (issue 14, defects 6 and 10)."""

from __future__ import annotations

import pytest
import torch
from problems import mlp, vector_batches
from torch import nn
from torch.utils.data import TensorDataset

import lightning_landscape as ll
from lightning_landscape.core.measures.noise import gradient_noise_scale
from lightning_landscape.data import RandomizedDataset

NAME = "2.bias"


def _snapshots(model, n=4):
    return [
        {k: p.detach() + 0.01 * i * (j + 1) for j, (k, p) in enumerate(model.named_parameters())}
        for i in range(n)
    ]


CASES = {
    "unmatched_params_eigenvalues": (
        lambda m, b: ll.hessian_eigenvalues(m, b, params=["nope.*"]),
        "`params`",
    ),
    "unmatched_params_evidence": (
        lambda m, b: ll.log_evidence(m, b, prior_precision=1.0, params=[NAME, "nope"]),
        "`params`",
    ),
    "empty_params": (lambda m, b: ll.hessian_trace(m, b, params=[]), "`params`"),
    "fewer_steps_than_eigenvalues": (
        lambda m, b: ll.hessian_eigenvalues(m, b, k=3, max_iter=1),
        r"`max_iter` \(1\)",
    ),
    "both_ends_in_two_steps": (
        lambda m, b: ll.hessian_eigenvalues(m, b, k=2, which="both", max_iter=2),
        "`max_iter`",
    ),
    "ratio_map_one_step": (
        lambda m, b: ll.eigenvalue_ratio_map(m, b, num_points=2, max_iter=1),
        "`max_iter`",
    ),
    "ratio_map_reversed_span": (
        lambda m, b: ll.eigenvalue_ratio_map(m, b, num_points=2, span=(1, -1)),
        "`span`",
    ),
    "ratio_map_empty_span": (lambda m, b: ll.eigenvalue_ratio_map(m, b, num_points=2, span=(0, 0)), "`span`"),
    "ratio_map_negative_seed": (lambda m, b: ll.eigenvalue_ratio_map(m, b, num_points=2, seed=-1), "`seed`"),
    "basin_without_scan": (lambda m, b: ll.sharpness(m, b, measure="basin_volume", num_scan=0), "`num_scan`"),
    "sharpness_without_iterations": (
        lambda m, b: ll.sharpness(m, b, measure="filter_normalized_eigenvalue", max_iter=0),
        "`max_iter`",
    ),
    "huge_tolerance_integer": (lambda m, b: ll.hessian_eigenvalues(m, b, tol=10**400), "`tol`"),
    "min_iter_as_text": (lambda m, b: ll.hessian_eigenvalues(m, b, min_iter="10"), "`min_iter`"),
    "trajectory_one_point": (
        lambda m, b: ll.trajectory_landscape(m, b, _snapshots(m), num_points=1),
        "`num_points`",
    ),
    "trajectory_nan_margin": (
        lambda m, b: ll.trajectory_landscape(m, b, _snapshots(m), margin=float("nan")),
        "`margin`",
    ),
    "trajectory_epochs_mismatch": (
        lambda m, b: ll.trajectory_landscape(m, b, _snapshots(m), epochs=[7, 7]),
        "`epochs`",
    ),
    "noise_negative_chunk": (lambda m, b: gradient_noise_scale(m, b, chunk=-1), "`chunk`"),
    "flat_identity_landscape": (
        lambda m, b: ll.compute_landscape(nn.Identity(), b, num_points=3),
        "moves nothing",
    ),
    "all_frozen_landscape": (
        lambda m, b: ll.compute_landscape(m.requires_grad_(False), b, num_points=3),
        "moves nothing",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_refused_naming_the_argument(case):
    call, match = CASES[case]
    with pytest.raises((ValueError, TypeError), match=match):
        call(mlp(), vector_batches())


def test_non_convergence_within_max_iter_is_reported():
    with pytest.warns(RuntimeWarning, match="Lanczos stopped at max_iter=3 before its residuals met"):
        result = ll.hessian_eigenvalues(mlp(), vector_batches(), k=1, max_iter=3, min_iter=1, tol=1e-12)
    assert result.converged is False and result.num_matvecs == 3  # the flag on the result
    assert ll.hessian_eigenvalues(mlp(), vector_batches(), k=1).converged is True
    with pytest.warns(
        RuntimeWarning, match="Lanczos stopped at max_iter=2 before tol=1e-12 at 4 of 4 grid points"
    ):
        ratio = ll.eigenvalue_ratio_map(mlp(), vector_batches(), num_points=2, max_iter=2, tol=1e-12)
    assert not ratio.converged.any()
    with pytest.warns(RuntimeWarning, match="filter_normalized_eigenvalue': Lanczos stopped at max_iter=2"):
        result = ll.sharpness(
            mlp(), vector_batches(), measure="filter_normalized_eigenvalue", max_iter=2, tol=1e-12
        )
    assert result.extra["converged"] is False


def test_module_and_data_arguments():
    with pytest.raises(ValueError, match="`weight_decay` must be a finite number"):
        ll.AntiGeneralizationModule(nn.Linear(2, 2), weight_decay=float("nan"))
    five_classes = TensorDataset(torch.zeros(10, 2), torch.arange(10) % 5)
    with pytest.raises(ValueError, match=r"`num_classes` \(2\) must exceed every label"):
        RandomizedDataset(five_classes, num_classes=2)


def test_spans_beyond_what_the_weights_can_hold_are_refused():
    # found by the fuzzer: a finite span whose coefficients do not fit in float32 overflowed deep inside
    with pytest.raises(ValueError, match="`span`"):
        ll.compute_landscape(mlp(), vector_batches(), num_points=3, span=(-3.402823466385289e38, 0.0))
    half = mlp().half()
    with pytest.raises(
        ValueError, match=r"`span` .* beyond the largest value of the model's dtype \(65504\)"
    ):
        ll.compute_landscape(
            half, [(x.half(), y) for x, y in vector_batches()], num_points=3, span=(-1e5, 1e5)
        )


def test_an_integer_tolerance_is_a_tolerance():
    # tol=10**30 raised OverflowError (the int was multiplied in int64); it is a very loose tolerance
    values = ll.hessian_eigenvalues(mlp(), vector_batches(), k=1, tol=10**30).eigenvalues
    assert values.shape == (1,) and torch.isfinite(values).all()
