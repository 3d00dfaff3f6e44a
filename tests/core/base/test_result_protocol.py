"""One result protocol: every public computation's result saves, loads back equal, and says its
numbers with ``scalars()``; every result type is exported."""

import dataclasses

import pytest
import torch
from problems import mlp, vector_batches
from torch import nn

import lightning_landscape as ll
from lightning_landscape.core.base.results import ResultFileError
from lightning_landscape.core.measures.noise import gradient_noise_scale


def _states(model):
    return [{n: p.detach() + 0.01 * i for n, p in model.named_parameters()} for i in range(3)]


RESULTS = {
    "Blockwise": lambda m, b: ll.blockwise(
        ll.hessian_trace, m, b, blocks="module", method="hutchinson", num_probes=2
    ),
    "PerBatchEigenvalues": lambda m, b: ll.hessian_eigenvalues_per_batch(m, b, max_iter=6),
    "ConnectivityResult": lambda m, b: ll.connect(m, b, m, _states(m)[1], steps=3, num_points=3),
    "BarrierMatrix": lambda m, b: ll.barrier_matrix(m, b, _states(m), num_points=3),
    "Evaluation": lambda m, b: ll.evaluate(m, b),
    "EigenvalueResult": lambda m, b: ll.hessian_eigenvalues(m, b, k=2, return_eigenvectors=True),
    "TraceEstimate": lambda m, b: ll.hessian_trace(m, b, method="hutch++", num_probes=6),
    "SpectralDensity": lambda m, b: ll.hessian_density(m, b, num_probes=2, num_steps=5),
    "EigenvalueRatioMap": lambda m, b: ll.eigenvalue_ratio_map(m, b, num_points=2, max_iter=5),
    "SharpnessResult": lambda m, b: ll.sharpness(m, b, measure="average", num_probes=3),
    "BasinVolumeResult": lambda m, b: ll.basin_volume(m, b, num_probes=3, num_scan=3),
    "EvidenceResult": lambda m, b: ll.log_evidence(m, b, prior_precision=1.0, num_probes=2, num_steps=3),
    "GradientNoiseScale": lambda m, b: gradient_noise_scale(m, b),
    "PCAResult": lambda m, b: ll.pca_directions(_states(m), m.state_dict()),
    "VolumeResult": lambda m, b: ll.function_volume(
        lambda: nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)),
        b[0][0][:4],
        target=torch.tensor([0, 1, 1, 0]),
        num_init_samples=8,
        output_fn=lambda out: out[:, 1] - out[:, 0],
    ),
}


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return (
            isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and torch.equal(a.nan_to_num(7.5), b.nan_to_num(7.5))
        )
    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and all(
            _same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b or (a != a and b != b)  # NaN equals NaN


@pytest.mark.parametrize("name", sorted(RESULTS))
def test_a_result_saves_loads_back_equal_and_says_its_numbers(name, tmp_path):
    result = RESULTS[name](mlp(), vector_batches())
    assert type(result).__name__ == name
    loaded = type(result).load(result.save(tmp_path / f"{name}.npz"))
    assert _same(result, loaded), name
    scalars = result.scalars()
    assert scalars and all(isinstance(v, float) for v in scalars.values())
    assert scalars == loaded.scalars() or all(_same(scalars[k], loaded.scalars()[k]) for k in scalars)


def test_a_file_of_another_result_type_is_refused(tmp_path):
    path = RESULTS["TraceEstimate"](mlp(), vector_batches()).save(tmp_path / "trace.npz")
    with pytest.raises(ResultFileError, match="holds a 'lightning_landscape.TraceEstimate'"):
        ll.EigenvalueResult.load(path)


def test_the_landscape_trajectory_and_sharpness_files_say_their_numbers_too():
    landscape = ll.compute_landscape(mlp(), vector_batches(), num_points=3)
    assert set(landscape.scalars()) == {"center_loss", "max_loss_rise", "num_nonfinite", "center_accuracy"}
    record = ll.SharpnessRecord({"keskar": 0.5, "trace": 2.0}, {}, {})
    assert record.scalars() == {"keskar": 0.5, "trace": 2.0}


def test_every_result_type_is_exported():
    for name in [*RESULTS, "LandscapeResult", "SharpnessRecord", "TrajectoryResult"]:
        assert name in ll.__all__ and hasattr(ll, name), name
