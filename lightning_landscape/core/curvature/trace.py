"""The trace of the loss Hessian: exact for piecewise-linear networks under cross-entropy, else
Hutch++ or Hutchinson with its standard error."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

from torch import nn

from ..._checks import check_choice, check_int, check_params, check_seed
from ..base._inputs import evaluation_inputs
from ..base.evaluation import check_model
from ..base.losses import LossSpec, is_cross_entropy
from ..base.params import chosen_names, gradient_context, perturbable_parameters
from ..linalg._exact_trace import exact_ggn_trace, is_cross_entropy_on, is_piecewise_linear
from ..linalg.hessian import hessian_operator
from ..linalg.spectrum import TraceEstimate, hutch_plus_plus_trace, hutchinson_trace

__all__ = ["check_trace_options", "hessian_trace"]


def check_trace_options(
    *,
    num_probes: int,
    method: str,
    seed: int,
    params: str | Sequence[str] | None = None,
    **_: Any,
) -> None:
    """The checks of :func:`hessian_trace`'s options, usable before a model exists."""
    check_choice("method", method, ("auto", "exact_ggn", "hutch++", "hutchinson"))
    check_int("num_probes", num_probes, minimum=1 if method == "hutchinson" else 3)
    check_seed("seed", seed)
    check_params("params", params)


def hessian_trace(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    num_probes: int = 99,
    method: Literal["auto", "exact_ggn", "hutch++", "hutchinson"] = "auto",
    loss_fn: LossSpec = None,
    seed: int = 0,
    num_samples: int | None = None,
    params: str | Sequence[str] | None = None,
) -> TraceEstimate:
    """``tr H``: exact for piecewise-linear networks, else a stochastic estimate with its error.

    - ``"exact_ggn"``: ``tr GGN`` from per-sample logit Jacobians (:func:`exact_ggn_trace`), equal to
      ``tr H`` for networks linear in each single parameter (ReLU, max-pool, linear, convolution,
      eval-mode BatchNorm) with the default cross-entropy loss; standard error 0. For smooth
      activations (tanh, GELU, ...) it is the trace of the GGN, not of H.
    - ``"hutchinson"``: mean of ``zᵀHz`` over ``num_probes`` Rademacher probes.
    - ``"hutch++"``: the same number of products split between a sketched top subspace and
      Hutchinson on the rest; much lower variance on trained networks' Hessians.
    - ``"auto"`` (default): ``"exact_ggn"`` when the loss is the cross-entropy of class logits
      (``"cross_entropy"``, or a loss equal to it on every batch, such as a LightningModule's
      ``training_step`` returning ``F.cross_entropy(self(x), y)``: :func:`is_cross_entropy_on`) and
      :func:`is_piecewise_linear` proves the model qualifies, else ``"hutch++"``.

    ``num_samples`` caps the samples read from ``batches`` (needed for an iterable without
    ``len``). ``params`` (glob patterns) restricts it to the matching parameters. Per layer:
    :func:`~lightning_landscape.core.curvature.blocks.blockwise` (the blocks' traces sum to
    ``tr H``; exact per layer where the trace is exact).

    Returns:
        A :class:`~lightning_landscape.core.linalg.spectrum.TraceEstimate` (``estimate``, ``stderr``,
        ``num_matvecs``, ``method``).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import hessian_trace
        >>> estimate = hessian_trace(net, data)
        >>> estimate.method, estimate.stderr  # a ReLU net: exact
        ('exact_ggn', 0.0)
    """
    check_model(model)
    check_trace_options(num_probes=num_probes, method=method, seed=seed, params=params)
    names = chosen_names(model, params)
    loss_fn, cached = evaluation_inputs(model, batches, loss_fn, num_samples)
    if method in ("auto", "exact_ggn"):
        cross_entropy = is_cross_entropy(loss_fn) or is_cross_entropy_on(model, cached, loss_fn)
        if method == "exact_ggn" and not cross_entropy:
            raise ValueError(
                "`method='exact_ggn'` is the trace of the cross-entropy of class logits: give "
                "`loss_fn='cross_entropy'` (or a loss equal to it), or another `method`."
            )
        if method == "auto":
            method = "exact_ggn" if cross_entropy and is_piecewise_linear(model) else "hutch++"
    with gradient_context(model):
        if method == "exact_ggn":
            unknown = sorted(set(names or ()) - set(perturbable_parameters(model)))
            if unknown:
                raise ValueError(f"`params` {unknown} are not trainable parameters of the model.")
            value = exact_ggn_trace(model, cached, names)
            return TraceEstimate(value, 0.0, 0, "exact_ggn")
        op = hessian_operator(model, cached, loss_fn, names, None)
        if method == "hutchinson":
            return hutchinson_trace(op, num_probes=num_probes, seed=seed)
        return hutch_plus_plus_trace(op, num_matvecs=num_probes, seed=seed)
