"""Laplace log evidence against closed forms computed densely in float64."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from problems import assert_same_state, snapshot
from torch import nn

from lightning_landscape import log_evidence

SIGMA = 0.7


def regression_data(n=40, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(d, generator=g, dtype=torch.float64)
    y = x @ w + 0.3 + SIGMA * torch.randn(n, generator=g, dtype=torch.float64)
    return x, y


def gaussian_nll(model, batch):
    x, y = batch
    residual = model(x).squeeze(-1) - y
    return (residual.square() / (2 * SIGMA**2) + 0.5 * math.log(2 * math.pi * SIGMA**2)).mean()


def bce(model, batch):
    x, y = batch
    return F.binary_cross_entropy_with_logits(model(x).squeeze(-1), y)


def linear_model(weights: np.ndarray) -> nn.Module:
    model = nn.Linear(len(weights) - 1, 1).double()
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(weights[:-1]).view(1, -1))
        model.bias.fill_(float(weights[-1]))
    return model


def features(x: torch.Tensor) -> np.ndarray:
    return np.hstack([x.numpy(), np.ones((x.shape[0], 1))])  # the bias shares the prior


@pytest.mark.parametrize("lam", [0.5, 4.0])
def test_linear_regression_evidence_is_the_exact_marginal_likelihood(lam):
    x, y = regression_data()
    phi, t = features(x), y.numpy()
    # posterior mode, and the exact evidence log N(y; 0, σ²I + ΦΦᵀ/λ) (Laplace is exact here)
    precision = phi.T @ phi / SIGMA**2 + lam * np.eye(phi.shape[1])
    mode = np.linalg.solve(precision, phi.T @ t / SIGMA**2)
    covariance = SIGMA**2 * np.eye(len(t)) + phi @ phi.T / lam
    _, logdet = np.linalg.slogdet(2 * np.pi * covariance)
    exact = -0.5 * (logdet + t @ np.linalg.solve(covariance, t))

    model = linear_model(mode)
    before = snapshot(model)
    dense = log_evidence(model, [(x, y)], prior_precision=lam, loss_fn=gaussian_nll, method="exact")
    assert dense.log_evidence == pytest.approx(exact, rel=1e-8)
    slq = log_evidence(
        model, [(x, y)], prior_precision=lam, loss_fn=gaussian_nll, method="slq", num_probes=400, num_steps=4
    )
    assert slq.log_evidence == pytest.approx(exact, rel=1e-3)
    assert dense.num_samples == 40 and dense.num_parameters == 4 and dense.num_nonpositive == 0
    assert dense.null_log_evidence is None
    assert_same_state(before, model)


def test_logistic_regression_evidence_matches_the_dense_laplace_form():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(60, 3, generator=g, dtype=torch.float64)
    y = (x[:, 0] - 0.5 * x[:, 1] + 0.5 * torch.randn(60, generator=g, dtype=torch.float64) > 0).double()
    phi, t, lam = features(x), y.numpy(), 2.0
    w = np.zeros(phi.shape[1])
    for _ in range(50):  # Newton's method to the MAP
        p = 1 / (1 + np.exp(-phi @ w))
        hessian = phi.T @ (phi * (p * (1 - p))[:, None]) + lam * np.eye(len(w))
        w -= np.linalg.solve(hessian, phi.T @ (p - t) + lam * w)
    p = 1 / (1 + np.exp(-phi @ w))
    cost = -np.sum(t * np.log(p) + (1 - t) * np.log(1 - p)) + 0.5 * lam * w @ w
    hessian = phi.T @ (phi * (p * (1 - p))[:, None]) + lam * np.eye(len(w))
    expected = -cost - 0.5 * np.linalg.slogdet(hessian / lam)[1]

    model = linear_model(w)
    dense = log_evidence(model, [(x, y)], prior_precision=lam, loss_fn=bce, method="exact")
    assert dense.log_evidence == pytest.approx(expected, rel=1e-8)
    assert dense.occam_term == pytest.approx(-0.5 * np.linalg.slogdet(hessian / lam)[1], rel=1e-8)
    slq = log_evidence(model, [(x, y)], prior_precision=lam, loss_fn=bce, num_probes=400, num_steps=4)
    assert slq.log_evidence == pytest.approx(expected, rel=1e-3)


def test_slq_log_determinant_within_one_percent_on_a_300_parameter_model():
    # multinomial logistic regression, 29 features × 10 classes + biases = 300 parameters
    torch.manual_seed(0)
    model = nn.Linear(29, 10).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 29, generator=g, dtype=torch.float64)
    y = (x[:, :10] + 0.5 * torch.randn(200, 10, generator=g, dtype=torch.float64)).argmax(1)
    exact = log_evidence(model, [(x, y)], prior_precision=1.0, method="exact")
    assert exact.num_parameters == 300 and exact.num_nonpositive == 0
    for seed in range(2):
        estimate = log_evidence(model, [(x, y)], prior_precision=1.0, num_probes=100, num_steps=40, seed=seed)
        # the log-determinant is −2 × the Occam term
        assert estimate.occam_term == pytest.approx(exact.occam_term, rel=1e-2)
        assert abs(estimate.occam_term - exact.occam_term) < 4 * estimate.occam_stderr
    # the default loss is a classifier's: the null model guesses among 10 classes
    assert exact.null_log_evidence == pytest.approx(-200 * math.log(10))
    assert exact.log_evidence_ratio == pytest.approx(exact.log_evidence + 200 * math.log(10))


def test_away_from_a_minimum_the_occam_term_is_nan_and_counted():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    data = [(3 * torch.randn(32, 4), torch.randint(0, 3, (32,)))]
    result = log_evidence(model, data, prior_precision=1e-3, method="exact")
    assert result.num_nonpositive > 0 and math.isnan(result.occam_term) and math.isnan(result.log_evidence)


def test_more_curvature_costs_more_occam_factor():
    x, y = regression_data()
    mode = np.zeros(4)
    sharp = log_evidence(
        linear_model(mode), [(x * 3, y)], prior_precision=1.0, loss_fn=gaussian_nll, method="exact"
    )
    flat = log_evidence(
        linear_model(mode), [(x, y)], prior_precision=1.0, loss_fn=gaussian_nll, method="exact"
    )
    assert sharp.occam_term < flat.occam_term < 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prior_precision": 0.0}, "`prior_precision` must be a finite number > 0"),
        ({"prior_precision": 1.0, "method": "laplace"}, "`method` must be one of"),
        ({"prior_precision": 1.0, "num_probes": 0}, "`num_probes` must be an integer >= 1"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        log_evidence(nn.Linear(2, 2), [(torch.randn(4, 2), torch.zeros(4, dtype=torch.long))], **kwargs)


def test_gauss_newton_matrix_matches_its_definition_from_explicit_jacobians():
    from torch.func import functional_call, jacrev

    from lightning_landscape.core.base.params import gradient_context
    from lightning_landscape.core.linalg.hessian import GGNOperator

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 4)).double()
    g = torch.Generator().manual_seed(2)
    batches = [
        (torch.randn(n, 3, generator=g, dtype=torch.float64), torch.randint(0, 4, (n,), generator=g))
        for n in (7, 5)
    ]
    params = {n: p.detach() for n, p in model.named_parameters()}
    x = torch.cat([b[0] for b in batches])
    jac = jacrev(lambda theta: functional_call(model, theta, (x,)))(params)
    j = torch.cat([jac[n].reshape(12, 4, -1) for n in params], dim=2)  # (samples, classes, P)
    p = torch.softmax(model(x), dim=-1).detach()
    middle = torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)
    expected = torch.einsum("ncp,ncd,ndq->pq", j, middle, j) / 12
    with gradient_context(model):
        op = GGNOperator(model, batches)
        dense = torch.stack([op.matvec(e) for e in torch.eye(op.dim, dtype=torch.float64)], dim=1)
    torch.testing.assert_close(dense, expected, rtol=1e-10, atol=1e-12)
    assert bool((torch.linalg.eigvalsh(dense) > -1e-12).all())  # positive semi-definite


def test_gauss_newton_evidence_equals_the_hessian_one_for_a_linear_softmax_model():
    torch.manual_seed(0)
    model = nn.Linear(5, 3).double()
    g = torch.Generator().manual_seed(4)
    data = [(torch.randn(30, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (30,), generator=g))]
    hessian = log_evidence(model, data, prior_precision=2.0, method="exact")
    ggn = log_evidence(model, data, prior_precision=2.0, method="exact", curvature="ggn")
    assert ggn.log_evidence == pytest.approx(hessian.log_evidence, rel=1e-10)
    assert ggn.extra["curvature"] == "ggn"
    with pytest.raises(ValueError, match="curvature='ggn'"):
        log_evidence(model, data, prior_precision=2.0, curvature="ggn", loss_fn=lambda m, b: m(b[0]).sum())
