"""pca_directions against planted planes and float64 numpy SVD; the snapshot buffer."""

import numpy as np
import pytest
import torch
from problems import mlp

from lightning_landscape import PCAResult, pca_directions
from lightning_landscape.core.landscapes.trajectory import SnapshotBuffer

SHAPES = {"a.weight": (6, 5), "a.bias": (6,), "b.weight": (3, 6)}


def _flat(state):
    return np.concatenate([state[n].double().numpy().ravel() for n in SHAPES])


def _unflat(vector):
    out, start = {}, 0
    for name, shape in SHAPES.items():
        size = int(np.prod(shape))
        out[name] = torch.from_numpy(vector[start : start + size].reshape(shape).copy())
        start += size
    return out


def _planted(n=12, noise=1e-7, seed=0):
    rng = np.random.default_rng(seed)
    size = sum(int(np.prod(s)) for s in SHAPES.values())
    basis, _ = np.linalg.qr(rng.standard_normal((size, 2)))  # orthonormal plane
    final = rng.standard_normal(size)
    coefficients = rng.standard_normal((n, 2)) * [3.0, 1.0]
    snapshots = [_unflat(final + basis @ c + noise * rng.standard_normal(size)).copy() for c in coefficients]
    return snapshots, _unflat(final), basis


def _principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    qa, _ = np.linalg.qr(a)
    qb, _ = np.linalg.qr(b)
    cosines = np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), -1, 1)
    return np.arccos(cosines)


def _directions_matrix(result: PCAResult) -> np.ndarray:
    return np.stack([_flat(d) for d in result.directions], axis=1)


@pytest.mark.parametrize("center", [True, False])
def test_recovers_a_planted_plane(center):
    snapshots, final, basis = _planted()
    result = pca_directions(snapshots, final, k=2, center=center)
    assert _principal_angles(_directions_matrix(result), basis).max() < 1e-3
    assert float(result.explained_variance_ratio.sum()) == pytest.approx(1.0, abs=1e-6)
    assert float(result.residuals.max()) < 1e-5
    v = _directions_matrix(result)
    np.testing.assert_allclose(v.T @ v, np.eye(2), atol=1e-5)  # unit norm overall, orthogonal


def test_matches_float64_numpy_svd_of_centred_differences():
    rng = np.random.default_rng(3)
    final = _unflat(rng.standard_normal(sum(int(np.prod(s)) for s in SHAPES.values())))
    snapshots = [_unflat(_flat(final) + rng.standard_normal(_flat(final).size) * (i + 1)) for i in range(9)]
    result = pca_directions(snapshots, final, k=2)
    d = np.stack([_flat(s) - _flat(final) for s in snapshots])
    dc = d - d.mean(axis=0)
    _, s, vt = np.linalg.svd(dc, full_matrices=False)
    np.testing.assert_allclose(result.singular_values.numpy(), s[:2], rtol=1e-4)
    np.testing.assert_allclose(result.explained_variance_ratio.numpy(), (s**2 / (s**2).sum())[:2], rtol=1e-4)
    v = _directions_matrix(result)
    signs = np.sign(np.sum(v * vt[:2].T, axis=0))  # SVD sign is arbitrary: align before comparing
    np.testing.assert_allclose(v * signs, vt[:2].T, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(result.coords.numpy() * signs, d @ vt[:2].T, rtol=1e-4, atol=1e-8)
    residuals = np.linalg.norm(d - (d @ vt[:2].T) @ vt[:2], axis=1)
    np.testing.assert_allclose(result.residuals.numpy(), residuals, rtol=1e-4)


def test_ignore_bias_and_norm_and_errors():
    snapshots, final, _ = _planted(n=5)
    result = pca_directions(snapshots, final, k=2, ignore_bias_and_norm=True)
    assert all(torch.count_nonzero(d["a.bias"]) == 0 for d in result.directions)
    with pytest.raises(ValueError, match="at least 3"):
        pca_directions(snapshots[:2], final, k=2)
    with pytest.raises(ValueError, match="lack"):
        pca_directions([{"a.weight": torch.zeros(6, 5)}] * 3, final, k=2)
    with pytest.raises(ValueError, match="`k`"):
        pca_directions(snapshots, final, k=0)


def test_snapshot_buffer_spills_past_its_budget_and_round_trips(tmp_path):
    model = mlp()
    states = []
    for i in range(4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * (i + 1))
        states.append({n: p.detach().clone() for n, p in model.named_parameters()})
    size = sum(p.numel() * 4 for p in model.parameters())
    roomy = SnapshotBuffer(budget_bytes=100 * size)
    tight = SnapshotBuffer(budget_bytes=size + size // 2, spill_dir=str(tmp_path / "spill"))
    for i, state in enumerate(states):
        roomy.append(state, epoch=i)
        tight.append(state, epoch=i)
    assert roomy.spilled_files == [] and len(tight.spilled_files) == 3
    assert tight.bytes_in_memory == size
    for i in range(4):
        for name in states[i]:
            assert torch.equal(tight[i][name], states[i][name]) and tight[i][name].device.type == "cpu"
    restored = SnapshotBuffer(budget_bytes=0)
    restored.load_state_dict(tight.state_dict())
    assert restored.epochs == [0, 1, 2, 3] and torch.equal(restored[3]["0.weight"], states[3]["0.weight"])
    with pytest.raises(RuntimeError, match="spill_dir"):
        SnapshotBuffer(budget_bytes=1).append(states[0], epoch=0)


def test_float16_snapshots_and_bad_dtype():
    buffer = SnapshotBuffer(budget_bytes=1 << 20, dtype=torch.float16)
    buffer.append({"w": torch.full((2,), 1 / 3)}, epoch=0)
    assert buffer[0]["w"].dtype == torch.float16
    with pytest.raises(ValueError, match="dtype"):
        SnapshotBuffer(budget_bytes=1, dtype=torch.int32)


def test_trajectory_landscape_leaves_model_flags_grads_and_rng_untouched():
    import random

    import torch.nn.functional as F
    from problems import GlobalRNG, assert_same_state, bn_cnn, image_batches, snapshot, warm_up_bn

    from lightning_landscape import trajectory_landscape

    model = bn_cnn()
    batches = image_batches()
    warm_up_bn(model, batches)
    path = []
    for i in range(4):
        path.append({n: p.detach().clone() for n, p in model.named_parameters()})
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 * (i + 1))
    model.train()
    model[1].eval()
    F.cross_entropy(model(batches[0][0]), batches[0][1]).backward()
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    rng = GlobalRNG.capture()
    before = snapshot(model)
    result = trajectory_landscape(model, batches, path, num_points=3)
    assert_same_state(before, model)
    assert GlobalRNG.capture().equals(rng)
    assert result.landscape.loss.shape == (3, 3) and result.epochs == (0, 1, 2, 3)
