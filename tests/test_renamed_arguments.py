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


def test_basin_volume_takes_num_directions_as_num_probes_with_a_warning():
    from lightning_landscape import SharpnessMonitor, basin_volume, sharpness

    model, batches = mlp(), vector_batches()
    quick = {"num_scan": 3, "num_bisect": 2}
    new = basin_volume(model, batches, num_probes=3, **quick)
    assert new.radii.numel() == 3 and new.extra["num_probes"] == 3
    with pytest.warns(FutureWarning, match="`num_directions` is now called `num_probes`"):
        old = basin_volume(model, batches, num_directions=3, **quick)
    with pytest.warns(FutureWarning, match="`num_directions` is now called `num_probes`"):
        through_sharpness = sharpness(model, batches, measure="basin_volume", num_directions=3, **quick)
    assert torch.equal(old.radii, new.radii) and torch.equal(through_sharpness.radii, new.radii)
    with pytest.raises(ValueError, match="give `num_probes` only"):
        sharpness(model, batches, measure="basin_volume", num_directions=3, num_probes=4)
    # a config written with the former name still passes the monitor's checks
    SharpnessMonitor(measures=["basin_volume"], measure_kwargs={"basin_volume": {"num_directions": 3}})
    with pytest.raises(ValueError, match="`num_directions` must be an integer >= 1, got 0"):
        SharpnessMonitor(measures=["basin_volume"], measure_kwargs={"basin_volume": {"num_directions": 0}})


@pytest.mark.parametrize(
    "call",
    [
        lambda: compute_landscape(mlp(), vector_batches(), num_points=3, memory_budget_mb=-1),
        lambda: LossLandscapeMonitor(memory_budget_mb=-1),
        lambda: TrajectoryMonitor(memory_budget_mb=0.0),
    ],
)
def test_a_bad_value_under_the_former_name_is_refused_under_that_name(call):
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="^`memory_budget_mb` must be"):
        call()


def test_a_bad_num_directions_is_refused_as_num_directions():
    from lightning_landscape import basin_volume, sharpness

    for call in (basin_volume, lambda m, b, **kw: sharpness(m, b, measure="basin_volume", **kw)):
        with (
            pytest.warns(FutureWarning),
            pytest.raises(ValueError, match="^`num_directions` must be an integer"),
        ):
            call(mlp(), vector_batches(), num_directions=0)
