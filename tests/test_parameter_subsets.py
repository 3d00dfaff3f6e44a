"""Parameter subsets everywhere (issue 19, item 5): a LoRA-style low-rank adapter on a frozen base;
with ``params="*.lora_*"`` directions, eigenvalues and snapshots cover only the adapter."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from problems import fit_classifier
from torch import nn

import lightning_landscape as ll
from lightning_landscape import LossLandscapeMonitor, SharpnessMonitor, TrajectoryMonitor

ADAPTER = "*.lora_*"


class LoRALinear(nn.Module):
    """A frozen ``base`` plus a trainable rank-``r`` update ``lora_b @ lora_a``."""

    def __init__(self, fan_in: int, fan_out: int, rank: int = 2) -> None:
        super().__init__()
        self.base = nn.Linear(fan_in, fan_out).requires_grad_(False)
        self.lora_a = nn.Parameter(torch.randn(rank, fan_in) * 0.3)
        self.lora_b = nn.Parameter(torch.randn(fan_out, rank) * 0.3)

    def forward(self, x):
        return self.base(x) + x @ self.lora_a.T @ self.lora_b.T


def _net() -> nn.Module:
    torch.manual_seed(0)
    # the head is trainable too: the adapter is a real subset of the trainable parameters
    return nn.Sequential(nn.Flatten(), LoRALinear(16, 8), nn.Tanh(), nn.Linear(8, 5))


def _batches():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(24, 1, 4, 4, generator=g)
    return [(x, torch.randint(0, 5, (24,), generator=g))]


LORA = ["1.lora_a", "1.lora_b"]


def test_a_landscape_over_the_adapter_moves_only_the_adapter():
    model, batches = _net(), _batches()
    result = ll.compute_landscape(model, batches, num_points=3, params=ADAPTER, normalization=None, seed=2)
    for direction in result.directions:
        moved = [n for n, t in direction.items() if bool(t.ne(0).any())]
        assert moved == LORA
    # the corner point, written by hand into the adapter alone
    corner = {n: p.detach().clone() for n, p in model.named_parameters()}
    for n in LORA:
        corner[n] = (
            corner[n]
            + result.coords[0][0] * result.directions[0][n]
            + result.coords[1][0] * result.directions[1][n]
        )
    x, y = batches[0]
    expected = nn.functional.cross_entropy(torch.func.functional_call(model, corner, (x,)), y)
    assert float(result.loss[0, 0]) == pytest.approx(float(expected), rel=1e-6)
    assert result.extra["params"] == [ADAPTER]


def test_the_curvature_over_the_adapter_is_the_dense_hessian_of_the_adapter():
    model, batches = _net(), _batches()
    x, y = batches[0]
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def loss(a, b):
        tensors = {**params, **buffers, "1.lora_a": a, "1.lora_b": b}
        return nn.functional.cross_entropy(torch.func.functional_call(model, tensors, (x,)), y)

    parts = torch.autograd.functional.hessian(loss, (params["1.lora_a"], params["1.lora_b"]))
    sizes = [params[n].numel() for n in LORA]
    dense = torch.cat(
        [torch.cat([parts[i][j].reshape(sizes[i], sizes[j]) for j in range(2)], 1) for i in range(2)], 0
    )
    exact = torch.linalg.eigvalsh(dense.double())
    top = ll.hessian_eigenvalues(model, batches, params=ADAPTER, k=1, which="both", tol=1e-8, max_iter=200)
    torch.testing.assert_close(top.eigenvalues, torch.stack([exact[-1], exact[0]]), rtol=1e-3, atol=1e-5)
    again = ll.hessian_eigenvalues(model, batches, params=LORA, k=1, which="both", tol=1e-8, max_iter=200)
    assert torch.equal(again.eigenvalues, top.eigenvalues)  # exact names are patterns too
    evidence = ll.log_evidence(model, batches, prior_precision=1.0, params=ADAPTER, method="exact")
    assert evidence.num_parameters == sum(sizes) and evidence.extra["parameters"] == LORA


def test_sharpness_over_the_adapter_perturbs_only_the_adapter():
    model, batches = _net(), _batches()
    adapter = ll.average_sharpness(model, batches, num_probes=4, params=ADAPTER)
    head = ll.average_sharpness(model, batches, num_probes=4, params="3.*")
    everything = ll.average_sharpness(model, batches, num_probes=4)
    assert len({adapter.value, head.value, everything.value}) == 3
    with pytest.raises(ValueError, match="`params` pattern 'encoder.\\*' matches no trainable parameter"):
        ll.keskar_sharpness(model, batches, params="encoder.*")
    with pytest.raises(ValueError, match="`params` pattern '1.base.\\*' matches no trainable parameter"):
        ll.compute_landscape(model, batches, params="1.base.*")  # the frozen base is not trainable


class LoRAModule(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = _net()

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD([p for p in self.parameters() if p.requires_grad], lr=0.1)


def test_monitors_snapshot_direct_and_measure_only_the_adapter(tmp_path):
    lora = ["net.1.lora_a", "net.1.lora_b"]
    common = {"num_samples": 32, "eval_batch_size": 16, "params": ADAPTER}
    landscape = LossLandscapeMonitor(every_n_epochs=1, num_points=3, **common)
    trajectory = TrajectoryMonitor(num_points=3, **common)
    sharpness = SharpnessMonitor(every_n_epochs=1, measures=["top_eigenvalue", "keskar"], **common)
    fit_classifier(tmp_path, [landscape, trajectory, sharpness], seed=0, model=LoRAModule())
    result = ll.LandscapeResult.load(landscape.saved_files[-1])
    assert [n for n, t in result.directions[0].items() if bool(t.ne(0).any())] == lora
    assert all(sorted(snapshot) == lora for snapshot in trajectory.snapshots)
    assert sorted(trajectory.last_result.pca.directions[0]) == lora
    assert sharpness.last_values["top_eigenvalue"] > 0
    with pytest.raises(ValueError, match="`params` pattern 'net.2.\\*' matches no trainable parameter"):
        fit_classifier(tmp_path / "bad", [LossLandscapeMonitor(params="net.2.*")], seed=0, model=LoRAModule())


def test_the_chunked_landscape_and_the_ratio_map_take_the_subset_too():
    model, batches = _net(), _batches()
    whole = ll.compute_landscape(model, batches, num_points=3, params=ADAPTER)
    chunked = ll.compute_landscape_in_chunks(model, batches, num_points=3, params=ADAPTER, chunk_points=4)
    torch.testing.assert_close(chunked.loss, whole.loss, rtol=1e-5, atol=0)
    assert chunked.extra["settings"]["params"] == [ADAPTER]
    ratio = ll.eigenvalue_ratio_map(model, batches, num_points=2, params="3.*", max_iter=8)
    head_only = ll.hessian_eigenvalues(model, batches, params="3.weight", which="both", max_iter=8)
    assert float(ratio.lambda_max[0, 0]) > 0 and head_only.eigenvalues.shape == (2,)
