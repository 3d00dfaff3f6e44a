"""Hessian spectrum, trace and spectral density of a model's loss over fixed batches.

Every function evaluates the Hessian of the per-sample mean loss over ``batches`` at the current
weights, in eval mode, with respect to the trainable parameters (or ``names``), and leaves the
model, its ``.grad`` and every random stream exactly as before. They may be called from any hook,
validation hooks (inference mode) included.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import fx, nn

from .._checks import (
    check_bool,
    check_choice,
    check_int,
    check_names,
    check_params,
    check_positive_float,
    check_seed,
    check_span,
    renamed,
)
from .blocks import BlockSpec, Blockwise, check_blocks, per_block
from .distributed import guarded_sum, is_sharded
from .evaluation import LossFn, batch_size, cache_batches, is_cross_entropy, mean_batch_loss, module_device
from .folding import symbolic_trace
from .ggn_trace import layerwise_ggn_trace
from .grid import for_each_point, linear_combination_writer
from .hessian import HessianOperator, hessian_context
from .inputs import check_model, evaluation_inputs
from .landscape import (
    HESSIAN_DIRECTIONS,
    _resolve_directions,
    check_grid_size,
    check_span_fits,
    grid_coordinates,
)
from .params import checked_names, observing, perturbable_parameters, selected_parameters
from .results import ResultFile
from .risk import EmpiricalRisk, autograd_batch
from .spectrum import (
    SLQNodes,
    TraceEstimate,
    check_slq_size,
    hutch_plus_plus_trace,
    hutchinson_trace,
    lanczos_eigenpairs,
    slq_nodes,
    warn_unconverged,
)

__all__ = [
    "HESSIAN_DIRECTIONS",
    "PerBatchEigenvalues",
    "EigenvalueRatioMap",
    "EigenvalueResult",
    "SpectralDensity",
    "eigenvalue_ratio_map",
    "exact_ggn_trace",
    "hessian_directions",
    "hessian_density",
    "hessian_eigenvalues",
    "hessian_trace",
    "check_eigenvalue_options",
    "check_trace_options",
    "is_piecewise_linear",
]


def _chosen(model: nn.Module, params: str | Sequence[str] | None) -> list[str] | None:
    """The parameter names ``params`` selects (``None``: every trainable parameter)."""
    return None if params is None else list(selected_parameters(model, params))


def _operator(
    model: nn.Module, batches: Iterable[Any], loss_fn: LossFn | None, names, num_samples: int | None
) -> HessianOperator:
    return HessianOperator(model, cache_batches(batches, module_device(model), num_samples), loss_fn, names)


@dataclass(frozen=True, eq=False)
class EigenvalueResult(ResultFile):
    """Extreme Hessian eigenvalues from :func:`hessian_eigenvalues`.

    Attributes:
        eigenvalues: float64 CPU tensor: largest first for ``"largest"``, smallest first for
            ``"smallest"``, the ``k`` largest then the ``k`` smallest for ``"both"`` (NaN for a
            diverged model).
        converged: whether every wanted Ritz value met the tolerance within ``max_iter``; when
            not, the values are Ritz values, not converged eigenvalues.
        residuals: the residual bound of each value.
        num_matvecs: Hessian-vector products used.
        which: ``"largest"``, ``"smallest"`` or ``"both"``.
        eigenvectors: with ``return_eigenvectors=True``, unit eigenvectors as dicts name → CPU
            tensor, in the order of ``eigenvalues``; else ``None``.
    """

    eigenvalues: torch.Tensor
    converged: bool
    residuals: torch.Tensor
    num_matvecs: int
    which: str
    eigenvectors: list[dict[str, torch.Tensor]] | None = None

    ARRAYS = {"eigenvalues": "float[k]", "residuals": "float[k]", "eigenvectors": "float[*]"}


@dataclass(frozen=True, eq=False)
class PerBatchEigenvalues(ResultFile):
    """Hessian eigenvalues of the loss on each minibatch on its own (``per_batch=True``): the
    distribution of per-batch curvature (the "λ_max spectra" of the ViT landscape papers).

    Attributes:
        eigenvalues: ``(num_batches, wanted)`` float64, each row the :class:`EigenvalueResult`
            ``eigenvalues`` of that batch alone.
        batch_sizes: ``(num_batches,)`` the samples of each batch.
        converged: ``(num_batches,)`` whether Lanczos met its tolerance on each batch.
        which: ``"largest"``, ``"smallest"`` or ``"both"``.
    """

    eigenvalues: torch.Tensor
    batch_sizes: torch.Tensor
    converged: torch.Tensor
    which: str

    ARRAYS = {"eigenvalues": "float[b,k]", "batch_sizes": "int[b]", "converged": "bool[b]"}

    def scalars(self) -> dict[str, float]:
        """Summary of the first eigenvalue over batches: mean, median (of an even count, the mean
        of the middle two, as the figure's), min, max, std, count."""
        first = self.eigenvalues[:, 0]
        return {
            "mean": float(first.mean()),
            "median": float(first.quantile(0.5)),  # the midpoint of the middle two, as numpy's
            "min": float(first.min()),
            "max": float(first.max()),
            "std": float(first.std()) if first.numel() > 1 else 0.0,
            "num_batches": float(first.numel()),
        }


def check_eigenvalue_options(
    *,
    k: int,
    which: str,
    tol: float,
    max_iter: int,
    min_iter: int,
    seed: int,
    params: str | Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    **_: Any,
) -> None:
    """The checks of :func:`hessian_eigenvalues`' options, usable before a model exists (monitors
    run them at construction, with the function's own defaults for the options not given).

    >>> check_eigenvalue_options(k=3, which="largest", tol=1e-4, max_iter=2, min_iter=1, seed=0)
    Traceback (most recent call last):
    ...
    ValueError: `max_iter` (2) must be at least the number of wanted eigenvalues (3).
    """
    check_int("k", k, minimum=1)
    check_choice("which", which, ("largest", "smallest", "both"))
    check_positive_float("tol", tol)
    check_int("max_iter", max_iter, minimum=1)
    check_int("min_iter", min_iter, minimum=1)
    check_seed("seed", seed)
    check_params("params", params)
    check_names("names", names)
    wanted = 2 * k if which == "both" else k
    if max_iter < wanted:
        raise ValueError(
            f"`max_iter` ({max_iter}) must be at least the number of wanted eigenvalues ({wanted})."
        )


def check_trace_options(
    *,
    num_probes: int,
    method: str,
    seed: int,
    params: str | Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    **_: Any,
) -> None:
    """The checks of :func:`hessian_trace`'s options, usable before a model exists."""
    check_choice("method", method, ("auto", "exact_ggn", "hutch++", "hutchinson"))
    check_int("num_probes", num_probes, minimum=1 if method == "hutchinson" else 3)
    check_seed("seed", seed)
    check_params("params", params)
    check_names("names", names)


def hessian_eigenvalues(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    k: int = 1,
    which: Literal["largest", "smallest", "both"] = "largest",
    loss_fn: LossFn | None = None,
    tol: float = 1e-4,
    max_iter: int = 100,
    min_iter: int = 4,
    seed: int = 0,
    return_eigenvectors: bool = False,
    names: Sequence[str] | None = None,
    num_samples: int | None = None,
    blocks: BlockSpec | None = None,
    params: str | Sequence[str] | None = None,
    per_batch: bool = False,
) -> EigenvalueResult | Blockwise[EigenvalueResult] | PerBatchEigenvalues:
    """Extreme eigenvalues of the loss Hessian by Lanczos with full reorthogonalization.

    Args:
        model: the network at the weights of interest.
        batches: evaluation batches (cached on the model's device once).
        k: eigenvalues at each wanted end.
        which: ``"largest"``, ``"smallest"`` (algebraically: the most negative) or ``"both"``.
        loss_fn: the loss: any form of :mod:`~lightning_landscape.core.losses`
            (default: the model's own ``training_step``, else the cross-entropy of ``(x, y)`` class logits).
        tol: relative residual bound at which Lanczos stops.
        max_iter: at most this many Hessian-vector products.
        min_iter: at least this many products.
        seed: seed of the random part of the start vector. For ``"largest"`` and ``"both"`` the
            start is that random unit vector plus the unit loss gradient
            (:func:`~lightning_landscape.core.spectrum.informed_start`): a converged Ritz value is
            only close to *some* eigenvalue, and from a purely random start the second eigenvalue
            can converge before the top one appears; the gradient gives the top eigenvector a large
            share (on the digits MLP and CNN: 11 and 5–6 products instead of up to 20).
        return_eigenvectors: also keep the eigenvectors (as dicts name → tensor) in the result.
        names: the former name of ``params`` (exact names; one release, with a ``FutureWarning``).
        num_samples: read at most this many samples from ``batches`` (needed for an iterable
            without ``len``; default: every batch of a finite collection).
        blocks: per layer: a partition of the parameters (``"module"``, ``"parameter"`` or block
            name → glob patterns, :func:`~lightning_landscape.core.blocks.parameter_blocks`); the
            eigenvalues of each diagonal block of the Hessian (the loss as a function of that
            block's parameters alone), as a :class:`~lightning_landscape.core.blocks.Blockwise`.
        per_batch: the eigenvalues of the loss on each batch of ``batches`` on its own, as a
            :class:`PerBatchEigenvalues` (each row what this function gives for that one batch).
        params: only the trainable parameters matching these glob patterns (e.g. ``"*.lora_*"``);
            default every trainable parameter: the Hessian of the loss as a function of them.

    Returns:
        An :class:`EigenvalueResult` (one per block, in a ``Blockwise``, with ``blocks``): the
        eigenvalues (float64 CPU tensor), whether Lanczos met ``tol`` within ``max_iter``
        (``converged``; a warning says so when it did not), the residual bounds, the products used
        and, with ``return_eigenvectors``, the eigenvectors.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> result = hessian_eigenvalues(net, data, k=2)
        >>> result.eigenvalues.shape, result.converged
        (torch.Size([2]), True)
    """
    check_model(model)
    params = renamed("names", checked_names(model, names), "params", params, None)
    check_eigenvalue_options(
        k=k, which=which, tol=tol, max_iter=max_iter, min_iter=min_iter, seed=seed, params=params
    )
    check_blocks("blocks", blocks)
    names = _chosen(model, params)
    check_bool("per_batch", per_batch)
    check_bool("return_eigenvectors", return_eigenvectors)
    if per_batch and (blocks is not None or return_eigenvectors):
        raise ValueError(
            "`per_batch=True` gives eigenvalues only, for the whole model: drop `blocks` and "
            "`return_eigenvectors`."
        )
    if per_batch and is_sharded():
        raise ValueError(
            "`per_batch=True` measures each batch on its own: call it outside `sharded(...)`, on each "
            "process's own batches."
        )
    loss_fn, cached = evaluation_inputs(model, batches, loss_fn, num_samples)
    if per_batch or blocks is not None:  # the whole-model routine, run on each batch or block
        options = dict(k=k, which=which, loss_fn=loss_fn, tol=tol, max_iter=max_iter, min_iter=min_iter)
        options.update(seed=seed, return_eigenvectors=return_eigenvectors)
    if per_batch:
        rows = [hessian_eigenvalues(model, [batch], **options, params=names) for batch in cached]
        return PerBatchEigenvalues(
            eigenvalues=torch.stack([r.eigenvalues for r in rows]),
            batch_sizes=torch.tensor([batch_size(b) for b in cached]),
            converged=torch.tensor([r.converged for r in rows]),
            which=which,
        )
    if blocks is not None:
        return per_block(
            model, blocks, names, lambda ns: hessian_eigenvalues(model, cached, params=ns, **options)
        )
    with hessian_context(model):
        op = _operator(model, cached, loss_fn, names, None)
        result = lanczos_eigenpairs(
            op,
            k=k,
            which=which,
            tol=tol,
            max_iter=max_iter,
            min_iter=min_iter,
            seed=seed,
            return_eigenvectors=return_eigenvectors,
            start=op.lanczos_start(which, seed),
        )
    values = result.eigenvalues.cpu()
    if not result.converged and bool(torch.isfinite(values).all()):
        warn_unconverged(
            "hessian_eigenvalues",
            max_iter,
            f"its residuals met tol={tol:g} (residuals {[round(float(r), 6) for r in result.residuals]}); "
            "the values are Ritz values, not converged eigenvalues: raise `max_iter` or `tol`.",
        )
    vectors = None
    if return_eigenvectors:
        vectors = [
            {
                n: piece.detach().cpu().clone()
                for n, piece in zip(op.names, op.split(result.eigenvectors[:, j]))
            }
            for j in range(result.eigenvectors.shape[1])
        ]
    return EigenvalueResult(
        eigenvalues=values,
        converged=result.converged,
        residuals=result.residuals.detach().cpu().double(),
        num_matvecs=result.num_steps,
        which=which,
        eigenvectors=vectors,
    )


"""The landscape axes found by Lanczos: the top eigenvectors, or the top and the bottom one."""


def hessian_directions(
    model: nn.Module,
    batches: Iterable[Any],
    kind: Literal["hessian", "hessian_extremes"],
    dims: int,
    *,
    loss_fn: LossFn | None = None,
    seed: int = 0,
    tol: float = 1e-4,
    max_iter: int = 100,
    params: str | Sequence[str] | None = None,
) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor]:
    """Landscape axes along Hessian eigenvectors: ``(directions, eigenvalues)``.

    ``"hessian"``: the top ``dims`` eigenvectors; ``"hessian_extremes"``: the top and the bottom
    one (``dims`` must be 2). Unit vectors over the trainable parameters matching ``params`` (all by
    default; names absent from a direction do not move), on the parameters' devices, from
    :func:`hessian_eigenvalues`; along
    one of them a quadratic loss is ``½ λ t²``.
    """
    check_choice("directions", kind, HESSIAN_DIRECTIONS)
    if kind == "hessian_extremes" and dims != 2:
        raise ValueError("`directions='hessian_extremes'` spans two axes (top and bottom): use `dims=2`.")
    which, k = ("largest", dims) if kind == "hessian" else ("both", 1)
    result = hessian_eigenvalues(
        model,
        batches,
        k=k,
        which=which,
        loss_fn=loss_fn,
        seed=seed,
        tol=tol,
        max_iter=max_iter,
        return_eigenvectors=True,
        params=params,
    )
    devices = {n: p for n, p in model.named_parameters()}
    vectors = [{n: t.to(devices[n]) for n, t in v.items()} for v in result.eigenvectors]
    return vectors, result.eigenvalues


def hessian_trace(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    num_probes: int = 99,
    method: Literal["auto", "exact_ggn", "hutch++", "hutchinson"] = "auto",
    loss_fn: LossFn | None = None,
    seed: int = 0,
    names: Sequence[str] | None = None,
    num_samples: int | None = None,
    blocks: BlockSpec | None = None,
    params: str | Sequence[str] | None = None,
) -> TraceEstimate | Blockwise[TraceEstimate]:
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
    ``len``). ``blocks`` (as for :func:`hessian_eigenvalues`) gives the trace of every diagonal
    block of the Hessian (they sum to ``tr H``; exact per layer where the trace is exact).
    ``params`` (glob patterns) restricts it to the matching parameters (``names``: its former name).

    Returns:
        A :class:`~lightning_landscape.core.spectrum.TraceEstimate` (``estimate``, ``stderr``,
        ``num_matvecs``, ``method``); one per block in a ``Blockwise`` with ``blocks``.
    """
    check_model(model)
    params = renamed("names", checked_names(model, names), "params", params, None)
    check_trace_options(num_probes=num_probes, method=method, seed=seed, params=params)
    check_blocks("blocks", blocks)
    names = _chosen(model, params)
    loss_fn, cached = evaluation_inputs(model, batches, loss_fn, num_samples)
    if blocks is not None:
        options = dict(num_probes=num_probes, method=method, loss_fn=loss_fn, seed=seed)
        return per_block(model, blocks, names, lambda ns: hessian_trace(model, cached, params=ns, **options))
    if method in ("auto", "exact_ggn"):
        cross_entropy = is_cross_entropy(loss_fn) or is_cross_entropy_on(model, cached, loss_fn)
        if method == "exact_ggn" and not cross_entropy:
            raise ValueError(
                "`method='exact_ggn'` is the trace of the cross-entropy of class logits: give "
                "`loss_fn='cross_entropy'` (or a loss equal to it), or another `method`."
            )
        if method == "auto":
            method = "exact_ggn" if cross_entropy and is_piecewise_linear(model) else "hutch++"
    with hessian_context(model):
        if method == "exact_ggn":
            unknown = sorted(set(names or ()) - set(perturbable_parameters(model)))
            if unknown:
                raise ValueError(f"`names` {unknown} are not trainable parameters of the model.")
            value = exact_ggn_trace(model, cached, names)
            return TraceEstimate(value, 0.0, 0, "exact_ggn")
        op = _operator(model, cached, loss_fn, names, None)
        if method == "hutchinson":
            return hutchinson_trace(op, num_probes=num_probes, seed=seed)
        return hutch_plus_plus_trace(op, num_matvecs=num_probes, seed=seed)


_PIECEWISE_LINEAR_LEAVES = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.ReLU,
    nn.LeakyReLU,
    nn.ReLU6,
    nn.Hardtanh,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.Flatten,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.Identity,
)
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_PIECEWISE_LINEAR_FUNCTIONS = frozenset(
    {
        torch.relu,
        F.relu,
        F.relu6,
        F.leaky_relu,
        F.hardtanh,
        F.max_pool1d,
        F.max_pool2d,
        F.max_pool3d,
        F.avg_pool1d,
        F.avg_pool2d,
        F.avg_pool3d,
        F.adaptive_avg_pool1d,
        F.adaptive_avg_pool2d,
        F.adaptive_avg_pool3d,
        F.dropout,
        torch.flatten,
        torch.cat,
        torch.reshape,
        torch.squeeze,
        torch.unsqueeze,
        torch.permute,
        torch.transpose,
        torch.add,
        torch.sub,
        torch.neg,
        torch.mean,
        torch.sum,
        operator.add,
        operator.sub,
        operator.neg,
        operator.getitem,
        getattr,
    }
)
_PIECEWISE_LINEAR_METHODS = frozenset(
    {
        "relu",
        "view",
        "reshape",
        "flatten",
        "size",
        "dim",
        "permute",
        "transpose",
        "contiguous",
        "squeeze",
        "unsqueeze",
        "mean",
        "sum",
        "add",
        "sub",
        "neg",
        "__getitem__",
    }
)
_SCALINGS = frozenset({operator.mul, operator.truediv, torch.mul, torch.div, "mul", "div"})
_DIVISIONS = frozenset({operator.truediv, torch.div, "div"})


def is_cross_entropy_on(
    model: nn.Module, batches: Iterable[Any], loss_fn: LossFn, rtol: float = 1e-6
) -> bool:
    """Whether ``loss_fn`` equals the cross-entropy of the model's class logits on every batch (to
    ``rtol``, in eval mode): a ``training_step`` that returns ``F.cross_entropy(self(x), y)``, say,
    whose Hessian the exact Gauss-Newton trace then gives. Batches the cross-entropy cannot read,
    or one batch where the two differ (label smoothing, a penalty), make it ``False``; under
    :func:`~lightning_landscape.core.distributed.sharded` every process answers the same."""

    def mismatches() -> torch.Tensor:
        count = 0
        with observing(model):
            for batch in batches:
                try:
                    ce = float(mean_batch_loss(model, batch, None))
                except (TypeError, ValueError, IndexError, KeyError, RuntimeError):
                    return torch.ones(1)
                own = float(mean_batch_loss(model, batch, loss_fn))
                count += not abs(own - ce) <= rtol * max(1.0, abs(ce))
        return torch.full((1,), float(count))

    return float(guarded_sum(mismatches, shape=(1,), dtype=torch.float64, device=module_device(model))) == 0


def is_piecewise_linear(model: nn.Module) -> bool:
    """Whether ``model`` is provably linear in each single parameter (in eval mode).

    True for a tree of ``Sequential``/``ModuleList``/``ModuleDict`` containers whose leaves are
    linear, convolution, BatchNorm, ReLU-like, pooling, flatten, dropout or identity layers; and
    for any module (a LightningModule, a CNN written with its own ``forward``) whose traced graph
    (:mod:`torch.fx`) holds only such layers, each called once, joined by ReLU-like, pooling,
    reshaping, concatenating, adding and constant-scaling operations. Whatever cannot be traced,
    or holds anything else (a parameter used directly, a product of two activations), is ``False``.

    >>> is_piecewise_linear(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2)))
    True
    >>> is_piecewise_linear(nn.Sequential(nn.Linear(2, 3), nn.Tanh()))
    False
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.conv, self.head = nn.Conv2d(1, 2, 3), nn.Linear(8, 3)
    ...     def forward(self, x):
    ...         return self.head(torch.flatten(F.max_pool2d(torch.relu(self.conv(x)), 2), 1))
    >>> is_piecewise_linear(Net())
    True
    """
    if _is_container_tree(model):
        return True
    try:
        graph = symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 - anything fx cannot trace is simply not proven linear
        return False
    modules = dict(model.named_modules())
    called: set[str] = set()
    for node in graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        if node.op == "call_module":
            if node.target in called or not isinstance(modules.get(node.target), _PIECEWISE_LINEAR_LEAVES):
                return False  # a module called twice shares its weights between two places
            called.add(node.target)
        elif node.op == "call_function":
            if not _linear_operation(node.target, node.args, _PIECEWISE_LINEAR_FUNCTIONS):
                return False
        elif node.op == "call_method":
            if not _linear_operation(node.target, node.args, _PIECEWISE_LINEAR_METHODS):
                return False
        else:  # get_attr: a parameter or buffer used outside its layer
            return False
    return True


def _is_container_tree(model: nn.Module) -> bool:
    for module in model.modules():
        children = list(module.children())
        if children and not isinstance(module, _CONTAINERS):
            return False
        if not children and not isinstance(module, _PIECEWISE_LINEAR_LEAVES):
            return False
    return True


def _linear_operation(target: Any, args: tuple, allowed: frozenset) -> bool:
    """An allowed operation, or a product or quotient with at most one traced operand (scaling by
    a constant keeps linearity; a product of two activations does not)."""
    if target in allowed:
        return True
    if target in _SCALINGS:
        return sum(isinstance(a, fx.Node) for a in args) <= 1 and (
            target not in _DIVISIONS or not isinstance(args[1], fx.Node)
        )
    return False


def exact_ggn_trace(
    model: nn.Module, batches: Sequence[Any], names: Sequence[str] | None = None, chunk: int = 64
) -> float:
    """``tr GGN = (1/N) Σᵢ [Σ_c pᵢc ‖Jᵢc‖² − ‖Σ_c pᵢc Jᵢc‖²]`` for cross-entropy on class logits.

    ``Jᵢc = ∂zᵢc/∂θ`` are per-sample logit Jacobians (``vmap`` of ``jacrev`` over ``chunk`` samples at
    a time) and ``p = softmax(z)``. For a network linear in each single parameter this equals
    ``tr H`` exactly, because the residual term's diagonal vanishes. Call inside
    :func:`hessian_context`.

    Models whose trainable parameters all live in Linear, Conv2d and eval-mode BatchNorm layers take
    the layer-wise path of :func:`~lightning_landscape.core.ggn_trace.layerwise_ggn_trace` (one
    forward and one backward per class); others the per-sample Jacobians of every parameter.
    """
    fast = layerwise_ggn_trace(model, batches, names)
    return fast if fast is not None else jacobian_ggn_trace(model, batches, names, chunk)


def jacobian_ggn_trace(
    model: nn.Module, batches: Sequence[Any], names: Sequence[str] | None = None, chunk: int = 64
) -> float:
    """:func:`exact_ggn_trace` from per-sample logit Jacobians (``vmap(jacrev)``), for any model."""
    from torch.func import jacrev, vmap

    risk = EmpiricalRisk(model, names=names)
    params = risk.parameters()

    def logits(theta, x):
        return risk.call(theta, x.unsqueeze(0)).squeeze(0)

    per_sample = vmap(jacrev(logits), in_dims=(None, 0))

    def local_sums() -> torch.Tensor:  # [Σᵢ trace term, n] over this process's samples
        total, count = 0.0, 0
        for batch in batches:
            x = autograd_batch(batch)[0]
            for start in range(0, x.shape[0], chunk):
                xs = x[start : start + chunk]
                with torch.no_grad():
                    p = torch.softmax(risk.call(params, xs), dim=-1)
                jac = per_sample(params, xs)  # name -> (n, C, *shape)
                weighted_sq = sum((j.flatten(2).square().sum(-1) * p).sum() for j in jac.values())
                mean_sq = sum(
                    (torch.einsum("nc,ncp->np", p, j.flatten(2))).square().sum() for j in jac.values()
                )
                total += float(weighted_sq - mean_sq)
                count += xs.shape[0]
        return torch.tensor([total, float(count)], dtype=torch.float64)

    total, count = guarded_sum(local_sums, shape=(2,), dtype=torch.float64).tolist()
    return total / count


@dataclass(frozen=True)
class SpectralDensity(ResultFile):
    """Stochastic Lanczos quadrature estimate of the Hessian's eigenvalue density.

    Attributes:
        quadrature: nodes and weights per probe (:class:`~lightning_landscape.core.spectrum.SLQNodes`).
        num_probes: Rademacher probes used.
        num_steps: Lanczos steps per probe.
        seed: seed of the probes.
    """

    quadrature: SLQNodes
    num_probes: int
    num_steps: int
    seed: int

    def density(self, num_bins: int = 400, sigma: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(grid, density)``: Gaussian-smoothed density on ``num_bins`` points spanning the nodes.

        ``sigma`` defaults to 1% of the spectral range.
        """
        low, high = float(self.quadrature.nodes.min()), float(self.quadrature.nodes.max())
        margin = 0.05 * (high - low or 1.0)
        grid = torch.linspace(low - margin, high + margin, num_bins, dtype=torch.float64)
        return grid, self.quadrature.density(grid, sigma or 0.01 * (high - low or 1.0))


def hessian_density(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    num_probes: int = 4,
    num_steps: int = 40,
    loss_fn: LossFn | None = None,
    seed: int = 0,
    names: Sequence[str] | None = None,
    num_samples: int | None = None,
    blocks: BlockSpec | None = None,
    params: str | Sequence[str] | None = None,
) -> SpectralDensity | Blockwise[SpectralDensity]:
    """Eigenvalue density of the loss Hessian by stochastic Lanczos quadrature.

    ``num_probes × num_steps`` Hessian-vector products, on at most ``num_samples`` samples of
    ``batches``. Draw it with :func:`lightning_landscape.plotting.plot_hessian_density`. With
    ``blocks`` (as for :func:`hessian_eigenvalues`), the density of every diagonal block; with
    ``params`` (glob patterns; ``names``: its former name), of the matching parameters only.
    """
    check_model(model)
    check_int("num_probes", num_probes, minimum=1)
    check_int("num_steps", num_steps, minimum=2)
    check_seed("seed", seed)
    params = renamed("names", checked_names(model, names), "params", params, None)
    check_params("params", params)
    check_blocks("blocks", blocks)
    names = _chosen(model, params)
    check_slq_size(num_probes, num_steps, sum(p.numel() for p in selected_parameters(model, params).values()))
    loss_fn, cached = evaluation_inputs(model, batches, loss_fn, num_samples)
    if blocks is not None:
        options = dict(num_probes=num_probes, num_steps=num_steps, loss_fn=loss_fn, seed=seed)
        return per_block(
            model, blocks, names, lambda ns: hessian_density(model, cached, params=ns, **options)
        )
    with hessian_context(model):
        op = _operator(model, cached, loss_fn, names, None)
        nodes = slq_nodes(op, num_probes=num_probes, num_steps=num_steps, seed=seed)
    return SpectralDensity(quadrature=nodes, num_probes=num_probes, num_steps=num_steps, seed=seed)


@dataclass(frozen=True)
class EigenvalueRatioMap(ResultFile):
    """Extreme Hessian eigenvalues over a 2D filter-normalized grid (Li et al. 2018, §7).

    Attributes:
        coords: the two axes' coefficients.
        lambda_max: ``(n, n)`` largest eigenvalue at each grid point.
        lambda_min: ``(n, n)`` smallest (most negative) eigenvalue at each grid point.
        seed: seed of the directions (the same seed as a landscape gives the same plane).
        converged: ``(n, n)`` whether Lanczos met ``tol`` within ``max_iter`` at each grid point
            (a warning names how many did not).
    """

    coords: tuple[torch.Tensor, torch.Tensor]
    lambda_max: torch.Tensor
    lambda_min: torch.Tensor
    seed: int
    converged: torch.Tensor | None = None

    ARRAYS = {
        "coords": ("float[n]", "float[m]"),
        "lambda_max": "float[n,m]",
        "lambda_min": "float[n,m]",
        "converged": "bool[n,m]",
    }

    @property
    def ratio(self) -> torch.Tensor:
        """``|λ_min / λ_max|``: near 0 where the surface is convex, large where negative curvature matters."""
        return (self.lambda_min / self.lambda_max).abs()


def eigenvalue_ratio_map(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    num_points: int = 5,
    span: tuple[float, float] = (-1.0, 1.0),
    seed: int = 0,
    tol: float = 1e-2,
    max_iter: int = 30,
    loss_fn: LossFn | None = None,
    num_samples: int | None = None,
    params: str | Sequence[str] | None = None,
) -> EigenvalueRatioMap:
    """``λ_min`` and ``λ_max`` of the Hessian at every point of a coarse 2D landscape grid.

    The grid is that of :func:`~lightning_landscape.compute_landscape` with the same ``seed`` and
    ``params`` (filter-normalized directions, biases and norm layers fixed); as in the paper's code
    the Hessian is taken with respect to the weights with ``ndim > 1`` only (of those ``params``
    selects), and its extreme eigenvalues are found by Lanczos to tolerance ``tol`` (the paper's
    ``eigsh`` used 1e-2).
    """
    check_model(model)
    check_int("num_points", num_points, minimum=2)
    check_grid_size("num_points", num_points, 2)
    span = check_span("span", span)
    check_span_fits("span", span, model.parameters())
    chosen = selected_parameters(model, params)
    check_eigenvalue_options(k=1, which="both", tol=tol, max_iter=max_iter, min_iter=1, seed=seed, names=None)
    loss_fn, cached = evaluation_inputs(model, batches, loss_fn, num_samples)
    coords = [grid_coordinates(span, num_points) for _ in range(2)]
    with hessian_context(model):
        reference = {n: p.detach().clone() for n, p in chosen.items()}
        directions = _resolve_directions(
            reference, dims=2, seed=seed, normalization="filter", ignore_bias_and_norm=True, directions=None
        )
        write = linear_combination_writer(model, reference, directions)
        names = [n for n, t in reference.items() if t.ndim > 1]

        def write_point(point: tuple[float, ...]) -> None:
            with torch.no_grad():
                write(point)

        def extremes():
            op = HessianOperator(model, cached, loss_fn, names)
            start = op.lanczos_start("both", seed)
            return lanczos_eigenpairs(
                op, k=1, which="both", tol=tol, max_iter=max_iter, seed=seed, start=start
            )

        points = [(a, b) for a in coords[0].tolist() for b in coords[1].tolist()]
        results = for_each_point(points, write_point, extremes)
    eigenvalues = torch.stack([r.eigenvalues.double().cpu() for r in results]).reshape(
        num_points, num_points, 2
    )
    lambda_max, lambda_min = (t.contiguous() for t in eigenvalues.unbind(dim=-1))
    converged = torch.tensor([r.converged for r in results]).reshape(num_points, num_points)
    unconverged = int((~converged & torch.isfinite(lambda_max) & torch.isfinite(lambda_min)).sum())
    if unconverged:
        warn_unconverged(
            "eigenvalue_ratio_map",
            max_iter,
            f"tol={tol:g} at {unconverged} of {converged.numel()} grid points (see `converged`).",
        )
    return EigenvalueRatioMap(
        coords=(coords[0], coords[1]),
        lambda_max=lambda_max,
        lambda_min=lambda_min,
        seed=seed,
        converged=converged,
    )
