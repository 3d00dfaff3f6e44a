"""Diverged weights give NaN results with a warning, never a linear-algebra error from inside."""

from __future__ import annotations

import math

import pytest
import torch
from problems import mlp, vector_batches

from lightning_landscape import (
    hessian_density,
    hessian_eigenvalues,
    hessian_trace,
    log_evidence,
    pca_directions,
    sharpness,
)


def _diverged():
    model = mlp()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1e30)
    return model


CALLS = {
    "top_eigenvalue": lambda m, b: float(hessian_eigenvalues(m, b, k=1).eigenvalues[0]),
    "both_ends": lambda m, b: float(hessian_eigenvalues(m, b, k=1, which="both").eigenvalues[1]),
    "hutch++": lambda m, b: hessian_trace(m, b, method="hutch++", num_probes=6).estimate,
    "density": lambda m, b: float(hessian_density(m, b, num_probes=1, num_steps=4).quadrature.nodes.sum()),
    "evidence_exact": lambda m, b: log_evidence(m, b, prior_precision=1.0, method="exact").log_evidence,
    "evidence_slq": lambda m, b: (
        log_evidence(m, b, prior_precision=1.0, num_probes=1, num_steps=4).log_evidence
    ),
    "basin_volume": lambda m, b: sharpness(m, b, measure="basin_volume", num_probes=2, num_scan=3).value,
    "keskar": lambda m, b: sharpness(m, b, measure="keskar", num_ascent_steps=2).value,
}


@pytest.mark.parametrize("name", list(CALLS))
def test_diverged_weights_give_nan_with_a_warning(name):
    with pytest.warns(RuntimeWarning, match="non-finite values"):
        value = CALLS[name](_diverged(), vector_batches())
    assert math.isnan(value)


def test_pca_of_a_diverged_trajectory_is_nan_with_a_warning():
    final = {"w": torch.zeros(3, 4)}
    snapshots = [{"w": torch.randn(3, 4)}, {"w": torch.full((3, 4), float("inf"))}, {"w": torch.randn(3, 4)}]
    with pytest.warns(RuntimeWarning, match="trajectory PCA: non-finite values"):
        result = pca_directions(snapshots, final, k=2)
    assert torch.isnan(result.coords).all()


REFERENCE = mlp()  # the weights every mlp() starts from (seeded)


@pytest.mark.parametrize("measure", ["keskar", "adaptive_worst"])
def test_ascent_measures_are_nan_not_minus_infinity_when_every_perturbed_loss_is_nan(measure):
    def nan_away_from_the_weights(model, batch):
        loss = torch.nn.functional.cross_entropy(model(batch[0]), batch[1])
        moved = sum(float((p - p0).abs().sum()) for p, p0 in zip(model.parameters(), REFERENCE.parameters()))
        return loss * (math.nan if moved > 0 else 1.0)

    with pytest.warns(RuntimeWarning, match=f"sharpness '{measure}': a perturbed loss: non-finite"):
        result = sharpness(
            mlp(),
            vector_batches(),
            measure=measure,
            num_ascent_steps=2,
            loss_fn=nan_away_from_the_weights,
        )
    assert math.isfinite(result.center_loss) and math.isnan(result.value)


def test_basin_volume_says_when_a_nan_loss_ended_a_direction():
    def nan_far_from_the_weights(model, batch):
        loss = torch.nn.functional.cross_entropy(model(batch[0]), batch[1])
        moved = sum(float((p - p0).abs().sum()) for p, p0 in zip(model.parameters(), REFERENCE.parameters()))
        return loss * (math.nan if moved > 1e-3 else 1.0)

    with pytest.warns(RuntimeWarning, match="the loss became NaN before reaching the threshold"):
        result = sharpness(
            mlp(),
            vector_batches(),
            measure="basin_volume",
            num_probes=3,
            num_scan=4,
            num_bisect=2,
            loss_fn=nan_far_from_the_weights,
        )
    assert result.extra["num_nan_crossings"] == 3 and bool(result.crossed.all())
