"""Laplace approximation of the Bayesian evidence around the current weights (Smith & Le 2018).

With a Gaussian prior of precision λ on every trainable parameter, ``p(θ) = Π √(λ/2π) e^{−λθ²/2}``,
and the likelihood ``e^{−N·L(θ)}`` (``L`` the per-sample mean loss, so ``N·L`` is the summed
cross-entropy of the N samples), the cost is ``C(θ) = N·L(θ) + (λ/2)‖θ‖²`` and Laplace's method
around θ gives, in nats,

    log P(y | x) ≈ −N·L(θ) − (λ/2)‖θ‖² − ½ log det(N·∇²L(θ)/λ + I)
                 =  data term  + prior term  + Occam term,

exactly, with no further constant: the prior's normalization ``(λ/2π)^{p/2}`` and the Gaussian
integral's ``(2π)^{p/2} det(∇²C)^{−1/2}`` combine into ``det(∇²C/λ)^{−1/2}``. The approximation is
meant at a minimum of ``C``; where ``N·∇²L/λ + I`` has eigenvalues ≤ 0 (a saddle, or a sharp
negative curvature) its logarithm is undefined and the Occam term is NaN, with the count of such
eigenvalues reported. For a model linear in θ with a Gaussian likelihood the expression is the exact
evidence.

The log-determinant is exact (a dense ``P×P`` matrix from ``P`` Hessian-vector products, for small
models) or estimated by stochastic Lanczos quadrature on Hessian-vector products, with the standard
error over probes. Biases and every other trainable parameter share the prior.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from ..._checks import (
    check_choice,
    check_fits_in_memory,
    check_int,
    check_positive_float,
    check_seed,
)
from ..base._inputs import evaluation_inputs
from ..base.batches import batch_size
from ..base.distributed import guarded_sum
from ..base.evaluation import check_model, evaluation_sums
from ..base.losses import CROSS_ENTROPY, LossFn, LossSpec, is_class_logits, is_cross_entropy, resolve_loss_fn
from ..base.params import gradient_context, module_device, selected_parameters
from ..base.results import ResultFile
from ..linalg.hessian import GGNOperator, HessianOperator
from ..linalg.operators import LinearOperator
from ..linalg.spectrum import check_slq_size, finite_eigh, slq_nodes, standard_error

__all__ = ["EvidenceResult", "log_evidence"]


@dataclass(frozen=True)
class EvidenceResult(ResultFile):
    """The Laplace log evidence and its parts, in nats.

    Attributes:
        log_evidence: ``data_term + prior_term + occam_term``.
        data_term: ``−N·L(θ)``, the log likelihood of the data at the weights.
        prior_term: ``−(λ/2)‖θ‖²``.
        occam_term: ``−½ log det(N·∇²L/λ + I)`` (≤ 0 at a minimum; penalizes curvature relative to
            the prior), with the Gauss-Newton matrix in place of ``∇²L`` for ``curvature="ggn"``.
        occam_stderr: standard error of the Occam term over SLQ probes (0 for ``"exact"``).
        num_samples: N.
        num_parameters: P.
        prior_precision: λ.
        method: ``"exact"`` or ``"slq"``.
        num_nonpositive: eigenvalues of ``N·∇²L/λ + I`` that are ≤ 0 (exact) or SLQ nodes that are
            (then the Occam term is NaN: the weights are not at a minimum of the cost).
        null_log_evidence: ``−N·log(classes)`` for class logits (every label equally likely), else
            None; ``log_evidence − null_log_evidence`` is Smith & Le's evidence ratio.
        extra: the estimator's settings.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Linear(3, 2)
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import log_evidence
        >>> result = log_evidence(net, data, prior_precision=1.0, method="exact")
        >>> result.method, result.num_parameters
        ('exact', 8)
    """

    log_evidence: float
    data_term: float
    prior_term: float
    occam_term: float
    occam_stderr: float
    num_samples: int
    num_parameters: int
    prior_precision: float
    method: str
    num_nonpositive: int
    null_log_evidence: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def log_evidence_ratio(self) -> float | None:
        """``log_evidence − null_log_evidence`` (None without a null model)."""
        return None if self.null_log_evidence is None else self.log_evidence - self.null_log_evidence


def _safe_log(values: torch.Tensor) -> torch.Tensor:
    return torch.where(values > 0, values.clamp_min(1e-300).log(), torch.full_like(values, float("nan")))


def _num_classes(model: nn.Module, batches: Iterable[Any], loss_fn: LossFn | None) -> int | None:
    if not is_cross_entropy(loss_fn):
        return None
    first = next(iter(batches))
    x, y = first[0], first[1]
    with torch.no_grad():
        output = model(x)
    return int(output.shape[1]) if is_class_logits(output, y) else None


def _evidence_loss(model: nn.Module, loss_fn: LossSpec, curvature: str) -> LossFn:
    """The resolved loss; the Gauss-Newton matrix is the cross-entropy's, which the default means."""
    loss_fn = resolve_loss_fn(CROSS_ENTROPY if curvature == "ggn" and loss_fn is None else loss_fn, model)
    if curvature == "ggn" and not is_cross_entropy(loss_fn):
        raise ValueError(
            "`curvature='ggn'` is the Gauss-Newton matrix of the cross-entropy of class logits; pass "
            "`loss_fn='cross_entropy'` (or leave it None), or use curvature='hessian'."
        )
    return loss_fn


def _check_log_det_size(method: str, num_probes: int, num_steps: int, dim: int) -> None:
    """Refuse a log-determinant whose memory cannot be had, before any work."""
    if method == "exact":  # the dense P × P matrix, its copy and its eigendecomposition
        check_fits_in_memory("method", method, 24.0 * dim * dim, f"the dense {dim} × {dim} Hessian")
    else:
        check_slq_size(num_probes, num_steps, dim)


def _exact_log_det(A: LinearOperator) -> tuple[float, float, int, dict[str, Any]]:
    """``(log det A, 0, eigenvalues ≤ 0, {})`` from the dense matrix (NaN when one is ≤ 0)."""
    dense = A.dense().double()
    eigenvalues = finite_eigh(0.5 * (dense + dense.T), "exact log-determinant")[0]
    nonpositive = int((eigenvalues <= 0).sum())
    log_det = float(_safe_log(eigenvalues).sum()) if nonpositive == 0 else float("nan")
    return log_det, 0.0, nonpositive, {}


def log_evidence(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    prior_precision: float,
    loss_fn: LossSpec = None,
    method: Literal["slq", "exact"] = "slq",
    curvature: Literal["hessian", "ggn"] = "hessian",
    num_probes: int = 30,
    num_steps: int = 60,
    seed: int = 0,
    num_samples: int | None = None,
    params: str | Sequence[str] | None = None,
) -> EvidenceResult:
    """Laplace log evidence ``−N·L(θ) − (λ/2)‖θ‖² − ½ log det(N·∇²L/λ + I)`` at the current weights.

    See the module docstring for the derivation and units (nats). ``loss_fn(model, batch)`` must
    return the mean negative log likelihood per sample (the default cross-entropy does) for the
    data term to be a log likelihood. The model is evaluated in eval mode and left untouched.

    Args:
        model: the network; its trainable parameters (or those ``params`` selects) carry the prior.
        batches: the data, all of it: N is the number of samples in them.
        prior_precision: λ > 0, the precision of the Gaussian prior on every parameter (a weight
            decay of ``wd`` on the mean loss corresponds to ``λ = N·wd``).
        loss_fn: the loss: any form of :mod:`~lightning_landscape.core.base.losses`
            (default: the model's own ``training_step``, else the cross-entropy of ``(x, y)`` class logits).
        method: ``"slq"`` (stochastic Lanczos quadrature, ``num_probes × num_steps`` Hessian-vector
            products) or ``"exact"`` (dense ``P×P`` matrix; small models only).
        curvature: ``"hessian"`` (the Laplace approximation as derived) or ``"ggn"``, the
            generalized Gauss-Newton matrix of the cross-entropy (default loss only), positive
            semi-definite everywhere: the usual choice for networks, whose Hessian keeps negative
            eigenvalues at any point a first-order optimizer stops at (ReLU nets in particular);
            identical to the Hessian for models linear in their parameters.
        num_probes: SLQ probes (Rademacher vectors).
        num_steps: Lanczos steps per probe.
        seed: seed of the probes.
        num_samples: read at most this many samples from ``batches`` (needed for an iterable
            without ``len``; default: every batch of a finite collection).
        params: only the trainable parameters matching these glob patterns carry the prior (the
            others are treated as fixed); default all of them.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Linear(3, 2)
        >>> data = [(torch.randn(20, 3), torch.randint(0, 2, (20,)))]
        >>> result = log_evidence(net, data, prior_precision=1.0, method="exact")
        >>> round(result.data_term + result.prior_term + result.occam_term - result.log_evidence, 9)
        0.0
    """
    check_model(model)
    check_positive_float("prior_precision", prior_precision)
    check_choice("method", method, ("slq", "exact"))
    check_choice("curvature", curvature, ("hessian", "ggn"))
    check_int("num_probes", num_probes, minimum=1)
    check_int("num_steps", num_steps, minimum=2)
    check_seed("seed", seed)
    loss_fn = _evidence_loss(model, loss_fn, curvature)
    selected = selected_parameters(model, params)
    names = None if params is None else list(selected)
    _check_log_det_size(method, num_probes, num_steps, sum(p.numel() for p in selected.values()))
    loss_fn, cached = evaluation_inputs(model, batches, loss_fn, num_samples)
    with gradient_context(model):
        loss_sum, n = _summed_loss(model, cached, loss_fn)
        op = (
            HessianOperator(model, cached, loss_fn, names)
            if curvature == "hessian"
            else GGNOperator(model, cached, names)
        )
        posterior = ((n / prior_precision) * op).shifted(1.0)  # c H + I, c = N / prior precision
        if method == "exact":
            log_det, log_det_stderr, nonpositive, extra = _exact_log_det(posterior)
        else:
            log_det, log_det_stderr, nonpositive, extra = _slq_log_det(posterior, num_probes, num_steps, seed)
        squared_norm = float(sum(p.detach().double().square().sum() for p in op.params))
        classes = _num_classes(model, cached, loss_fn)
    data_term = -loss_sum
    prior_term = -0.5 * prior_precision * squared_norm
    occam_term = -0.5 * log_det
    return EvidenceResult(
        log_evidence=data_term + prior_term + occam_term,
        data_term=data_term,
        prior_term=prior_term,
        occam_term=occam_term,
        occam_stderr=0.5 * log_det_stderr,
        num_samples=n,
        num_parameters=op.dim,
        prior_precision=float(prior_precision),
        method=method,
        num_nonpositive=nonpositive,
        null_log_evidence=None if classes is None else -n * math.log(classes),
        extra={**extra, "curvature": curvature, "parameters": list(op.names)},
    )


def _slq_log_det(A: LinearOperator, num_probes: int, num_steps: int, seed: int):
    """``(log det A, its standard error over probes, nodes ≤ 0, settings)`` by SLQ.

    Each probe gives ``dim · Σ_j w_j log θ_j`` from its Lanczos quadrature; the estimate is their
    mean. Its error is Hutchinson's for ``tr log A``: small when ``|tr log A|`` is large against the
    off-diagonal mass of ``log A`` (at a minimum where ``A ⪰ I``, as in a convex model); away from a
    minimum, eigenvalues of ``A`` in (0, 1) give logs of both signs that cancel in the trace but not in
    the variance, and more probes are needed. The standard error says which case one is in.
    """
    nodes = slq_nodes(A, num_probes=num_probes, num_steps=num_steps, seed=seed)
    used = nodes.weights > 0
    nonpositive = int(((nodes.nodes <= 0) & used).sum())
    per_probe = A.dim * (nodes.weights * torch.where(used, _safe_log(nodes.nodes), 0.0)).sum(dim=1)
    return (
        float(per_probe.mean()),
        standard_error(per_probe),
        nonpositive,
        {"num_probes": num_probes, "num_steps": num_steps, "seed": seed},
    )


def _summed_loss(model: nn.Module, batches: Iterable[Any], loss_fn: LossFn | None) -> tuple[float, int]:
    """``(N·L, N)``: the summed loss and the number of samples over every process's batches."""
    count = float(sum(batch_size(b) for b in batches))

    def local_sums() -> torch.Tensor:
        with torch.no_grad():
            local = evaluation_sums(model, batches, loss_fn).loss.double() * count
        return torch.stack([local, torch.tensor(count, dtype=torch.float64, device=local.device)])

    totals = guarded_sum(local_sums, shape=(2,), dtype=torch.float64, device=module_device(model))
    return float(totals[0]), int(totals[1])
