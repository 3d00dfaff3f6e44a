"""LossLandscapeMonitor(directions="hessian"...) in a real Trainer run (issue 19, item 2)."""

import pytest
from problems import assert_same_training_end, fit_classifier, training_end

from lightning_landscape import LandscapeResult, LossLandscapeMonitor

SMALL = dict(num_points=5, num_samples=48, eval_batch_size=16)


def test_a_monitor_draws_planes_along_hessian_eigenvectors_and_leaves_training_as_it_was(tmp_path):
    _, plain = fit_classifier(tmp_path / "plain", [], seed=123)
    monitor = LossLandscapeMonitor(every_n_epochs=1, dims=2, directions="hessian_extremes", **SMALL)
    _, watched = fit_classifier(tmp_path / "watched", [monitor], seed=123)
    assert_same_training_end(training_end(plain), training_end(watched))
    assert len(monitor.saved_files) == 3
    result = LandscapeResult.load(monitor.saved_files[-1])
    top, bottom = result.extra["hessian_eigenvalues"]
    assert result.extra["directions"] == "hessian_extremes" and top > bottom
    assert result.normalization is None
    assert "directions" in monitor.state_key


def test_hessian_extremes_need_two_axes():
    with pytest.raises(ValueError, match="`directions='hessian_extremes'` spans two axes"):
        LossLandscapeMonitor(dims=1, directions="hessian_extremes")
    with pytest.raises(ValueError, match="`directions` must be one of"):
        LossLandscapeMonitor(directions="eigen")
