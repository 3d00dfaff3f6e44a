"""Trajectory and interpolation figures."""

import torch
from problems import mlp, vector_batches

from lightning_landscape import interpolate, trajectory_landscape
from lightning_landscape.plotting import plot_interpolation, plot_trajectory


def _path(model, steps=4):
    snapshots = []
    for i in range(steps):
        snapshots.append({n: p.detach().clone() for n, p in model.named_parameters()})
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p, generator=None) * (i + 1))
    snapshots.append({n: p.detach().clone() for n, p in model.named_parameters()})
    return snapshots


def test_trajectory_figure_labels_axes_with_explained_variance_and_marks_ends():
    torch.manual_seed(0)
    model = mlp()
    result = trajectory_landscape(model, vector_batches(), _path(model), num_points=7)
    fig = plot_trajectory(result)
    ax = fig.axes[0]
    ratio = result.pca.explained_variance_ratio * 100
    assert ax.get_xlabel() == f"PC1 ({ratio[0]:.1f}%)" and ax.get_ylabel() == f"PC2 ({ratio[1]:.1f}%)"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["start", "end (θ_final)"]
    assert len(ax.texts) >= len(result.epochs)  # every snapshot annotated with its epoch
    fig.canvas.draw()


def test_interpolation_figure_solid_train_dashed_validation_twin_axes():
    a, b = mlp(0), mlp(1)
    train = interpolate(a, vector_batches(seed=1), a, b, num_points=7)
    val = interpolate(a, vector_batches(seed=2), a, b, num_points=7)
    fig = plot_interpolation(train, val)
    loss_ax, acc_ax = fig.axes
    assert [line.get_linestyle() for line in loss_ax.lines if line.get_label().endswith("loss")] == [
        "-",
        "--",
    ]
    assert [line.get_linestyle() for line in acc_ax.lines] == ["-", "--"]
    assert acc_ax.get_ylabel() == "accuracy (%)"
    fig.canvas.draw()
