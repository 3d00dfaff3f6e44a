"""Figures are drawn from results, masking diverged points."""

import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from lightning_landscape import LandscapeResult
from lightning_landscape.plotting import (
    landscape_figures,
    plot_landscape_1d,
    plot_landscape_contour,
    plot_landscape_surface,
)


def _result(dims: int, loss: torch.Tensor, accuracy=None) -> LandscapeResult:
    coords = tuple(torch.linspace(-1, 1, loss.shape[0], dtype=torch.float64) for _ in range(dims))
    return LandscapeResult(
        coords=coords,
        loss=loss,
        accuracy=accuracy,
        directions=tuple({} for _ in range(dims)),
        seed=0,
        normalization="filter",
        ignore_bias_and_norm=True,
        bn_mode="eval",
        num_samples=1,
        epoch=2,
    )


def _bowl(n=9):
    c = torch.linspace(-1, 1, n, dtype=torch.float64)
    return c[:, None] ** 2 + 2 * c[None, :] ** 2 + 0.1


def test_figures_of_a_2d_result_with_diverged_points():
    loss = _bowl()
    loss[0, 0] = math.inf
    loss[-1, 3] = math.nan
    figures = landscape_figures(_result(2, loss))
    assert set(figures) == {"contour", "contour_filled", "surface_3d"}
    for fig in figures.values():
        assert isinstance(fig, Figure)
        fig.canvas.draw()  # renders without error
    assert "2 diverged point(s) masked" in figures["contour"].axes[0].get_title()
    assert len(figures["contour_filled"].axes) == 2  # plot and colour bar


def test_1d_figure_has_loss_and_accuracy_axes_and_masks_nan():
    loss = torch.tensor([4.0, 1.0, 0.5, float("nan"), 3.0], dtype=torch.float64)
    acc = torch.tensor([0.2, 0.8, 0.9, 0.1, 0.3], dtype=torch.float64)
    fig = plot_landscape_1d(_result(1, loss, acc))
    assert len(fig.axes) == 2
    drawn = fig.axes[0].lines[0].get_ydata()
    assert np.ma.is_masked(drawn) and np.ma.count_masked(drawn) == 1
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), acc.numpy() * 100)


def test_log_scale_and_all_diverged():
    fig = plot_landscape_contour(_result(2, _bowl()), log_scale=True)
    assert fig.axes[0].get_title().startswith("contours")
    everything = torch.full((5, 5), float("nan"), dtype=torch.float64)
    for fig in landscape_figures(_result(2, everything)).values():
        fig.canvas.draw()
        assert any("diverged" in t.get_text() for t in fig.axes[0].texts)


def test_wrong_dimensionality_is_an_error():
    with pytest.raises(ValueError, match="1D"):
        plot_landscape_1d(_result(2, _bowl()))
    with pytest.raises(ValueError, match="2D"):
        plot_landscape_surface(_result(1, torch.ones(3, dtype=torch.float64)))


def test_decision_boundary_of_the_swiss_roll_leaves_the_model_alone():
    from problems import assert_same_state, snapshot

    from lightning_landscape.data import SwissRollDataModule
    from lightning_landscape.plotting import plot_decision_boundary

    data = SwissRollDataModule(num_train=60, num_test=40)
    data.setup()
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(), torch.nn.Linear(16, 2)
    )
    before = snapshot(model)
    fig = plot_decision_boundary(model, data, resolution=30)
    assert_same_state(before, model)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "test"]
    assert len(ax.collections[-1].get_offsets()) == 40 and len(ax.collections[-2].get_offsets()) == 60
    fig.canvas.draw()
