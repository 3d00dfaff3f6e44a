"""Matrix-free estimators on explicit symmetric matrices with known spectra."""

import numpy as np
import pytest
import torch

from lightning_landscape.core.linalg.spectrum import (
    hutch_plus_plus_trace,
    hutchinson_trace,
    informed_start,
    lanczos_eigenpairs,
    slq_nodes,
)


def _matrix(eigenvalues, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = len(eigenvalues)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return (q * torch.as_tensor(eigenvalues, dtype=torch.float64)) @ q.T


def test_lanczos_both_ends_and_eigenvectors_of_a_known_spectrum():
    spectrum = torch.cat([torch.tensor([40.0, 39.0, 20.0]), torch.linspace(-3.0, 4.0, 117)]).double()
    a = _matrix(spectrum)
    result = lanczos_eigenpairs(
        lambda v: a @ v,
        120,
        k=3,
        which="both",
        tol=1e-10,
        max_iter=120,
        dtype=torch.float64,
        return_eigenvectors=True,
    )
    expected = torch.cat([spectrum.sort(descending=True).values[:3], spectrum.sort().values[:3]])
    np.testing.assert_allclose(result.eigenvalues.numpy(), expected.numpy(), rtol=1e-8)
    for j, value in enumerate(result.eigenvalues):
        v = result.eigenvectors[:, j]
        np.testing.assert_allclose((a @ v).numpy(), (value * v).numpy(), atol=1e-6)
    assert result.converged


def test_lanczos_stops_early_when_converged_and_is_seeded():
    a = _matrix(
        torch.cat([torch.tensor([100.0]), torch.rand(299, generator=torch.Generator().manual_seed(1))])
    )
    first = lanczos_eigenpairs(lambda v: a @ v, 300, k=1, tol=1e-6, max_iter=300, dtype=torch.float64, seed=3)
    again = lanczos_eigenpairs(lambda v: a @ v, 300, k=1, tol=1e-6, max_iter=300, dtype=torch.float64, seed=3)
    assert first.num_steps < 30 and first.converged  # a well separated top eigenvalue
    assert float(first.eigenvalues[0]) == pytest.approx(100.0, rel=1e-6)
    assert torch.equal(first.eigenvalues, again.eigenvalues)
    with pytest.raises(ValueError, match="`k`"):
        lanczos_eigenpairs(lambda v: a @ v, 300, k=0)


def test_hutchinson_is_unbiased_within_three_standard_errors():
    a = _matrix(torch.linspace(-1.0, 3.0, 80))
    exact = float(torch.trace(a))
    estimates = [
        hutchinson_trace(lambda v: a @ v, 80, num_probes=30, seed=s, dtype=torch.float64) for s in range(20)
    ]
    mean = np.mean([e.estimate for e in estimates])
    stderr = np.std([e.estimate for e in estimates], ddof=1) / np.sqrt(len(estimates))
    assert abs(mean - exact) < 3 * stderr
    single = estimates[0]
    assert abs(single.estimate - exact) < 4 * single.stderr  # its own error bar is honest


def test_hutch_plus_plus_beats_hutchinson_on_a_low_rank_dominated_spectrum():
    spectrum = torch.cat(
        [
            torch.tensor([50.0, 30.0, 20.0, 10.0, 5.0]),
            0.01 * torch.rand(195, generator=torch.Generator().manual_seed(2)),
        ]
    )
    a = _matrix(spectrum, seed=4)
    exact = float(spectrum.sum())
    plain = [
        hutchinson_trace(lambda v: a @ v, 200, num_probes=30, seed=s, dtype=torch.float64).estimate
        for s in range(30)
    ]
    plus = [
        hutch_plus_plus_trace(lambda v: a @ v, 200, num_matvecs=30, seed=s, dtype=torch.float64).estimate
        for s in range(30)
    ]
    assert np.var(plus) < 0.1 * np.var(plain)
    assert abs(np.mean(plus) - exact) < 0.01 * exact


def test_slq_quadrature_reproduces_moments_and_a_normalized_density():
    spectrum = torch.linspace(0.5, 2.0, 60).double()
    a = _matrix(spectrum, seed=5)
    nodes = slq_nodes(lambda v: a @ v, 60, num_probes=30, num_steps=60, dtype=torch.float64)
    for f, exact in ((lambda t: t, spectrum.sum()), (torch.log, spectrum.log().sum())):
        per_probe = 60 * (nodes.weights * f(nodes.nodes)).sum(dim=1)  # one estimate per probe
        stderr = float(per_probe.std() / 30**0.5)
        assert nodes.trace_of(f) == pytest.approx(float(per_probe.mean()))
        assert abs(nodes.trace_of(f) - float(exact)) < 3 * stderr
    grid = torch.linspace(-1.0, 3.5, 2000, dtype=torch.float64)
    density = nodes.density(grid, sigma=0.05)
    assert float(torch.trapezoid(density, grid)) == pytest.approx(1.0, abs=1e-3)


def test_a_start_without_the_top_eigenvector_converges_to_the_second_and_the_hint_fixes_it():
    """Why the start vector matters: a small residual only says a Ritz value is near *some*
    eigenvalue. A start with no share of the top eigenvector converges to the second one and
    reports convergence; the same start plus a hint along the top eigenvector finds it."""
    spectrum = torch.cat([torch.tensor([10.0, 9.0]), torch.linspace(-1.0, 1.0, 98)]).double()
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(100, 100, generator=g, dtype=torch.float64))
    a = (q * spectrum) @ q.T
    blind = torch.randn(100, generator=g, dtype=torch.float64)
    blind -= (blind @ q[:, 0]) * q[:, 0]  # no share of the top eigenvector
    kwargs = dict(k=1, tol=1e-6, max_iter=100, dtype=torch.float64)
    fooled = lanczos_eigenpairs(lambda v: a @ v, 100, start=blind, **kwargs)
    assert fooled.converged and float(fooled.eigenvalues[0]) == pytest.approx(9.0, rel=1e-6)
    hint = q[:, 0] + 0.5 * q[:, 1]  # a rough pointer to the top eigenspace, as a gradient is
    start = informed_start(hint, 100, seed=0, dtype=torch.float64) + blind / blind.norm()
    found = lanczos_eigenpairs(lambda v: a @ v, 100, start=start, **kwargs)
    assert found.converged and float(found.eigenvalues[0]) == pytest.approx(10.0, rel=1e-6)


def test_informed_start_ignores_a_zero_or_non_finite_hint_and_start_is_checked():
    plain = informed_start(None, 7, seed=4)
    assert float(plain.norm()) == pytest.approx(1.0, rel=1e-6)
    for hint in (torch.zeros(7), torch.full((7,), float("nan")), torch.full((7,), float("inf"))):
        assert torch.equal(informed_start(hint, 7, seed=4), plain)
    hinted = informed_start(torch.ones(7), 7, seed=4)
    torch.testing.assert_close(hinted - plain, torch.ones(7) / 7**0.5)
    with pytest.raises(ValueError, match=r"`start` must have shape \(7,\)"):
        lanczos_eigenpairs(lambda v: v, 7, start=torch.ones(6))
