"""Curves between minima (issue 19, item 3): on a two-dimensional loss with two minima joined by a
curved valley the learned curve keeps to the valley while the straight line crosses the ridge. (Two
digits CNNs trained from different seeds: tests/example_projects/test_mode_connectivity_example.py.)"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import lightning_landscape as ll
from lightning_landscape.core.landscapes.connectivity import (
    BarrierMatrix,
    ConnectivityResult,
    barrier,
    barrier_matrix,
    connect,
    curve_coefficients,
)

A, B = 5.0, 0.5  # L(x, y) = A (x² + y² − 1)² + B y²: minima (±1, 0), a valley along the unit circle
PASS = A * (B / (2 * A)) ** 2 + B * (1 - B / (2 * A))  # the lowest possible maximum of any path


class Point(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(2, dtype=torch.float64))

    def forward(self, x):
        return x


def valley(model, batch):
    x, y = model.theta
    return A * (x * x + y * y - 1) ** 2 + B * y * y


ENDS = (
    {"theta": torch.tensor([-1.0, 0.0], dtype=torch.float64)},
    {"theta": torch.tensor([1.0, 0.0], dtype=torch.float64)},
)
NO_DATA = [(torch.zeros(1, 1), torch.zeros(1))]


def test_coefficients_are_bernstein_and_piecewise_linear_weights():
    for t in (0.0, 0.3, 1.0):
        assert sum(curve_coefficients("bezier", 3, t)) == pytest.approx(1.0)
        assert sum(curve_coefficients("polychain", 3, t)) == pytest.approx(1.0)
    assert curve_coefficients("bezier", 2, 0.0) == [1.0, 0.0, 0.0, 0.0]
    assert curve_coefficients("polychain", 2, 1.0) == [0.0, 0.0, 0.0, 1.0]
    assert curve_coefficients("polychain", 3, 0.25) == [0.0, 1.0, 0.0, 0.0, 0.0]  # through the first bend


def test_the_learned_curve_keeps_to_the_valley_while_the_straight_line_crosses_the_ridge():
    result = connect(
        Point(),
        NO_DATA,
        *ENDS,
        curve="bezier",
        num_bends=2,
        steps=1000,
        lr=0.005,
        num_points=101,
        loss_fn=valley,
    )
    assert float(result.linear_loss.max()) == pytest.approx(A)  # the origin: the ridge
    assert PASS <= float(result.curve_loss.max()) <= 1.05 * PASS
    assert result.curve_barrier < 0.11 * result.linear_barrier
    assert result.curve_loss[0] == 0.0 and result.curve_loss[-1] == 0.0  # the ends are the minima


def test_barrier_is_the_rise_above_the_line_between_the_end_losses():
    t = torch.linspace(0, 1, 5, dtype=torch.float64)
    assert barrier(t, torch.tensor([1.0, 1.25, 1.5, 1.75, 2.0], dtype=torch.float64)) == pytest.approx(0.0)
    assert barrier(t, torch.tensor([1.0, 2.0, 4.0, 2.0, 1.0], dtype=torch.float64)) == pytest.approx(3.0)


def _bn_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def test_batchnorm_statistics_are_re_estimated_at_every_point():
    a, b = _bn_net(0), _bn_net(1)
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(40, 4, generator=g), torch.randint(0, 3, (40,), generator=g)
    data = [(x[:20], y[:20]), (x[20:], y[20:])]
    plain = connect(a, data, a.state_dict(), b.state_dict(), steps=2, num_points=3, reestimate_bn=False)
    fresh = connect(a, data, a.state_dict(), b.state_dict(), steps=2, num_points=3)
    # at t = 0: state_a with its own statistics, or with statistics recomputed over the data
    assert float(plain.linear_loss[0]) == pytest.approx(ll.evaluate(a, data).loss, rel=1e-6)
    recomputed = copy.deepcopy(a)
    recomputed[1].reset_running_stats()
    recomputed[1].momentum = None
    recomputed.train()
    with torch.no_grad():
        recomputed(x[:20]), recomputed(x[20:])
    assert float(fresh.linear_loss[0]) == pytest.approx(ll.evaluate(recomputed, data).loss, rel=1e-6)
    assert float(fresh.linear_loss[0]) != pytest.approx(float(plain.linear_loss[0]), rel=1e-6)


def test_results_save_and_the_barrier_matrix_is_symmetric(tmp_path):
    nets = [_bn_net(s) for s in range(3)]
    g = torch.Generator().manual_seed(3)
    data = [(torch.randn(32, 4, generator=g), torch.randint(0, 3, (32,), generator=g))]
    result = connect(nets[0], data, nets[0], nets[1], steps=5, num_points=5)
    loaded = ConnectivityResult.load(result.save(tmp_path / "connect.npz"))
    assert torch.equal(loaded.curve_loss, result.curve_loss) and loaded.scalars() == result.scalars()
    assert sorted(loaded.bends[0]) == sorted(n for n, _ in nets[0].named_parameters())
    matrix = barrier_matrix(nets[0], data, nets, num_points=5)
    assert torch.equal(matrix.barriers, matrix.barriers.T) and bool((matrix.barriers.diagonal() == 0).all())
    assert matrix.barriers[0, 1] == pytest.approx(result.linear_barrier, rel=1e-9)  # the same straight path
    assert BarrierMatrix.load(matrix.save(tmp_path / "matrix.npz")).barriers.equal(matrix.barriers)


def test_bad_arguments_are_refused_by_name():
    net = _bn_net(0)
    with pytest.raises(ValueError, match="`curve` must be one of"):
        connect(net, NO_DATA, net, net, curve="spline")
    with pytest.raises(ValueError, match="`num_bends` must be an integer >= 1"):
        connect(net, NO_DATA, net, net, num_bends=0)
    with pytest.raises(ValueError, match="`states` must be a sequence of at least two states"):
        barrier_matrix(net, NO_DATA, [net])
    from lightning_landscape.core.base.batches import StreamedBatches

    with pytest.raises(
        ValueError, match="`batches`: connect trains the bends step by step on cached batches"
    ):
        connect(
            net,
            StreamedBatches([(torch.zeros(2, 4), torch.zeros(2).long())], 2, torch.device("cpu")),
            net,
            net,
        )
    with pytest.raises(ValueError, match="`state_b` lacks"):
        connect(net, NO_DATA, net, {"0.weight": torch.zeros(8, 4)})


def test_a_step_size_that_diverges_is_refused_naming_lr_and_the_model_is_untouched():
    from problems import assert_same_state, mlp, snapshot, vector_batches

    model, other = mlp(), mlp(seed=1)
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"`lr` 1e\+08: the bends' training diverged .* lower `lr`"):
        connect(
            model, vector_batches(), model.state_dict(), other.state_dict(), steps=20, lr=1e8, num_points=3
        )
    assert_same_state(before, model)
    with pytest.raises(ValueError, match="`lr` must be a finite number > 0 and <= 3.40282e"):
        connect(model, vector_batches(), model.state_dict(), other.state_dict(), steps=2, lr=1e39)


def test_a_path_from_a_diverged_solution_is_recorded_as_nan_not_refused():
    from problems import mlp, vector_batches

    model = mlp()
    diverged = {n: torch.full_like(t, float("nan")) for n, t in model.state_dict().items()}
    result = connect(model, vector_batches(), diverged, model.state_dict(), steps=3, num_points=3)
    assert torch.isnan(result.train_loss).all() and torch.isnan(result.curve_loss[0])
