"""Sharpness measures against closed forms, invariances and the no-perturbation guarantee."""

import math
import random

import numpy as np
import pytest
import torch
from problems import GlobalRNG, assert_same_state, snapshot
from torch import nn

from lightning_landscape.core.curvature.eigenvalues import hessian_eigenvalues
from lightning_landscape.core.measures.registry import measure_defaults, measure_names
from lightning_landscape.core.measures.sharpness import sharpness

DUMMY = [(torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1))]


class DiagonalQuadratic(nn.Module):
    """f(x) = ½ Σ hᵢ (xᵢ − x0ᵢ)² + c with the parameter x starting at x0 (a minimum)."""

    def __init__(self, h, x0, c):
        super().__init__()
        self.x = nn.Parameter(torch.as_tensor(x0, dtype=torch.float64).clone())
        self.register_buffer("h", torch.as_tensor(h, dtype=torch.float64))
        self.register_buffer("x0", torch.as_tensor(x0, dtype=torch.float64))
        self.c = c

    def forward(self, _):
        return 0.5 * (self.h * (self.x - self.x0) ** 2).sum() + self.c


def quadratic_loss(model, batch):
    return model(batch[0])


def test_keskar_matches_the_box_corner_maximum_of_a_quadratic():
    g = torch.Generator().manual_seed(0)
    h = torch.rand(40, generator=g, dtype=torch.float64) * 5
    x0 = torch.randn(40, generator=g, dtype=torch.float64) * 3
    c, eps = 0.3, 1e-2
    model = DiagonalQuadratic(h, x0, c)
    result = sharpness(model, DUMMY, measure="keskar", epsilon=eps, loss_fn=quadratic_loss)
    exact = 100 * 0.5 * eps**2 * float((h * (x0.abs() + 1) ** 2).sum()) / (1 + c)
    assert result.value == pytest.approx(exact, rel=0.01)
    assert result.center_loss == pytest.approx(c)


def test_constant_loss_has_zero_sharpness():
    model = DiagonalQuadratic(torch.zeros(5), torch.ones(5), 2.0)
    for measure in ("keskar", "adaptive_worst", "average"):
        assert sharpness(model, DUMMY, measure=measure, loss_fn=quadratic_loss).value == 0.0


def _relu_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3)).double()


def _rescaled(net, c):
    out = _relu_net()
    out.load_state_dict(net.state_dict())
    with torch.no_grad():
        out[0].weight.mul_(c)
        out[0].bias.mul_(c)
        out[2].weight.div_(c)
    return out


def test_adaptive_sharpness_is_rescaling_invariant_while_the_top_eigenvalue_is_not():
    """Dinh et al.: θ1 → cθ1, θ2 → θ2/c leaves a ReLU net's function, and its loss, unchanged."""
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(64, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (64,), generator=g))]
    net = _relu_net()
    big = _rescaled(net, 10.0)
    x = data[0][0]
    torch.testing.assert_close(big(x), net(x))  # the same function
    for p in (2, math.inf):
        a = sharpness(net, data, measure="adaptive_worst", rho=0.1, p=p)
        b = sharpness(big, data, measure="adaptive_worst", rho=0.1, p=p)
        assert a.value > 0
        assert b.value == pytest.approx(a.value, rel=1e-4)
    fn_a = sharpness(net, data, measure="filter_normalized_eigenvalue", tol=1e-8, max_iter=200).value
    fn_b = sharpness(big, data, measure="filter_normalized_eigenvalue", tol=1e-8, max_iter=200).value
    assert fn_b == pytest.approx(fn_a, rel=1e-4)  # filter-normalized: invariant too
    top_a = float(hessian_eigenvalues(net, data, k=1, tol=1e-8, max_iter=200).eigenvalues[0])
    top_b = float(hessian_eigenvalues(big, data, k=1, tol=1e-8, max_iter=200).eigenvalues[0])
    assert max(top_a, top_b) / min(top_a, top_b) > 10  # the plain eigenvalue is fooled


class Bowl(nn.Module):
    """L(θ) = ½ Σᵢⱼ a (Wᵢⱼ − W0ᵢⱼ)² at its minimum W0 (loss 0); the bias is held fixed."""

    def __init__(self, a: float):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.weight = nn.Parameter(torch.randn(3, 4, generator=g, dtype=torch.float64))
        self.bias = nn.Parameter(torch.zeros(3, dtype=torch.float64))
        self.register_buffer("w0", self.weight.detach().clone())
        self.a = a

    def forward(self, _):
        return 0.5 * self.a * ((self.weight - self.w0) ** 2).sum() + 0.0 * self.bias.sum()


def test_basin_volume_matches_closed_form_radii_and_shrinks_with_curvature():
    from lightning_landscape.core.landscapes.directions import iter_random_directions
    from lightning_landscape.core.landscapes.normalization import normalize_directions

    def closed_form(model, tau, n_dirs, seed):
        reference = {n: p.detach() for n, p in model.named_parameters()}
        radii = []
        for raw in iter_random_directions(reference, n_dirs, seed):
            d = normalize_directions(raw, reference, "filter", ignore_bias_and_norm=True)
            radii.append(math.sqrt(2 * tau / (model.a * float((d["weight"] ** 2).sum()))))
        return torch.tensor(radii, dtype=torch.float64)

    flat, sharp = Bowl(1.0), Bowl(4.0)
    results = {}
    for model in (flat, sharp):
        result = sharpness(
            model,
            DUMMY,
            measure="basin_volume",
            loss_fn=quadratic_loss,
            num_probes=20,
            threshold=0.5,
            max_radius=3.0,
            num_bisect=40,
            seed=5,
        )
        expected = closed_form(model, 0.5, 20, seed=5)
        np.testing.assert_allclose(result.radii.numpy(), expected.numpy(), rtol=1e-6)
        n = 12  # the weight's coordinates; the bias is not perturbed
        assert result.extra["dimension"] == n and bool(result.crossed.all())
        exact = float(torch.logsumexp(n * expected.log(), 0) - math.log(20))
        assert result.value == pytest.approx(exact, rel=1e-6)
        results[model.a] = result.value
    assert results[4.0] == pytest.approx(results[1.0] - 12 * math.log(2), rel=1e-6)  # radii halve


def test_basin_volume_flags_directions_that_never_cross():
    result = sharpness(
        Bowl(1e-6),
        DUMMY,
        measure="basin_volume",
        loss_fn=quadratic_loss,
        threshold=1.0,
        num_probes=3,
        max_radius=0.5,
    )
    assert not bool(result.crossed.any()) and result.extra["num_not_crossed"] == 3
    assert torch.equal(result.radii, torch.full((3,), 0.5, dtype=torch.float64))


def test_a_basin_volume_with_uncrossed_directions_is_reported_as_a_lower_bound():
    """No direction reaches the threshold: the value (n log max_radius) bounds the volume from
    below; a warning says so, the measure reports how many never crossed, the figure marks it."""
    from lightning_landscape.plotting.curvature import plot_basin_radii

    options = dict(loss_fn=quadratic_loss, threshold=1.0, num_probes=4, max_radius=0.5, num_scan=3)
    with pytest.warns(RuntimeWarning, match="4 of 4 directions .* never reached .* a lower bound"):
        outcome = sharpness(Bowl(1e-6), DUMMY, measure="basin_volume", **options).scalars()
    assert outcome["basin_volume_not_crossed"] == 4.0
    assert outcome["basin_volume"] == pytest.approx(12 * math.log(0.5))
    with pytest.warns(RuntimeWarning, match="lower bound"):
        result = sharpness(Bowl(1e-6), DUMMY, measure="basin_volume", **options)
    title = plot_basin_radii(result).axes[0].get_title()
    assert "≥" in title and "4 never crossed: a lower bound" in title
    crossing = sharpness(
        Bowl(1.0), DUMMY, measure="basin_volume", **{**options, "max_radius": 50.0, "threshold": 0.5}
    )
    assert crossing.scalars()["basin_volume_not_crossed"] == 0.0


@pytest.mark.parametrize("measure", measure_names())
def test_every_measure_leaves_the_model_untouched_even_from_inference_mode(measure):
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 3))
    g = torch.Generator().manual_seed(2)
    data = [(torch.randn(32, 4, generator=g), torch.randint(0, 3, (32,), generator=g))]
    net.train()
    with torch.no_grad():
        net(data[0][0])
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    rng = GlobalRNG.capture()
    before = snapshot(net)
    quick = {"num_probes": 3, "num_ascent_steps": 3, "max_iter": 10}
    kwargs = {"num_samples": 3, **{k: v for k, v in quick.items() if k in measure_defaults(measure)}}
    plain = sharpness(net, data, measure=measure, **kwargs)
    with torch.inference_mode():
        inside = sharpness(net, [(x.clone(), y.clone()) for x, y in data], measure=measure, **kwargs)
    assert_same_state(before, net)
    assert all(p.grad is None for p in net.parameters())
    assert GlobalRNG.capture().equals(rng)
    assert inside.value == pytest.approx(plain.value, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"measure": "fuzzy"}, "measure"),
        ({"epsilon": 0}, "epsilon"),
        ({"p": 3, "measure": "adaptive_worst"}, "p"),
        ({"rho": -1.0, "measure": "average"}, "rho"),
        ({"threshold": float("nan"), "measure": "basin_volume"}, "threshold"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        sharpness(
            _relu_net(),
            [(torch.zeros(2, 4, dtype=torch.float64), torch.zeros(2, dtype=torch.long))],
            **kwargs,
        )


def test_an_option_the_measure_does_not_take_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"measure 'keskar' has unknown option\(s\) \['rho'\]; allowed: \["):
        sharpness(
            _relu_net(), [(torch.zeros(2, 4, dtype=torch.float64), torch.zeros(2, dtype=torch.long))], rho=0.1
        )
