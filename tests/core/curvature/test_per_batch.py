"""The distribution of per-batch curvature (issue 19, item 4): each value is the full-data routine run on
that one batch."""

from __future__ import annotations

import pytest
import torch
from problems import mlp, vector_batches

import lightning_landscape as ll
from lightning_landscape.core.base.distributed import sharded
from lightning_landscape.core.curvature.eigenvalues import PerBatchEigenvalues


def _batches():
    data = vector_batches()
    x = torch.cat([b[0] for b in data])
    y = torch.cat([b[1] for b in data])
    return [(x[i : i + 7], y[i : i + 7]) for i in range(0, x.shape[0], 7)]  # the last batch is smaller


def test_each_batch_value_is_the_full_data_routine_on_that_batch(tmp_path):
    model, batches = mlp(), _batches()
    result = ll.hessian_eigenvalues_per_batch(model, batches, k=2, which="both", max_iter=30)
    assert isinstance(result, PerBatchEigenvalues)
    assert result.eigenvalues.shape == (len(batches), 4)
    assert result.batch_sizes.tolist() == [b[0].shape[0] for b in batches]
    for row, batch in zip(result.eigenvalues, batches):
        alone = ll.hessian_eigenvalues(model, [batch], k=2, which="both", max_iter=30).eigenvalues
        assert torch.equal(row, alone)
    whole = ll.hessian_eigenvalues(model, batches, k=1).eigenvalues[0]
    assert not torch.allclose(
        result.eigenvalues[:, 0], whole.expand(len(batches))
    )  # a distribution, not one value
    scalars = result.scalars()
    assert scalars["num_batches"] == len(batches)
    assert scalars["min"] <= scalars["median"] <= scalars["max"]
    loaded = PerBatchEigenvalues.load(result.save(tmp_path / "per_batch.npz"))
    assert torch.equal(loaded.eigenvalues, result.eigenvalues) and loaded.scalars() == scalars


def test_per_batch_refuses_what_it_cannot_give():
    model, batches = mlp(), _batches()
    with pytest.raises(TypeError, match="unexpected keyword argument 'return_eigenvectors'"):
        ll.hessian_eigenvalues_per_batch(model, batches, return_eigenvectors=True)  # eigenvalues only
    with pytest.raises(ValueError, match="`max_iter` \\(1\\) must be at least"):
        ll.hessian_eigenvalues_per_batch(model, batches, k=2, max_iter=1)
    with sharded(lambda t: t), pytest.raises(ValueError, match="call it outside `sharded"):
        ll.hessian_eigenvalues_per_batch(model, batches)
