"""Hessian eigenvalues, trace and density of tiny models against dense Hessians."""

import os
import random
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from problems import GlobalRNG, assert_same_state, dense_hessian, snapshot
from torch import nn

from lightning_landscape.core.base.params import gradient_context
from lightning_landscape.core.curvature.density import hessian_density
from lightning_landscape.core.curvature.eigenvalues import hessian_eigenvalues
from lightning_landscape.core.curvature.trace import hessian_trace
from lightning_landscape.core.linalg.hessian import HessianOperator
from lightning_landscape.core.linalg.spectrum import lanczos_eigenpairs

DIGITS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
    "example_projects",
    "digits",
)


def _model(batchnorm: bool) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Linear(5, 12), nn.Tanh(), nn.Linear(12, 12)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(12))
    layers += [nn.ReLU(), nn.Linear(12, 3)]
    return nn.Sequential(*layers).double()


def _data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (64,), generator=g)
    return x, y, [(x[:40], y[:40]), (x[40:], y[40:])]  # uneven batches: per-sample weighting


@pytest.mark.parametrize("batchnorm", [False, True])
def test_top5_and_bottom2_match_the_dense_hessian(batchnorm):
    model = _model(batchnorm)
    x, y, batches = _data()
    if batchnorm:
        with torch.no_grad():
            model.train()(x)  # non-trivial running statistics
    dense = torch.linalg.eigvalsh(dense_hessian(model, x, y))
    assert 250 <= dense.numel() <= 400
    top = hessian_eigenvalues(model, batches, k=5, which="largest", tol=1e-10, max_iter=400).eigenvalues
    bottom = hessian_eigenvalues(model, batches, k=2, which="smallest", tol=1e-10, max_iter=400).eigenvalues
    np.testing.assert_allclose(top.numpy(), dense.flip(0)[:5].numpy(), rtol=1e-4)
    np.testing.assert_allclose(bottom.numpy(), dense[:2].numpy(), rtol=1e-4)
    assert bottom[0] < 0  # a genuinely indefinite Hessian


def test_eigenvectors_satisfy_the_eigen_equation():
    model = _model(False)
    x, y, batches = _data()
    h = dense_hessian(model, x, y)
    result = hessian_eigenvalues(model, batches, k=2, tol=1e-10, max_iter=400, return_eigenvectors=True)
    values, vectors = result.eigenvalues, result.eigenvectors
    assert hessian_eigenvalues(model, batches, k=2).eigenvectors is None  # the same type either way
    for value, vector in zip(values, vectors):
        v = torch.cat([vector[n].flatten() for n, _ in model.named_parameters()])
        np.testing.assert_allclose((h @ v).numpy(), (value * v).numpy(), atol=1e-6)


def test_trace_is_unbiased_against_the_dense_trace():
    model = _model(False)
    x, y, batches = _data()
    exact = float(torch.trace(dense_hessian(model, x, y)))
    for method in ("hutchinson", "hutch++"):
        estimates = [hessian_trace(model, batches, num_probes=30, method=method, seed=s) for s in range(10)]
        values = np.array([e.estimate for e in estimates])
        stderr = values.std(ddof=1) / np.sqrt(len(values))
        assert abs(values.mean() - exact) < 3 * stderr, method
        assert all(e.num_matvecs == 30 for e in estimates)


def test_density_is_normalized_and_covers_the_extreme_eigenvalues():
    model = _model(False)
    x, y, batches = _data()
    dense = torch.linalg.eigvalsh(dense_hessian(model, x, y))
    result = hessian_density(model, batches, num_probes=4, num_steps=60)
    grid, density = result.density(num_bins=2000)
    assert float(torch.trapezoid(density, grid)) == pytest.approx(1.0, abs=1e-2)
    assert float(result.quadrature.nodes.max()) == pytest.approx(float(dense.max()), rel=1e-3)


def test_curvature_never_perturbs_and_works_in_inference_mode():
    model = _model(True)
    x, y, batches = _data()
    with torch.no_grad():
        model.train()(x)
    model[1].eval()  # mixed flags
    F.cross_entropy(model(x), y).backward()  # populated .grad
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    rng = GlobalRNG.capture()
    before = snapshot(model)
    plain = hessian_eigenvalues(model, batches, k=1).eigenvalues
    with torch.inference_mode():  # as in a Lightning validation hook
        inside = hessian_eigenvalues(model, [(bx.clone(), by.clone()) for bx, by in batches], k=1).eigenvalues
        hessian_trace(model, batches, num_probes=6)
        hessian_density(model, batches, num_probes=1, num_steps=5)
    assert_same_state(before, model)
    assert GlobalRNG.capture().equals(rng)
    torch.testing.assert_close(inside, plain)


def test_unfrozen_grad_stays_none_and_argument_errors():
    model = _model(False)
    _, _, batches = _data()
    hessian_trace(model, batches, num_probes=3)
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="`which`"):
        hessian_eigenvalues(model, batches, which="middle")
    with pytest.raises(ValueError, match="`k`"):
        hessian_eigenvalues(model, batches, k=0)
    with pytest.raises(ValueError, match="`method`"):
        hessian_trace(model, batches, method="exact")


def _relu_bn_cnn():
    torch.manual_seed(4)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(16, 5),
    ).double()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(50, 1, 4, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (50,), generator=g)
    with torch.no_grad():
        net.train()(x)
    return net, x, y


def test_exact_ggn_trace_equals_the_dense_trace_of_a_piecewise_linear_network():
    from lightning_landscape.core.linalg._exact_trace import is_piecewise_linear

    net, x, y = _relu_bn_cnn()
    assert is_piecewise_linear(net)
    exact = float(torch.trace(dense_hessian(net, x, y)))
    result = hessian_trace(net, [(x[:20], y[:20]), (x[20:], y[20:])])  # "auto" picks the exact method
    assert result.method == "exact_ggn" and result.stderr == 0.0
    assert result.estimate == pytest.approx(exact, rel=1e-9)


def test_exact_ggn_is_not_the_hessian_trace_for_smooth_activations_so_auto_avoids_it():
    model = _model(False)  # tanh: the residual term's diagonal does not vanish
    x, y, batches = _data()
    exact = float(torch.trace(dense_hessian(model, x, y)))
    assert hessian_trace(model, batches, num_probes=9).method == "hutch++"
    ggn = hessian_trace(model, batches, method="exact_ggn").estimate
    assert abs(ggn - exact) > 1e-3 * abs(exact)
    smoothed = lambda m, b: F.cross_entropy(m(b[0]), b[1], label_smoothing=0.1)  # noqa: E731
    with pytest.raises(ValueError, match="exact_ggn"):
        hessian_trace(model, batches, method="exact_ggn", loss_fn=smoothed)
    # a loss equal to the cross-entropy on every batch is the cross-entropy: the same trace
    same = hessian_trace(
        model, batches, method="exact_ggn", loss_fn=lambda m, b: F.cross_entropy(m(b[0]), b[1])
    )
    assert same.estimate == pytest.approx(ggn, rel=1e-12)


def test_hutch_plus_plus_has_lower_variance_than_hutchinson_on_a_low_rank_hessian():
    """A softmax-regression layer's Hessian equals its GGN, of rank ≤ N·(C−1): low-rank dominated."""
    torch.manual_seed(6)
    net = nn.Sequential(nn.Linear(30, 3)).double()
    g = torch.Generator().manual_seed(7)
    x = torch.randn(8, 30, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (8,), generator=g)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(20):
        optimizer.zero_grad()
        F.cross_entropy(net(x), y).backward()
        optimizer.step()
    for p in net.parameters():
        p.grad = None
    spectrum = torch.linalg.eigvalsh(dense_hessian(net, x, y)).abs()
    assert (
        float(spectrum.sort(descending=True).values[:10].sum() / spectrum.sum()) > 0.8
    )  # low-rank dominated
    exact = float(torch.trace(dense_hessian(net, x, y)))
    plain = [
        hessian_trace(net, [(x, y)], num_probes=30, method="hutchinson", seed=s).estimate for s in range(12)
    ]
    plus = [hessian_trace(net, [(x, y)], num_probes=30, method="hutch++", seed=s).estimate for s in range(12)]
    assert np.var(plus) < 0.5 * np.var(plain)
    assert abs(np.mean(plus) - exact) < 3 * np.std(plus, ddof=1) / np.sqrt(12) + 1e-9


def test_operator_gradient_is_the_full_data_loss_gradient_including_constant_pieces():
    """The gradient that seeds Lanczos: summed over uneven batches with per-sample weights, and
    with the pieces autograd reports as constant in θ (they have no product graph)."""

    class WithOffset(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _model(batchnorm=False)
            self.offset = nn.Parameter(torch.tensor([0.5, -1.0], dtype=torch.float64))

    def loss_fn(model, batch):  # linear in `offset`: its gradient is constant
        x, y = batch
        return F.cross_entropy(model.net(x), y) + (model.offset * torch.tensor([2.0, 3.0])).sum()

    model = WithOffset()
    x, y, batches = _data()
    expected = torch.autograd.grad(loss_fn(model, (x, y)), list(model.parameters()))
    with gradient_context(model):
        op = HessianOperator(model, batches, loss_fn)
        gradient = op.gradient()
    torch.testing.assert_close(gradient, torch.cat([g.flatten() for g in expected]))
    torch.testing.assert_close(gradient[:2], torch.tensor([2.0, 3.0], dtype=torch.float64))  # own first


def test_top_eigenvalue_of_the_trained_digits_mlp_in_few_products():
    """The case that needed 20 products from a random start: the digits example's MLP after 5
    epochs of SGD, 1024 training images. From the random start of seed 0 alone, the second
    eigenvalue (2.756) converges first and Lanczos stops there; the gradient-informed start finds
    the top one (3.071) for every seed."""
    sys.path.insert(0, DIGITS)
    from digits import sgd_trained

    model, train_set = sgd_trained("mlp", epochs=5)
    x, y = train_set.tensors
    batches = [(x[:1024], y[:1024])]
    reference = hessian_eigenvalues(model, batches, k=1, tol=1e-9, min_iter=60, max_iter=60).eigenvalues
    for seed in range(4):
        with gradient_context(model):
            op = HessianOperator(model, batches)
            result = lanczos_eigenpairs(
                op.matvec, op.dim, k=1, tol=1e-4, seed=seed, start=op.lanczos_start("largest", seed)
            )
        assert result.converged and result.num_steps <= 14
        assert float(result.eigenvalues[0]) == pytest.approx(float(reference[0]), rel=1e-4)


@pytest.mark.parametrize("affine", [True, False])
def test_products_through_eval_batchnorm_match_the_dense_hessian(affine):
    """BatchNorm2d and BatchNorm1d on running statistics far from (0, 1), with and without affine
    parameters, batches of uneven size; reference: torch.func.hessian of the full-data loss."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.BatchNorm2d(3, affine=affine),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 16, 4),
        nn.BatchNorm1d(4, affine=affine),
    ).double()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(24, 1, 4, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (24,), generator=g)
    with torch.no_grad():
        model.train()(x * 2 + 1)
    expected = dense_hessian(model, x, y)
    with gradient_context(model):
        dense = HessianOperator(model, [(x[:10], y[:10]), (x[10:], y[10:])]).dense()
    torch.testing.assert_close(dense, expected, rtol=1e-7, atol=1e-10)


def test_an_endless_loader_is_read_only_up_to_num_samples():
    from lightning_landscape import log_evidence, sharpness
    from lightning_landscape.core.measures.noise import gradient_noise_scale

    model = _model(False)
    reads = []

    def endless():
        g = torch.Generator().manual_seed(0)
        while True:
            reads.append(1)
            yield torch.randn(8, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (8,), generator=g)

    values = hessian_eigenvalues(model, endless(), k=1, num_samples=20).eigenvalues
    assert values.shape == (1,) and len(reads) == 3  # 8 + 8 + 4 samples, nothing more
    for call in (
        lambda b, **k: hessian_eigenvalues(model, b, **k),
        lambda b, **k: hessian_trace(model, b, num_probes=3, **k),
        lambda b, **k: hessian_density(model, b, num_probes=1, num_steps=3, **k),
        lambda b, **k: sharpness(model, b, measure="keskar", num_ascent_steps=1, **k),
        lambda b, **k: log_evidence(model, b, prior_precision=1.0, num_probes=1, num_steps=3, **k),
        lambda b, **k: gradient_noise_scale(model, b, **k),
    ):
        reads.clear()
        call(endless(), num_samples=12)
        assert len(reads) == 2
        with pytest.raises(
            ValueError, match="`batches` .* has no length and may never end: give `num_samples`"
        ):
            call(endless())
