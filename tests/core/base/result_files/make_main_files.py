"""Writes the honest result files kept here, one per result type: every later version must still
load them. ``main-d4892b6/``: run on main at d4892b6, before issue 25 changed how files are read;
``main-a36e09c/``: run on main at a36e09c, before issue 28 moved the core into its rooms.

    python tests/core/base/result_files/make_main_files.py tests/core/base/result_files/main-<commit>
"""

import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", ".."))
from problems import mlp, vector_batches  # noqa: E402

import lightning_landscape as ll  # noqa: E402
from lightning_landscape.core.measures.noise import gradient_noise_scale  # noqa: E402


def _states(model):
    return [{n: p.detach() + 0.01 * i for n, p in model.named_parameters()} for i in range(3)]


def results(m, b):
    partial = []
    ll.compute_landscape_in_chunks(m, b, num_points=3, chunk_points=4, on_chunk=partial.append)
    return {
        "Blockwise": ll.blockwise(ll.hessian_eigenvalues, m, b, blocks="module", k=1, max_iter=6),
        "PerBatchEigenvalues": ll.hessian_eigenvalues_per_batch(m, b, max_iter=6),
        "ConnectivityResult": ll.connect(m, b, m.state_dict(), _states(m)[1], steps=3, num_points=3),
        "BarrierMatrix": ll.barrier_matrix(m, b, _states(m), num_points=3),
        "Evaluation": ll.evaluate(m, b),
        "EigenvalueResult": ll.hessian_eigenvalues(m, b, k=2, return_eigenvectors=True),
        "TraceEstimate": ll.hessian_trace(m, b, method="hutch++", num_probes=6),
        "SpectralDensity": ll.hessian_density(m, b, num_probes=2, num_steps=5),
        "EigenvalueRatioMap": ll.eigenvalue_ratio_map(m, b, num_points=2, max_iter=5),
        "SharpnessResult": ll.sharpness(m, b, measure="average", num_probes=3),
        "BasinVolumeResult": ll.basin_volume(m, b, num_probes=3, num_scan=3),
        "EvidenceResult": ll.log_evidence(m, b, prior_precision=1.0, num_probes=2, num_steps=3),
        "GradientNoiseScale": gradient_noise_scale(m, b),
        "PCAResult": ll.pca_directions(_states(m), m.state_dict()),
        "VolumeResult": ll.function_volume(
            lambda: nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)),
            b[0][0][:4],
            target=torch.tensor([0, 1, 1, 0]),
            num_init_samples=8,
            output_fn=lambda out: out[:, 1] - out[:, 0],
        ),
        "LandscapeResult": ll.compute_landscape(m, b, num_points=3, epoch=1, global_step=10),
        "LandscapeResult-1d": ll.compute_landscape(m, b, dims=1, num_points=5),
        "LandscapeResult-partial": partial[0],
        "SharpnessRecord": ll.SharpnessRecord(
            {"keskar": 0.5, "trace": 2.0},
            {"density/nodes": torch.rand(2, 3, dtype=torch.float64), "basin/crossed": torch.tensor([True])},
            {"seed": 0, "measures": ["keskar"]},
            epoch=2,
            global_step=20,
        ),
        "TrajectoryResult": ll.trajectory_landscape(m, b, _states(m), num_points=3),
    }


if __name__ == "__main__":
    folder = sys.argv[1]
    os.makedirs(folder, exist_ok=True)
    for name, result in results(mlp(), vector_batches()).items():
        print(result.save(os.path.join(folder, f"{name}.npz")))
