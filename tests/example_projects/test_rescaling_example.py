"""Li et al.'s rescaling invariance (issue 15, item 4): the filter-normalized curve of a ReLU MLP
does not change when a layer is scaled by α and the next by 1/α; the unnormalized curve and the
scale-dependent sharpness measures do."""

import importlib.util
import pathlib

import pytest
import torch

pytest.importorskip("sklearn")

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "example_projects" / "rescaling" / "run.py"


def _load():
    spec = importlib.util.spec_from_file_location("rescaling_run", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_filter_normalization_is_invariant_to_rescaling_and_the_rest_is_not(tmp_path):
    run = _load()
    results = run.measure(samples=256, num_points=5)
    reference = results[1.0]
    for alpha in (0.1, 10.0):
        r = results[alpha]
        torch.testing.assert_close(r["filter"].loss, reference["filter"].loss, rtol=0, atol=5e-5)  # 4 places
        assert r["none"].center_loss == pytest.approx(
            reference["none"].center_loss, rel=1e-5
        )  # same function
        moved = (r["none"].loss - reference["none"].loss).abs().max()
        assert float(moved) > 0.1 * float(reference["none"].loss.max())  # a different curve
        assert r["top_eigenvalue"] > 10 * reference["top_eigenvalue"]  # an order of magnitude sharper
    run.main(["--out", str(tmp_path), "--samples", "128"])
    assert (tmp_path / "rescaling.png").stat().st_size > 10_000
    assert "| 10 |" in (tmp_path / "results.md").read_text()
