"""LandscapeResult files are self-describing and round-trip exactly."""

import json

import numpy as np
import pytest
import torch
from problems import Quadratic, mlp, quadratic_loss, vector_batches

from lightning_landscape import LandscapeResult, compute_landscape


@pytest.mark.parametrize("dims", [1, 2])
def test_save_load_round_trip(tmp_path, dims):
    result = compute_landscape(
        mlp(), vector_batches(), dims=dims, num_points=5, seed=3, epoch=4, global_step=40
    )
    path = result.save(tmp_path / "sub" / "epoch=004.npz")
    loaded = LandscapeResult.load(path)
    assert loaded == result
    assert loaded.epoch == 4 and loaded.global_step == 40 and loaded.seed == 3
    assert loaded.normalization == "filter" and loaded.bn_mode == "eval" and loaded.num_samples == 13
    assert loaded.center_loss == result.center_loss


def test_round_trip_without_accuracy_float64_and_nonfinite(tmp_path):
    model = Quadratic()
    dummy = [(torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1))]
    result = compute_landscape(
        model, dummy, dims=1, num_points=5, loss_fn=quadratic_loss, span=(-1e200, 1e200)
    )
    assert result.accuracy is None and result.num_nonfinite > 0
    loaded = LandscapeResult.load(result.save(tmp_path / "q.npz"))
    assert loaded == result
    assert loaded.directions[0]["weight"].dtype == torch.float64


def test_file_is_readable_with_numpy_alone(tmp_path):
    result = compute_landscape(mlp(), vector_batches(), dims=2, num_points=3)
    with np.load(result.save(tmp_path / "r.npz"), allow_pickle=False) as data:
        meta = json.loads(str(data["metadata"]))
        assert data["loss"].shape == (3, 3)
        assert meta["seed"] == 0 and meta["normalization"] == "filter" and meta["num_samples"] == 13
        assert meta["ignore_bias_and_norm"] is True and meta["bn_mode"] == "eval"
        assert "torch" in meta["extra"]["versions"]


def test_equality_sees_differences_and_foreign_files_are_rejected(tmp_path):
    a = compute_landscape(mlp(), vector_batches(), dims=1, num_points=3, seed=0)
    b = compute_landscape(mlp(), vector_batches(), dims=1, num_points=3, seed=1)
    assert a != b
    np.savez(tmp_path / "other.npz", loss=np.zeros(3), metadata=np.array(json.dumps({"format": "x"})))
    with pytest.raises(ValueError, match="no lightning_landscape format name"):
        LandscapeResult.load(tmp_path / "other.npz")
