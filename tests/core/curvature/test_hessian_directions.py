"""Planes along Hessian eigenvectors (issue 19, item 2): on a quadratic loss the landscape along an
eigenvector is ½ λ t²; on a network the curvature of the 1D curve at 0 is the eigenvalue."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lightning_landscape as ll


class Quadratic(nn.Module):
    """L(θ) = ½ θᵀ A θ at θ = 0: the Hessian is A."""

    def __init__(self, a: torch.Tensor) -> None:
        super().__init__()
        self.a = a
        self.theta = nn.Parameter(torch.zeros(a.shape[0], dtype=a.dtype))

    def forward(self, x):
        return x


def _quadratic_loss(model, batch):
    return 0.5 * model.theta @ model.a @ model.theta


def _problem():
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
    eigenvalues = torch.tensor([5.0, 3.0, 1.0, 0.5, -0.7, -2.0], dtype=torch.float64)
    return Quadratic(q @ torch.diag(eigenvalues) @ q.T), eigenvalues, [(torch.zeros(2, 1), torch.zeros(2))]


@pytest.mark.parametrize(("kind", "expected"), [("hessian", (5.0, 3.0)), ("hessian_extremes", (5.0, -2.0))])
def test_on_a_quadratic_the_plane_is_half_lambda_t_squared_along_each_axis(kind, expected):
    model, _, batches = _problem()
    result = ll.compute_landscape(
        model, batches, dims=2, num_points=5, directions=kind, loss_fn=_quadratic_loss, span=(-2.0, 2.0)
    )
    t = result.coords[0]
    lam1, lam2 = expected
    plane = 0.5 * (lam1 * t[:, None] ** 2 + lam2 * t[None, :] ** 2)
    torch.testing.assert_close(result.loss, plane, rtol=1e-8, atol=1e-10)
    assert result.normalization is None and result.extra["directions"] == kind
    assert result.extra["hessian_eigenvalues"] == pytest.approx(list(expected), rel=1e-8)
    for d in result.directions:  # unit vectors, as Lanczos gives them
        assert float(d["theta"].norm()) == pytest.approx(1.0, rel=1e-10)
    assert abs(float(result.directions[0]["theta"] @ result.directions[1]["theta"])) < 1e-10


def test_on_a_network_the_curve_along_the_top_eigenvector_bends_by_its_eigenvalue():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 12), nn.Tanh(), nn.Linear(12, 3)).double()
    x = torch.randn(64, 5, dtype=torch.float64)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(200):  # near a minimum, where the top eigenvalue stands out
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    model.zero_grad(set_to_none=True)
    h = 1e-3
    curve = ll.compute_landscape(model, [(x, y)], dims=1, num_points=3, span=(-h, h), directions="hessian")
    second_derivative = float(curve.loss[0] - 2 * curve.loss[1] + curve.loss[2]) / h**2
    top = curve.extra["hessian_eigenvalues"][0]
    assert top == pytest.approx(float(ll.hessian_eigenvalues(model, [(x, y)]).eigenvalues[0]), rel=1e-6)
    assert second_derivative == pytest.approx(top, rel=0.01)


def test_hessian_directions_are_refused_where_they_cannot_be():
    model, _, batches = _problem()
    with pytest.raises(ValueError, match="`directions='hessian_extremes'` spans two axes"):
        ll.compute_landscape(model, batches, dims=1, directions="hessian_extremes", loss_fn=_quadratic_loss)
    with pytest.raises(ValueError, match="`directions` must be one of"):
        ll.compute_landscape(model, batches, dims=2, directions="pca", loss_fn=_quadratic_loss)
