"""Prior volume log P(f): EP against exact orthant probabilities and against counting random nets."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from problems import GlobalRNG, assert_same_state, snapshot
from scipy.stats import multivariate_normal
from torch import nn

from lightning_landscape import function_volume, hessian_eigenvalues
from lightning_landscape.core.measures.volume import orthant_log_probability


def two_layer(width: int = 64, inputs: int = 3) -> nn.Module:
    return nn.Sequential(
        nn.Linear(inputs, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1)
    )


def exact_orthant_log_probability(mean, cov, signs) -> float:
    s = np.diag(signs.numpy())
    # Pr[s·z > 0] = Pr[−s·z < 0] = CDF at 0 of N(−s·m, s K s)
    return float(
        np.log(
            multivariate_normal(mean=-(s @ mean.numpy()), cov=s @ cov.numpy() @ s).cdf(np.zeros(len(signs)))
        )
    )


def test_ep_matches_exact_orthant_probabilities():
    # the bivariate case in closed form: Pr[z₁ > 0, z₂ > 0] = 1/4 + asin(ρ)/(2π)
    cov = torch.tensor([[1.0, 0.6], [0.6, 1.0]], dtype=torch.float64)
    value, info = orthant_log_probability(torch.zeros(2, dtype=torch.float64), cov, torch.ones(2))
    assert info["converged"] and value == pytest.approx(
        math.log(0.25 + math.asin(0.6) / (2 * math.pi)), abs=0.02
    )
    g = torch.Generator().manual_seed(0)
    for n in (6, 10):
        a = torch.randn(n, n + 3, generator=g, dtype=torch.float64)
        cov = a @ a.T / (n + 3)
        mean = 0.3 * torch.randn(n, generator=g, dtype=torch.float64)
        signs = torch.randn(n, generator=g).sign().double()
        value, _ = orthant_log_probability(mean, cov, signs)
        assert value == pytest.approx(exact_orthant_log_probability(mean, cov, signs), abs=0.05)


@pytest.fixture(scope="module")
def six_inputs():
    return torch.randn(6, 3, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def counted(six_inputs):
    return function_volume(
        two_layer, six_inputs, target=torch.ones(6), num_init_samples=20000, method="monte_carlo", seed=1
    )


def test_monte_carlo_counts_every_network_once(counted):
    assert int(counted.counts.sum()) == 20000 and counted.patterns.shape[1] == 6
    row = (counted.patterns == counted.target).all(dim=1)
    assert counted.log_probability == pytest.approx(math.log(int(counted.counts[row].sum()) / 20000))
    assert 0 < counted.stderr < 0.1


def test_nngp_ep_agrees_with_monte_carlo_and_its_probabilities_sum_to_one(six_inputs, counted):
    ep = function_volume(two_layer, six_inputs, target=torch.ones(6), num_init_samples=20000, seed=1)
    signs = [torch.tensor(p, dtype=torch.float64) * 2 - 1 for p in itertools.product((0, 1), repeat=6)]
    ep_values = {tuple((s > 0).tolist()): orthant_log_probability(ep.mean, ep.kernel, s)[0] for s in signs}
    assert ep.log_probability == pytest.approx(ep_values[(True,) * 6])
    assert sum(math.exp(v) for v in ep_values.values()) == pytest.approx(1.0, abs=0.05)
    compared = 0
    for pattern, count in zip(counted.patterns, counted.counts):
        p = int(count) / 20000
        if p > 1e-3:
            assert abs(ep_values[tuple(pattern.tolist())] - math.log(p)) < 1.0, pattern
            compared += 1
    assert compared >= 40  # most of the 64 patterns are that likely for this net
    # simplicity bias: the constant functions are the most likely ones
    ordered = sorted(ep_values, key=ep_values.get, reverse=True)
    assert set(ordered[:2]) == {(True,) * 6, (False,) * 6}


def train_binary(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 1))
    x = torch.randn(24, 3, generator=torch.Generator().manual_seed(5))
    y = (x[:, 0] * x[:, 1] > 0).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        F.binary_cross_entropy_with_logits(model(x).squeeze(-1), y).backward()
        optimizer.step()
    return model, x, y


def bce(model, batch):
    return F.binary_cross_entropy_with_logits(model(batch[0]).squeeze(-1), batch[1])


@pytest.mark.parametrize("c", [10.0, 100.0])
def test_rescaling_moves_the_top_eigenvalue_but_not_the_volume(c):
    """Dinh et al.'s α-scale transformation keeps the function, hence the volume; flatness moves."""
    model, x, y = train_binary()
    factory = lambda: nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 1))  # noqa: E731
    before = function_volume(factory, x, model=model, num_init_samples=400)
    top_before = float(hessian_eigenvalues(model, [(x, y)], loss_fn=bce).eigenvalues[0])
    with torch.no_grad():
        model[0].weight.mul_(c)
        model[0].bias.mul_(c)
        model[2].weight.div_(c)
    after = function_volume(factory, x, model=model, num_init_samples=400)
    top_after = float(hessian_eigenvalues(model, [(x, y)], loss_fn=bce).eigenvalues[0])
    assert torch.equal(after.target, before.target)
    assert after.log_probability == before.log_probability
    assert max(top_after / top_before, top_before / top_after) > 10
    assert math.isfinite(before.log_probability) and before.log_probability < 0


def test_default_target_is_the_models_prediction_and_nothing_is_perturbed():
    model, x, _ = train_binary()
    state, streams = snapshot(model), GlobalRNG.capture()
    result = function_volume(lambda: nn.Linear(3, 1), x, model=model, num_init_samples=50)
    assert torch.equal(result.target, (model(x).squeeze(-1) > 0).detach())
    assert_same_state(state, model)
    assert GlobalRNG.capture().equals(streams)
    two_logits = function_volume(lambda: nn.Linear(3, 2), x, target=result.target, num_init_samples=50)
    assert math.isfinite(two_logits.log_probability)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({}, ValueError, "give `target`"),
        ({"target": torch.ones(5)}, ValueError, "`target` must hold 6 binary labels"),
        ({"target": torch.full((6,), 2)}, ValueError, "`target` must hold 6 binary labels"),
        ({"target": torch.ones(6), "num_init_samples": 6}, ValueError, "must exceed the number of inputs"),
        ({"target": torch.ones(6), "method": "exact"}, ValueError, "`method` must be one of"),
        ({"target": torch.ones(6), "output_fn": 3}, TypeError, "`output_fn`"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, message):
    with pytest.raises(error, match=message):
        function_volume(lambda: nn.Linear(3, 1), torch.randn(6, 3), **kwargs)


def test_a_factory_that_reseeds_itself_is_refused():
    def same_every_time():
        torch.manual_seed(0)
        return nn.Linear(3, 1)

    with pytest.raises(ValueError, match="does the factory seed the random generator itself"):
        function_volume(same_every_time, torch.randn(4, 3), target=torch.ones(4), num_init_samples=10)


def test_outputs_that_are_not_binary_need_an_output_fn():
    with pytest.raises(ValueError, match="binary labels need outputs of shape"):
        function_volume(lambda: nn.Linear(3, 5), torch.randn(6, 3), target=torch.ones(6), num_init_samples=10)
