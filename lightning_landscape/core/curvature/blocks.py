"""Partitions of the trainable parameters into blocks, and one result per block.

Curvature per layer is the curvature of a diagonal block of the Hessian: the loss as a function of
one block's parameters, every other parameter held where it is. :func:`parameter_blocks` turns a
partition as users write it into block name → parameter names:

- ``"module"``: one block per module that owns trainable parameters directly (a leaf layer such
  as ``features.0``; the model itself is ``"(root)"`` when it owns some);
- ``"parameter"``: one block per parameter;
- a mapping block name → glob patterns over parameter names (``{"body": ["layers.*"], "head":
  ["classifier.*"]}``), matched with :func:`fnmatch.fnmatchcase`.

Blocks never overlap (a diagonal block is the Hessian of one set of coordinates).
:func:`blockwise` runs any curvature function (``hessian_eigenvalues``, ``hessian_trace``,
``hessian_density``) block by block and returns a :class:`Blockwise`: the partition and one result
per block.

Example:
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> parameter_blocks(net, "module")
    {'0': ['0.weight', '0.bias'], '2': ['2.weight', '2.bias']}
    >>> parameter_blocks(net, {"weights": ["*.weight"]})
    {'weights': ['0.weight', '2.weight']}
"""

from __future__ import annotations

from collections.abc import Callable, ItemsView, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Generic, Literal, TypeVar

from torch import nn

from ..base._inputs import evaluation_inputs
from ..base.evaluation import check_model
from ..base.losses import LossSpec
from ..base.params import chosen_names, perturbable_parameters
from ..base.results import ResultFile

__all__ = [
    "BlockSpec",
    "blockwise",
    "Blockwise",
    "check_blocks",
    "parameter_blocks",
    "per_block",
]

BlockSpec = Literal["module", "parameter"] | Mapping[str, Sequence[str]]
R = TypeVar("R")


def check_blocks(name: str, blocks: Any) -> None:
    """Refuse a partition that is neither ``"module"``, ``"parameter"`` nor a mapping block name →
    non-empty list of glob patterns (usable before a model exists), naming ``name``."""
    if blocks is None or blocks in ("module", "parameter"):
        return
    if not isinstance(blocks, Mapping) or not blocks:
        raise ValueError(
            f"`{name}` must be 'module', 'parameter' or a non-empty mapping block name -> list of "
            f"parameter-name patterns, got {blocks!r}."
        )
    for block, patterns in blocks.items():
        good = (
            isinstance(block, str)
            and block
            and isinstance(patterns, (list, tuple))
            and patterns
            and all(isinstance(p, str) and p for p in patterns)
        )
        if not good:
            raise ValueError(
                f"`{name}[{block!r}]` must be a non-empty list of parameter-name patterns "
                f"(e.g. ['features.*']), got {patterns!r}."
            )


def parameter_blocks(
    model: nn.Module, blocks: BlockSpec, names: Sequence[str] | None = None, *, name: str = "blocks"
) -> dict[str, list[str]]:
    """The partition ``blocks`` of the trainable parameters of ``model`` (or of ``names``), as
    block name → parameter names in the model's order.

    Raises:
        ValueError: naming ``name``: a malformed partition, a block that matches no trainable
            parameter, or a parameter in two blocks.
    """
    check_blocks(name, blocks)
    available = list(perturbable_parameters(model))
    if names is not None:
        chosen = set(names)
        available = [n for n in available if n in chosen]
    if blocks == "parameter":
        return {n: [n] for n in available}
    if blocks == "module":
        known = set(available)
        per_module: dict[str, list[str]] = {}
        for module_name, module in model.named_modules():
            prefix = f"{module_name}." if module_name else ""
            own = [prefix + p for p, _ in module.named_parameters(recurse=False) if prefix + p in known]
            if own:
                per_module[module_name or "(root)"] = own
        return per_module
    found: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for block, patterns in blocks.items():
        matched = [n for n in available if any(fnmatchcase(n, p) for p in patterns)]
        if not matched:
            shown = available[:6] + (["..."] if len(available) > 6 else [])
            raise ValueError(
                f"`{name}[{block!r}]` ({list(patterns)}) matches no trainable parameter; they are {shown}."
            )
        for n in matched:
            if n in owner:
                raise ValueError(
                    f"`{name}`: parameter {n!r} is in both {owner[n]!r} and {block!r}; blocks must not "
                    "overlap."
                )
            owner[n] = block
        found[block] = matched
    return found


@dataclass(frozen=True)
class Blockwise(ResultFile, Generic[R]):
    """One result per block of parameters.

    Attributes:
        blocks: block name → the parameter names it holds.
        results: block name → that block's result (an ``EigenvalueResult``, a ``TraceEstimate``...).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import blockwise, hessian_trace
        >>> per_layer = blockwise(hessian_trace, net, data, blocks="module")
        >>> list(per_layer), sorted(per_layer.scalars())[:2]
        (['0', '2'], ['estimate/0', 'estimate/2'])
    """

    blocks: dict[str, list[str]]
    results: dict[str, R]

    def __getitem__(self, block: str) -> R:
        return self.results[block]

    def __iter__(self) -> Iterator[str]:
        """The block names, in order (``for block in result``, ``dict(result.items())``)."""
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def items(self) -> ItemsView[str, R]:
        """``(block, result)`` pairs, in order."""
        return self.results.items()

    def scalars(self) -> dict[str, float]:
        """Every block's numbers, as ``<name>/<block>`` (the order of the monitors'
        ``per_layer/<measure>/<block>``)."""
        results: dict[str, Any] = self.results  # every block's result is a result type with scalars()
        return {f"{k}/{b}": v for b, r in results.items() for k, v in r.scalars().items()}


def per_block(
    model: nn.Module, blocks: BlockSpec, names: Sequence[str] | None, compute: Callable[[list[str]], R]
) -> Blockwise[R]:
    """``compute(parameter names)`` for every block of the partition (:func:`parameter_blocks`)."""
    resolved = parameter_blocks(model, blocks, names)
    return Blockwise(blocks=resolved, results={b: compute(ns) for b, ns in resolved.items()})


def blockwise(
    function: Callable[..., R],
    model: nn.Module,
    batches: Any,
    *,
    blocks: BlockSpec = "module",
    loss_fn: LossSpec = None,
    num_samples: int | None = None,
    params: str | Sequence[str] | None = None,
    **options: Any,
) -> Blockwise[R]:
    """``function`` (a curvature function of ``(model, batches, *, loss_fn, params, ...)``:
    :func:`~lightning_landscape.core.curvature.eigenvalues.hessian_eigenvalues`,
    :func:`~lightning_landscape.core.curvature.trace.hessian_trace`,
    :func:`~lightning_landscape.core.curvature.density.hessian_density`) of every diagonal block of
    the Hessian: the loss as a function of one block's parameters, the others held where they are.

    Args:
        function: what to compute per block; ``options`` are its own.
        model: the network.
        batches: evaluation batches (read once, cached on the model's device).
        blocks: the partition (``"module"``, ``"parameter"`` or block name → glob patterns; see
            :func:`parameter_blocks`).
        loss_fn: the loss, as for ``function``.
        num_samples: read at most this many samples from ``batches``.
        params: partition only the trainable parameters matching these glob patterns.

    Example:
        >>> import torch
        >>> from lightning_landscape.core.curvature.trace import hessian_trace
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> data = [(torch.randn(8, 3), torch.randint(0, 2, (8,)))]
        >>> per_layer = blockwise(hessian_trace, net, data, blocks="module")
        >>> list(per_layer), sorted(per_layer.scalars())[:2]
        (['0', '2'], ['estimate/0', 'estimate/2'])
    """
    check_model(model)
    if not callable(function):
        raise TypeError(f"`function` must be a curvature function such as hessian_trace, got {function!r}.")
    check_blocks("blocks", blocks)
    names = chosen_names(model, params)
    loss_fn, cached = evaluation_inputs(model, batches, loss_fn, num_samples)
    return per_block(
        model, blocks, names, lambda ns: function(model, cached, loss_fn=loss_fn, params=ns, **options)
    )
