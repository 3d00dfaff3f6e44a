"""Matrix-free spectral estimators of a symmetric operator ``A``.

``A`` is a :class:`~lightning_landscape.core.linalg.operators.LinearOperator`, a square tensor, or a
``matvec`` callable with its dimension (:func:`~lightning_landscape.core.linalg.operators.as_operator`).

- :func:`lanczos_eigenpairs`: extreme eigenvalues by Lanczos with full reorthogonalization,
  stopped when the wanted Ritz values' residual bounds ``|β_m s_{m,i}|`` fall below
  ``tol · |θ_i|``.
- :func:`hutchinson_trace` and :func:`hutch_plus_plus_trace`: stochastic trace estimates with
  Rademacher probes (Hutchinson 1989; Meyer, Musco, Musco & Woodruff 2021), each with a standard
  error.
- :func:`slq_nodes`: stochastic Lanczos quadrature (Ghorbani, Krishnan & Xiao 2019) nodes and
  weights, from which spectral densities and ``tr f(A)`` follow.

All randomness comes from a private ``torch.Generator(seed)``. Vectors live on the operator's device
in its dtype (``device``/``dtype`` for a callable); the small tridiagonal problems are solved in
float64.
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from ..._checks import check_fits_in_memory
from ..base.results import ResultFile, register_result_type
from .operators import Operand, as_operator

__all__ = [
    "hutch_plus_plus_trace",
    "hutchinson_trace",
    "informed_start",
    "lanczos_eigenpairs",
    "LanczosResult",
    "rademacher",
    "slq_nodes",
    "SLQNodes",
    "standard_error",
    "TraceEstimate",
]

MatVec = Callable[[torch.Tensor], torch.Tensor]
Which = Literal["largest", "smallest", "both"]


def rademacher(shape: tuple[int, ...], generator: torch.Generator, device, dtype) -> torch.Tensor:
    """±1 entries with equal probability."""
    bits = torch.randint(0, 2, shape, generator=generator, device=device)
    return (bits * 2 - 1).to(dtype)


def _generator(seed: int, device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


@dataclass(frozen=True)
class LanczosResult:
    """Eigenvalues (and optionally eigenvectors) found by Lanczos.

    Attributes:
        eigenvalues: the wanted eigenvalues, largest first for ``"largest"``, smallest first for
            ``"smallest"``; for ``"both"``, the ``k`` largest then the ``k`` smallest.
        eigenvectors: ``(dim, len(eigenvalues))`` unit eigenvectors, or ``None``.
        residuals: the residual bound ``|β_m s_{m,i}|`` of each returned value.
        num_steps: Lanczos steps (operator products) used.
        converged: whether every returned value met the tolerance.
    """

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor | None
    residuals: torch.Tensor
    num_steps: int
    converged: bool


def _wanted(order: torch.Tensor, k: int, which: Which) -> torch.Tensor:
    """Indices (into ascending Ritz values) of the wanted ones, in reporting order."""
    largest = order.flip(0)[:k]
    smallest = order[:k]
    if which == "largest":
        return largest
    if which == "smallest":
        return smallest
    return torch.cat([largest, smallest])


def _random_start(dim: int, seed: int, device, dtype) -> torch.Tensor:
    """The seeded Gaussian start vector of :func:`lanczos_eigenpairs` (not normalized)."""
    return torch.randn(dim, generator=_generator(seed, device), device=device, dtype=dtype)


def informed_start(
    hint: torch.Tensor | None, dim: int, *, seed: int = 0, device="cpu", dtype=torch.float32
) -> torch.Tensor:
    """A Lanczos start vector: a random unit vector plus the unit vector along ``hint``.

    The random part keeps every eigenvector in the Krylov space; the hint (for a loss Hessian, the
    loss gradient, which at and near trained weights lies mostly in the top eigenspace, Gur-Ari,
    Roberts & Dyer 2018) gives the top eigenvector a share of order one instead of ``1/√dim``, so
    the top eigenvalue is found in fewer products and is not mistaken for the second. A hint that is
    zero or not finite is ignored.

    >>> start = informed_start(torch.tensor([3.0, 0.0, 0.0, 0.0]), 4, seed=1)
    >>> bool(start[0] > 0.9)
    True
    """
    start = _random_start(dim, seed, device, dtype)
    start = start / torch.linalg.vector_norm(start)
    if hint is None:
        return start
    norm = float(torch.linalg.vector_norm(hint.double()))
    if not (math.isfinite(norm) and norm > 0.0):
        return start
    return start + hint.to(device, dtype) / norm


def lanczos_eigenpairs(
    A: Operand,
    dim: int | None = None,
    *,
    k: int = 1,
    which: Which = "largest",
    tol: float = 1e-4,
    max_iter: int = 100,
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    return_eigenvectors: bool = False,
    check_every: int = 1,
    min_iter: int = 4,
    start: torch.Tensor | None = None,
) -> LanczosResult:
    """Extreme eigenpairs of a symmetric operator by Lanczos with full reorthogonalization.

    Args:
        A: the operator (a :class:`~lightning_landscape.core.linalg.operators.LinearOperator` or a square
            tensor), or a ``matvec`` callable ``v ↦ A v`` on flat vectors of length ``dim``.
        dim: the dimension (required for a callable only).
        k: number of eigenvalues at each wanted end.
        which: ``"largest"``, ``"smallest"`` or ``"both"`` ends (algebraically).
        tol: stop when every wanted Ritz value has residual bound ``≤ tol · |θ|``.
        max_iter: at most this many steps (products); capped at ``dim``.
        seed: seed of the random start vector.
        device: device of the vectors, for a callable (default CPU).
        dtype: dtype of the vectors, for a callable (default float32).
        return_eigenvectors: also return the Ritz vectors.
        check_every: test convergence every so many steps.
        min_iter: never stop before this many steps (capped at ``dim``).
        start: the start vector (any norm; default: Gaussian from ``seed``). A small residual only
            says that a Ritz value is close to *some* eigenvalue: from a random start the top
            eigenvector's share is about ``1/√dim``, and the second eigenvalue may converge before
            the top one appears (seen on the digits MLP with seed 0: 2.756 "converged" at step 10,
            the true 3.072 appeared at step 13). :func:`informed_start` with the loss gradient
            avoids that for Hessians; otherwise raise ``min_iter`` (ARPACK keeps at least 20
            Lanczos vectors).

    Example:
        >>> a = torch.diag(torch.arange(1.0, 11.0))
        >>> result = lanczos_eigenpairs(a, k=2, which="both", max_iter=10)
        >>> [round(x, 6) for x in result.eigenvalues.tolist()]
        [10.0, 9.0, 1.0, 2.0]
    """
    op = as_operator(A, dim, device, dtype)
    dim, device, dtype = op.dim, op.device, op.dtype
    tol = float(tol)  # an integer tolerance would be multiplied in int64 and overflow
    steps_cap = min(max_iter, dim)
    wanted_count = 2 * k if which == "both" else k
    if k < 1 or wanted_count > dim:
        raise ValueError(f"`k` must be between 1 and {dim if which != 'both' else dim // 2}, got {k}.")
    if start is None:
        start = _random_start(dim, seed, device, dtype)
    elif start.shape != (dim,):
        raise ValueError(f"`start` must have shape ({dim},), got {tuple(start.shape)}.")
    start = start.to(device, dtype)
    for alphas, betas, beta, basis, invariant in _lanczos_process(op.matvec, start, steps_cap):  # noqa: B007
        steps = len(alphas)
        last = invariant or steps == steps_cap
        if not last and (steps < max(wanted_count, min_iter) or steps % check_every):
            continue
        ritz, vectors = finite_eigh(_tridiagonal(alphas, betas), "Lanczos")
        idx = _wanted(torch.arange(steps), min(k, steps), which)
        residuals = (beta * vectors[-1, idx]).abs()
        converged = bool((residuals <= tol * ritz[idx].abs().clamp_min(1e-30)).all())  # False if NaN
        if converged or last:
            break
    eigenvectors = None
    if return_eigenvectors:
        eigenvectors = basis.T @ vectors[:, idx].to(dtype=dtype, device=device)
    return LanczosResult(
        eigenvalues=ritz[idx].clone(),
        eigenvectors=eigenvectors,
        residuals=residuals.clone(),
        num_steps=steps,
        converged=converged,
    )


def warn_nonfinite(what: str, stacklevel: int = 3) -> None:
    """The one warning for a computation that met NaN/inf (diverged weights or loss) and returns NaN."""
    warnings.warn(
        f"{what}: non-finite values (diverged weights or loss?); the result is NaN.",
        RuntimeWarning,
        stacklevel=stacklevel,
    )


def warn_unconverged(what: str, max_iter: int, detail: str, stacklevel: int = 3) -> None:
    """The one warning for Lanczos stopping at ``max_iter`` before its tolerance: the values are Ritz
    values, not converged eigenvalues."""
    warnings.warn(
        f"{what}: Lanczos stopped at max_iter={max_iter} before {detail}",
        RuntimeWarning,
        stacklevel=stacklevel,
    )


def finite_eigh(matrix: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.linalg.eigh`` of a symmetric matrix; NaN eigenpairs and a warning when it is not finite.

    LAPACK fails on NaN/inf input with a linear-algebra error; a diverged model must give NaN
    results instead (its monitors record them and training goes on).

    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     values, _ = finite_eigh(torch.tensor([[1.0, float("nan")], [float("nan"), 1.0]]), "test")
    >>> values
    tensor([nan, nan])
    """
    if bool(torch.isfinite(matrix).all()):
        return torch.linalg.eigh(matrix)
    warn_nonfinite(what)
    n = matrix.shape[-1]
    nan = torch.full(matrix.shape[:-1], math.nan, dtype=matrix.dtype, device=matrix.device)
    return nan, torch.full((*matrix.shape[:-2], n, n), math.nan, dtype=matrix.dtype, device=matrix.device)


def _tridiagonal(alphas: list[float], betas: list[float]) -> torch.Tensor:
    """The float64 Lanczos matrix from its diagonal and (at least len − 1) off-diagonal entries."""
    t = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if len(alphas) > 1:
        off = torch.tensor(betas[: len(alphas) - 1], dtype=torch.float64)
        t = t + torch.diag(off, 1) + torch.diag(off, -1)
    return t


def _lanczos_process(matvec: MatVec, start: torch.Tensor, max_steps: int):
    """Lanczos with full reorthogonalization; yields after every step.

    Yields ``(alphas, betas, beta, basis, invariant)``: the diagonal and off-diagonal entries so
    far, the norm of the next residual, the orthonormal basis ``(steps, dim)`` and whether an
    invariant subspace was reached (the process then stops).
    """
    dim = start.numel()
    basis = torch.empty(max_steps, dim, device=start.device, dtype=start.dtype)
    q = start / torch.linalg.vector_norm(start)
    alphas: list[float] = []
    betas: list[float] = []
    beta = 0.0
    for j in range(max_steps):
        basis[j] = q
        w = matvec(q)
        alpha = float(torch.dot(w.double(), q.double()))
        w = w - alpha * q - (beta * basis[j - 1] if j > 0 else 0.0)
        for _ in range(2):  # full reorthogonalization, twice ("twice is enough")
            w = w - basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta = float(torch.linalg.vector_norm(w.double()))
        alphas.append(alpha)
        diverged = not (math.isfinite(alpha) and math.isfinite(beta))  # NaN products: stop, result NaN
        invariant = diverged or beta <= 1e-10 * max(abs(a) for a in alphas) or beta == 0.0
        yield alphas, betas, beta, basis[: j + 1], invariant
        if invariant:
            return
        betas.append(beta)
        q = w / beta


@dataclass(frozen=True)
class TraceEstimate(ResultFile):
    """A stochastic trace estimate.

    Attributes:
        estimate: the trace estimate.
        stderr: its standard error (from the spread of the probe values).
        num_matvecs: operator products used.
        method: ``"hutchinson"``, ``"hutch++"`` or ``"exact"``.

    Example:
        >>> TraceEstimate(2.5, 0.1, 40, "hutch++").scalars()
        {'estimate': 2.5, 'stderr': 0.1, 'num_matvecs': 40.0}
    """

    estimate: float
    stderr: float
    num_matvecs: int
    method: str


def standard_error(values: torch.Tensor) -> float:
    """The standard error of the mean of ``values`` (sample standard deviation over ``√n``); NaN for
    fewer than two values."""
    n = values.numel()
    return float(values.std() / math.sqrt(n)) if n > 1 else math.nan


def hutchinson_trace(
    A: Operand, dim: int | None = None, *, num_probes: int = 100, seed: int = 0, device=None, dtype=None
) -> TraceEstimate:
    """``tr A ≈ mean_i zᵢᵀ A zᵢ`` with Rademacher ``zᵢ``; standard error ``std / √n``.

    >>> a = torch.diag(torch.arange(1.0, 6.0))
    >>> est = hutchinson_trace(a, num_probes=4)
    >>> est.estimate  # exact for a diagonal matrix: zᵢ² = 1
    15.0
    """
    op = as_operator(A, dim, device, dtype)
    dim, device, dtype, matvec = op.dim, op.device, op.dtype, op.matvec
    generator = _generator(seed, device)
    values = torch.empty(num_probes, dtype=torch.float64)
    for i in range(num_probes):
        z = rademacher((dim,), generator, device, dtype)
        values[i] = float(torch.dot(z.double(), matvec(z).double()))
    return TraceEstimate(float(values.mean()), standard_error(values), num_probes, "hutchinson")


def hutch_plus_plus_trace(
    A: Operand, dim: int | None = None, *, num_matvecs: int = 99, seed: int = 0, device=None, dtype=None
) -> TraceEstimate:
    """Hutch++: exact trace on a sketched top subspace plus Hutchinson on the rest.

    With ``m = num_matvecs`` products: ``m/3`` to sketch ``Q = orth(A S)``, ``m/3`` for
    ``tr(Qᵀ A Q)``, and ``m/3`` Hutchinson probes of ``(I − QQᵀ) A (I − QQᵀ)``. The standard error is
    that of the Hutchinson part. Much lower variance than Hutchinson when A's spectrum is dominated
    by a few large eigenvalues, as Hessians of trained networks are.
    """
    if num_matvecs < 3:
        raise ValueError(f"`num_matvecs` must be >= 3, got {num_matvecs}.")
    op = as_operator(A, dim, device, dtype)
    dim, device, dtype, matvec = op.dim, op.device, op.dtype, op.matvec
    third = num_matvecs // 3
    generator = _generator(seed, device)
    sketch = torch.stack([matvec(rademacher((dim,), generator, device, dtype)) for _ in range(third)], dim=1)
    if not bool(torch.isfinite(sketch).all()):
        warn_nonfinite("Hutch++ trace")
        return TraceEstimate(math.nan, math.nan, third, "hutch++")
    q, _ = torch.linalg.qr(sketch.double())
    q = q.to(dtype)
    top = sum(float(torch.dot(q[:, i].double(), matvec(q[:, i]).double())) for i in range(q.shape[1]))
    values = torch.empty(third, dtype=torch.float64)
    for i in range(third):
        z = rademacher((dim,), generator, device, dtype)
        z = z - q @ (q.T @ z)
        az = matvec(z)
        values[i] = float(torch.dot(z.double(), (az - q @ (q.T @ az)).double()))
    return TraceEstimate(top + float(values.mean()), standard_error(values), 3 * third, "hutch++")


@register_result_type
@dataclass(frozen=True)
class SLQNodes:
    """Stochastic Lanczos quadrature: per probe, Ritz values (nodes) and their weights.

    ``tr f(A) ≈ dim · mean_probes Σ_j weights[p, j] · f(nodes[p, j])``; the spectral density is the
    same sum of weighted point masses, smoothed.
    """

    ARRAYS = {"nodes": "float[p,s]", "weights": "float[p,s]"}

    nodes: torch.Tensor
    weights: torch.Tensor
    dim: int

    def trace_of(self, f: Callable[[torch.Tensor], torch.Tensor]) -> float:
        """Estimate ``tr f(A)``."""
        return float(self.dim * (self.weights * f(self.nodes)).sum(dim=1).mean())

    def density(self, grid: torch.Tensor, sigma: float) -> torch.Tensor:
        """Gaussian-smoothed spectral density on ``grid`` (integrates to about 1)."""
        diff = grid.double().view(-1, 1, 1) - self.nodes.unsqueeze(0)
        kernel = torch.exp(-0.5 * (diff / sigma) ** 2) / (sigma * (2 * torch.pi) ** 0.5)
        return (kernel * self.weights.unsqueeze(0)).sum(dim=2).mean(dim=1)


def check_slq_size(num_probes: int, num_steps: int, dim: int, name: str = "num_probes") -> None:
    """Refuse quadrature node and weight arrays (``num_probes × min(num_steps, dim)``) that could
    never fit in memory, naming ``name``, before any work."""
    steps = min(num_steps, dim)
    what = f"{num_probes} × {steps} quadrature nodes and weights"
    check_fits_in_memory(name, num_probes, 16.0 * num_probes * steps, what)


def slq_nodes(
    A: Operand,
    dim: int | None = None,
    *,
    num_probes: int = 4,
    num_steps: int = 40,
    seed: int = 0,
    device=None,
    dtype=None,
) -> SLQNodes:
    """Run ``num_probes`` Lanczos processes of ``num_steps`` from normalized Rademacher starts.

    Nodes are the Ritz values of each tridiagonal matrix, weights the squared first components of
    its eigenvectors (Gauss quadrature for the probe's spectral measure).
    """
    op = as_operator(A, dim, device, dtype)
    dim, device, dtype = op.dim, op.device, op.dtype
    check_slq_size(num_probes, num_steps, dim)
    steps = min(num_steps, dim)
    nodes = torch.zeros(num_probes, steps, dtype=torch.float64)
    weights = torch.zeros(num_probes, steps, dtype=torch.float64)
    generator = _generator(seed, device)
    for p in range(num_probes):
        start = rademacher((dim,), generator, device, dtype)
        alphas, betas, *_ = deque(_lanczos_process(op.matvec, start, steps), maxlen=1)[0]  # run to the end
        theta, u = finite_eigh(_tridiagonal(alphas, betas), "stochastic Lanczos quadrature")
        nodes[p, : len(alphas)] = theta
        weights[p, : len(alphas)] = u[0] ** 2
    return SLQNodes(nodes=nodes, weights=weights, dim=dim)
