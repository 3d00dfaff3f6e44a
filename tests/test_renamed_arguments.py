"""Arguments renamed for one vocabulary still work under their former names for one release."""

import pytest
import torch
from problems import mlp, vector_batches

from lightning_landscape import LossLandscapeMonitor, TrajectoryMonitor, compute_landscape


def test_compute_landscape_takes_memory_budget_mb_as_points_memory_mb_with_a_warning():
    model, batches = mlp(), vector_batches()
    with pytest.warns(FutureWarning, match="`memory_budget_mb` is now called `points_memory_mb`"):
        old = compute_landscape(model, batches, points_per_forward="auto", memory_budget_mb=1e-6)
    new = compute_landscape(model, batches, points_per_forward="auto", points_memory_mb=1e-6)
    assert torch.equal(old.loss, new.loss)
    with pytest.raises(ValueError, match="give `points_memory_mb` only"):
        compute_landscape(model, batches, num_points=3, memory_budget_mb=1.0, points_memory_mb=2.0)


@pytest.mark.parametrize(
    ("monitor", "new_name"),
    [(LossLandscapeMonitor, "points_memory_mb"), (TrajectoryMonitor, "snapshot_memory_mb")],
)
def test_monitors_take_memory_budget_mb_under_its_new_name_with_a_warning(monitor, new_name):
    with pytest.warns(FutureWarning, match=f"now called `{new_name}`"):
        assert getattr(monitor(memory_budget_mb=64.0), new_name) == 64.0
    with pytest.raises(ValueError, match=f"give `{new_name}` only"):
        monitor(memory_budget_mb=64.0, **{new_name: 32.0})
