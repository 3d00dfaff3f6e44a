"""Result files: one clear error of ours for every unreadable file; newer fields kept, not fatal."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from problems import mlp, vector_batches

from lightning_landscape import LandscapeResult, ResultFileError, TrajectoryResult, compute_landscape


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("results") / "landscape.npz"
    compute_landscape(mlp(), vector_batches(), dims=2, num_points=3).save(path)
    return path


def _rewrite(saved, tmp_path, change):
    arrays = dict(np.load(saved, allow_pickle=False))
    meta = json.loads(str(arrays["metadata"]))
    change(arrays, meta)
    arrays["metadata"] = np.array(json.dumps(meta))
    path = tmp_path / "changed.npz"
    np.savez(path, **arrays)
    return path


def test_a_truncated_file_is_refused_clearly(saved, tmp_path):
    path = tmp_path / "truncated.npz"
    path.write_bytes(saved.read_bytes()[:200])
    with pytest.raises(ResultFileError, match="not a readable .npz archive"):
        LandscapeResult.load(path)


def test_another_programs_npz_is_refused_clearly(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.zeros(3))
    with pytest.raises(ResultFileError, match="no lightning_landscape metadata"):
        LandscapeResult.load(path)
    with pytest.raises(ResultFileError, match="no lightning_landscape metadata|lacks"):
        TrajectoryResult.load(path)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda a, m: m.pop("num_samples"), r"lacks the field\(s\) \['num_samples'\]"),
        (lambda a, m: m.update(format="lightning_landscape.LandscapeResult/99"), "format version '99'"),
        (
            lambda a, m: m.update(format="lightning_landscape.SharpnessResult/1"),
            "not a 'lightning_landscape.LandscapeResult'",
        ),
        (lambda a, m: a.pop("coords/1"), r"lacks the array 'coords/1'"),
        (lambda a, m: a.update(loss=np.zeros((2, 2))), r"does not fit the coordinates \(3, 3\)"),
    ],
)
def test_broken_files_are_refused_naming_what_is_wrong(saved, tmp_path, change, match):
    with pytest.raises(ResultFileError, match=match):
        LandscapeResult.load(_rewrite(saved, tmp_path, change))


def test_a_newer_writers_extra_field_is_kept_not_fatal(saved, tmp_path):
    loaded = LandscapeResult.load(_rewrite(saved, tmp_path, lambda a, m: m.update(curvature_hint=3.5)))
    assert loaded.extra["unknown_fields"] == {"curvature_hint": 3.5}
    torch.testing.assert_close(loaded.loss, LandscapeResult.load(saved).loss)
