"""Eval-mode BatchNorm folded into the convolution or linear layer before it.

In eval mode BatchNorm is a per-channel affine map of its input, ``y = (z − μ)·s + β`` with
``s = γ / √(σ² + ε)`` from the running statistics. Right after a layer ``z = W ∗ x + b`` the pair
equals one layer with weight ``W·s`` and bias ``(b − μ)·s + β``: the same function of every
parameter (``W``, ``b``, ``γ``, ``β``), hence the same loss, gradient and Hessian. Only the order of
floating-point operations changes (relative differences of order 1e-6 in float32).

Double backpropagation is where this pays: BatchNorm's second-derivative formulas pass over the
whole activation tensor a dozen times per product, while the folded layer adds only a few
parameter-sized operations. On the digits CNN a Hessian-vector product costs about 0.6-0.7× as much.

Pairs are found with :mod:`torch.fx` (symbolic tracing, which runs the Python code of ``forward``
with placeholder values). A pair is folded only when the BatchNorm (``BatchNorm1d/2d/3d`` or
``SyncBatchNorm``, eval mode, running statistics) is called on the output of a ``Conv1d/2d/3d`` or
``Linear`` layer that nothing else uses, neither module has hooks, and the traced ``forward`` takes
only required arguments (an optional argument would be traced down one branch). A module that does
not trace is searched child by child; compiled modules are left alone.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..base.params import deferred_interrupts

__all__ = ["folded_batchnorm"]

_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


class _FoldedPair(nn.Module):
    """``norm(layer(x))`` computed as one layer with folded weights when ``norm`` is in eval mode."""

    def __init__(self, layer: nn.Module, norm: nn.Module) -> None:
        super().__init__()
        self.layer = layer
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer: Any = self.layer  # a Linear or ConvNd and a BatchNorm (checked by _foldable)
        norm: Any = self.norm
        batched_dim = 2 if isinstance(layer, nn.Linear) else layer.weight.dim()
        if norm.training or norm.running_var is None or x.dim() != batched_dim:
            return norm(layer(x))  # as written: batch statistics, or shapes BatchNorm would reject
        scale = torch.rsqrt(norm.running_var + norm.eps)
        if norm.weight is not None:
            scale = norm.weight * scale
        shift = -norm.running_mean if layer.bias is None else layer.bias - norm.running_mean
        shift = shift * scale
        if norm.bias is not None:
            shift = shift + norm.bias
        weight = layer.weight * scale.view(-1, *([1] * (layer.weight.dim() - 1)))
        if isinstance(layer, nn.Linear):
            return F.linear(x, weight, shift)
        return layer._conv_forward(x, weight, shift)


def _hooked(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks)


def _foldable(layer: Any, norm: Any) -> bool:
    if type(layer) not in _LAYERS or type(norm) not in _NORMS or _hooked(layer) or _hooked(norm):
        return False
    channels = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
    return bool(
        norm.track_running_stats
        and norm.num_features == channels
        and norm.running_var.dtype == layer.weight.dtype
        and (norm.weight is None or norm.weight.dtype == layer.weight.dtype)
    )


def symbolic_trace(module: nn.Module) -> fx.GraphModule:
    """``torch.fx.symbolic_trace`` that never leaves its global patches behind.

    While tracing, torch.fx replaces ``torch.nn.Module.__call__`` and ``__getattr__`` process-wide
    and puts them back in a ``finally``; a Ctrl-C landing there would leave every module call in the
    process broken, and fx's current patcher set, which ``torch.compile`` later re-applies. The
    originals and the patcher are put back here whatever happens, and a Ctrl-C is held until they
    are.
    """
    from torch.fx import _symbolic_trace as tracing

    originals = {name: vars(nn.Module)[name] for name in ("__call__", "__getattr__")}
    # fx keeps its patcher in a global while tracing; left set, ``torch.compile`` re-applies its patches
    patcher = getattr(tracing, "CURRENT_PATCHER", None)
    try:
        return fx.symbolic_trace(module)
    finally:
        with deferred_interrupts():
            for name, original in originals.items():
                if vars(nn.Module).get(name) is not original:
                    setattr(nn.Module, name, original)
            if hasattr(tracing, "CURRENT_PATCHER"):
                tracing.CURRENT_PATCHER = patcher


def _traceable(module: nn.Module) -> bool:
    """Whether ``module.forward`` may be traced and replaced: its own class ``forward``, taking
    only required arguments (:func:`_plan` has already left compiled modules out)."""
    if "forward" in vars(module):
        return False
    try:
        parameters = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return all(p.kind in positional and p.default is inspect.Parameter.empty for p in parameters)


def _fold_graph(module: nn.Module) -> tuple[fx.GraphModule, list[str]] | None:
    """``module`` traced, with every foldable layer → BatchNorm pair replaced by one call, and the
    folded BatchNorms' names; ``None`` when it does not trace."""
    try:
        traced = symbolic_trace(module)
    except Exception:  # noqa: BLE001 - any failure to trace means: search the children instead
        return None
    submodules = dict(traced.named_modules())
    folded: list[str] = []
    for node in list(traced.graph.nodes):
        if node.op != "call_module" or len(node.args) != 1 or node.kwargs:
            continue
        source = node.args[0]
        if not isinstance(source, fx.Node) or source.op != "call_module" or len(source.users) != 1:
            continue
        layer, norm = submodules.get(source.target), submodules.get(node.target)
        if layer is None or norm is None or not _foldable(layer, norm):
            continue
        name = f"_folded_{len(folded)}"
        traced.add_submodule(name, _FoldedPair(layer, norm))
        with traced.graph.inserting_before(node):
            replacement = traced.graph.call_module(name, source.args, source.kwargs)
        node.replace_all_uses_with(replacement)
        traced.graph.erase_node(node)
        traced.graph.erase_node(source)
        folded.append(node.target)
    traced.recompile()
    return traced, folded


def _plan(module: nn.Module, prefix: str) -> list[tuple[nn.Module, fx.GraphModule, list[str]]]:
    """Modules whose ``forward`` to replace, with the replacement and the BatchNorms it folds."""
    if type(module).__name__ == "OptimizedModule" or not any(type(m) in _NORMS for m in module.modules()):
        return []
    if _traceable(module):
        found = _fold_graph(module)
        if found is not None:  # traced whole: the graph holds every pair inside it
            graph, names = found
            return [(module, graph, [prefix + name for name in names])] if names else []
    plans = []
    for name, child in module.named_children():
        plans += _plan(child, f"{prefix}{name}.")
    return plans


@contextlib.contextmanager
def folded_batchnorm(model: nn.Module) -> Iterator[list[str]]:
    """Within the block, ``model`` computes every foldable eval-mode BatchNorm together with the
    layer before it (see the module docstring); on exit every ``forward`` is the class's again.

    Yields the names of the folded BatchNorm modules (empty when there are none). The parameters,
    buffers and the module tree are never modified: only ``forward`` attributes are set and removed.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU()).eval()
        >>> x = torch.randn(4, 1, 5, 5)
        >>> with folded_batchnorm(net) as names:
        ...     y = net(x)
        >>> names, torch.allclose(y, net(x), atol=1e-6)
        (['1'], True)
    """
    plans = _plan(model, "")
    try:
        for module, graph, _ in plans:
            module.forward = graph.forward
        yield [name for _, _, names in plans for name in names]
    finally:
        for module, _, _ in plans:
            vars(module).pop("forward", None)
