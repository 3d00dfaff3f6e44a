"""The loss: every form a ``loss_fn`` takes, resolved the same way by functions, monitors and the
CLI, and the losses of the generalization experiments.

A core function takes ``loss_fn(model, batch)``, the mean loss of a batch. What a user writes as
``loss_fn`` (:data:`LossSpec`), in a function call, a monitor, a YAML config or on the command
line, becomes one through :func:`resolve_loss_fn`:

- ``None`` (the default everywhere): the model's own training loss when it has a ``training_step``
  (a LightningModule, told apart without importing Lightning), ``model.training_step(batch,
  batch_idx=0)`` (a tensor, or a dict with ``"loss"``; its other scalar entries become metrics,
  ``"acc"`` or ``"accuracy"`` the accuracy); else the cross-entropy of ``(x, y, ...)`` batches of
  class logits;
- ``"training_step"``: the model's own training loss (refused without one);
- ``"cross_entropy"``: the fused cross-entropy and accuracy on ``(x, y, ...)`` batches of class
  logits (:data:`~lightning_landscape.core.base.losses.CROSS_ENTROPY_LOSS`, the fast path);
- the name of a method of the model, called as ``model.<name>(batch)``;
- a dotted import path of a function ``loss_fn(model, batch)`` (or of a loss class, built without
  arguments), or such a function itself;
- a loss module ``criterion(outputs, targets)`` (``torch.nn.CrossEntropyLoss(label_smoothing=0.1)``,
  say), applied to ``model(x)`` and ``y`` of ``(x, y, ...)`` batches.

Resolving is idempotent: a resolved loss resolves to itself, so a function may hand its loss to
another. Every call of the user's code runs under :func:`quiet_call`: ``self.log``/``self.log_dict``
silenced, the state of every ``torchmetrics.Metric`` of the module put back afterwards, the
module's public plain attributes (lists such as ``self.training_step_outputs``, dicts, numbers,
tensors not registered as buffers) put back, and every random stream restored, so that the loss is
the same deterministic function at every call (random augmentation inside the step draws the same
numbers each time) and training sees no trace of it. Only the module's own ``__dict__`` is
snapshotted, not its submodules'.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from typing_extensions import TypeIs

from .params import preserve_rng_state

__all__ = [
    "check_class_logits",
    "check_loss_spec",
    "CROSS_ENTROPY",
    "cross_entropy_inputs",
    "CROSS_ENTROPY_LOSS",
    "describe_loss",
    "is_class_logits",
    "is_cross_entropy",
    "LossFn",
    "LossSpec",
    "move_criterion",
    "quiet_call",
    "resolve_loss_fn",
    "reverse_cross_entropy",
]

LossFn = Callable[[nn.Module, Any], Any]
"""``loss_fn(model, batch)``: a scalar mean-loss tensor, or a mapping with it under ``"loss"``."""

LossSpec = str | nn.Module | Callable[..., Any] | None
"""What ``loss_fn`` accepts on the monitors and the CLI (see the module docstring)."""

CROSS_ENTROPY = "cross_entropy"
_PLAIN = (list, dict, set, int, float, bool, str, bytes, type(None), torch.Tensor)


# ------------------------------------------------------------------ the cross-entropy of class logits
class _FusedCrossEntropy:
    """The cross-entropy of ``(x, y, ...)`` batches of class logits, as a ``loss_fn``; the
    evaluation recognizes it and takes its fused path (cross-entropy and accuracy in one pass)."""

    __qualname__ = "cross_entropy"

    def __call__(self, model: nn.Module, batch: Any) -> torch.Tensor:
        x, y = cross_entropy_inputs(batch)
        output = model(x)
        check_class_logits(output, y)
        return F.cross_entropy(output, y)

    def __repr__(self) -> str:
        return "CROSS_ENTROPY_LOSS"


CROSS_ENTROPY_LOSS = _FusedCrossEntropy()
"""``loss_fn="cross_entropy"`` resolved: the fused cross-entropy of class logits (and accuracy)."""


def is_cross_entropy(loss_fn: LossFn | None) -> TypeIs[_FusedCrossEntropy | None]:
    """Whether ``loss_fn`` is the fused cross-entropy (``None`` inside the core, where a loss is
    already resolved, means it too)."""
    return loss_fn is None or loss_fn is CROSS_ENTROPY_LOSS


def is_class_logits(output: torch.Tensor, target: Any) -> bool:
    """Whether ``output`` and ``target`` look like class logits ``(N, C)`` and integer labels ``(N,)``:
    the one test of it, for every instrument that treats outputs as classes.

    >>> is_class_logits(torch.zeros(4, 3), torch.tensor([0, 2, 1, 0]))
    True
    >>> is_class_logits(torch.zeros(4, 1), torch.zeros(4))  # a regression output and float targets
    False
    """
    return (
        isinstance(target, torch.Tensor)
        and output.ndim == 2
        and target.ndim == 1
        and not target.is_floating_point()
        and not target.is_complex()
    )


def cross_entropy_inputs(batch: Any) -> tuple[Any, Any]:
    """``(x, y)`` of an ``(x, y, ...)`` batch, the form the default cross-entropy reads."""
    if not isinstance(batch, (list, tuple)) or len(batch) < 2:
        raise TypeError(
            "the cross-entropy of class logits (`loss_fn='cross_entropy'`, the default of a model without a "
            "training_step) expects batches of the "
            f"form (x, y, ...), got a batch of type {type(batch).__name__}; pass `loss_fn(model, batch)`."
        )
    return batch[0], batch[1]


def check_class_logits(output: Any, target: Any) -> None:
    """Refuse what the default cross-entropy would get silently wrong (regression outputs, float
    targets), with an error naming ``loss_fn``.

    >>> check_class_logits(torch.zeros(4, 1), torch.zeros(4, 1))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: the cross-entropy of class logits (...; got outputs of shape (4, 1) and targets of ...
    """
    if not (isinstance(output, torch.Tensor) and is_class_logits(output, target) and output.shape[1] >= 2):
        got_out = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        got_target = (
            f"shape {tuple(target.shape)}, dtype {target.dtype}"
            if isinstance(target, torch.Tensor)
            else type(target).__name__
        )
        raise ValueError(
            "the cross-entropy of class logits (`loss_fn='cross_entropy'`, the default of a model without a "
            "training_step) needs outputs of shape "
            "(N, C) with C >= 2 and integer labels of shape (N,); got outputs of shape "
            f"{got_out} and targets of {got_target}. Pass `loss_fn` (e.g. the module's own loss) "
            "for other tasks."
        )


# ------------------------------------------------------------------ the forms of loss_fn
def check_loss_spec(name: str, value: Any) -> LossSpec:
    """Return ``value`` if it is one of the ``loss_fn`` forms (checked further against the model).

    >>> check_loss_spec("loss_fn", 3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: `loss_fn` must be None (the model's own training loss, else cross-entropy), ...; got 3 (int).
    """
    if value is None or callable(value) or (isinstance(value, str) and value.strip()):
        return value
    raise TypeError(
        f"`{name}` must be None (the model's own training loss, else cross-entropy), 'training_step', "
        "'cross_entropy', the name of a method of the model, a dotted path of a function "
        "loss_fn(model, batch), such a function, or a loss module criterion(outputs, targets); got "
        f"{value!r} ({type(value).__name__})."
    )


def describe_loss(spec: Any) -> str:
    """How results name the loss: ``"training_step"``, ``"cross_entropy"``, a method or function name
    (any other spec by its type's name)."""
    if spec is None:
        return "training_step"
    if isinstance(spec, _Resolved) or spec is CROSS_ENTROPY_LOSS:
        return spec.__qualname__
    if isinstance(spec, str):
        return spec
    if isinstance(spec, nn.Module):
        return type(spec).__name__
    return getattr(spec, "__qualname__", type(spec).__name__)


# ------------------------------------------------------------------ guards
def _no_log(*args: Any, **kwargs: Any) -> None:
    return None


def _is_metric(module: nn.Module) -> bool:
    """A ``torchmetrics.Metric``, told by its class hierarchy (core imports no metrics library)."""
    return any(
        c.__name__ == "Metric" and c.__module__.startswith("torchmetrics") for c in type(module).__mro__
    )


def _metrics(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if _is_metric(m)]


def _metric_state(metric: nn.Module) -> dict[str, Any]:
    names = [*getattr(metric, "_defaults", {}), "_update_count", "_computed", "_forward_cache"]
    return {n: _copy_value(vars(metric)[n]) for n in names if n in vars(metric)}


def _copy_value(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, list):
        return [_copy_value(v) for v in value]
    return copy.copy(value)


def _public_plain_attributes(module: nn.Module) -> dict[str, tuple[Any, Any]]:
    """name → (the object, a copy of its contents) for the module's public plain attributes."""
    saved = {}
    for name, value in vars(module).items():
        if name.startswith("_") or not isinstance(value, _PLAIN) or isinstance(value, nn.Parameter):
            continue
        contents = copy.copy(value) if isinstance(value, (list, dict, set)) else None
        saved[name] = (value, contents)
    return saved


def _put_back(module: nn.Module, saved: dict[str, tuple[Any, Any]]) -> None:
    for name in [n for n in vars(module) if not n.startswith("_") and n not in saved]:
        if isinstance(vars(module)[name], _PLAIN):  # plain values the call added
            delattr(module, name)
    for name, (value, contents) in saved.items():
        if isinstance(value, list):
            value[:] = contents
        elif isinstance(value, (dict, set)):
            value.clear()
            value.update(contents)
        object.__setattr__(module, name, value)


@contextlib.contextmanager
def quiet_call(module: nn.Module) -> Iterator[None]:
    """Run the user's code on ``module`` leaving no trace that training would see.

    Silences ``log``/``log_dict``, restores ``torchmetrics`` states, the module's public plain
    attributes and every random stream (see the module docstring).

    Example:
        >>> class Net(nn.Linear):
        ...     def step(self, x):
        ...         self.seen.append(len(x))
        ...         return self(x).sum()
        >>> net = Net(2, 1)
        >>> net.seen = []
        >>> with quiet_call(net):
        ...     _ = net.step(torch.zeros(3, 2))
        >>> net.seen
        []
    """
    had_log = {n: n in vars(module) for n in ("log", "log_dict")}
    metrics = [(m, _metric_state(m)) for m in _metrics(module)]
    attributes = _public_plain_attributes(module)
    object.__setattr__(module, "log", _no_log)
    object.__setattr__(module, "log_dict", _no_log)
    try:
        with preserve_rng_state():
            yield
    finally:
        for name, had in had_log.items():
            if not had:
                object.__delattr__(module, name)
        _put_back(module, attributes)
        for metric, state in metrics:
            for name, value in state.items():
                object.__setattr__(metric, name, value)


# ------------------------------------------------------------------ loss forms
class _Resolved:
    """A resolved loss form (:func:`resolve_loss_fn` gives it back as it is)."""

    __qualname__: str


class _TrainingStepLoss(_Resolved):
    """``model.training_step(batch[, 0])`` under :func:`quiet_call`."""

    def __init__(self, module: nn.Module, name: str = "loss_fn", given: str = "None") -> None:
        if not _has_training_step(module):
            raise ValueError(
                f"`{name}={given}` measures the model's own training_step, which "
                f"{type(module).__name__} lacks: give another `{name}`."
            )
        if getattr(module, "automatic_optimization", True) is False:
            raise ValueError(
                f"`{name}={given}` (the module's own training loss) is what training_step returns, but "
                f"{type(module).__name__} uses manual optimization (automatic_optimization = False), "
                "whose training_step steps the optimizers itself: give "
                f"`{name}` (a method name such as 'compute_loss', or a function loss_fn(model, batch))."
            )
        self.__qualname__ = "training_step"
        self.with_batch_idx = _takes_batch_idx(getattr(module, "training_step"))  # noqa: B009

    def __call__(self, model: nn.Module, batch: Any) -> Any:
        step = getattr(model, "training_step")  # noqa: B009  (a LightningModule's method)
        with quiet_call(model):
            return step(batch, 0) if self.with_batch_idx else step(batch)


class _MethodLoss(_Resolved):
    """``model.<name>(batch)`` under :func:`quiet_call`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.__qualname__ = name

    def __call__(self, model: nn.Module, batch: Any) -> Any:
        with quiet_call(model):
            return getattr(model, self.name)(batch)


class _FunctionLoss(_Resolved):
    """A user's ``loss_fn(model, batch)`` under :func:`quiet_call`."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.__qualname__ = getattr(function, "__qualname__", type(function).__name__)

    def __call__(self, model: nn.Module, batch: Any) -> Any:
        with quiet_call(model):
            return self.function(model, batch)


class _CriterionLoss(_Resolved):
    """``criterion(model(x), y)`` on ``(x, y, ...)`` batches, as PyHessian users write it."""

    def __init__(self, criterion: nn.Module) -> None:
        self.criterion = criterion
        self.__qualname__ = type(criterion).__name__

    def __call__(self, model: nn.Module, batch: Any) -> Any:
        if not isinstance(batch, (list, tuple)) or len(batch) < 2:
            raise TypeError(
                f"`loss_fn` {type(self.criterion).__name__} is applied to model(x) and y of (x, y, ...) "
                f"batches; got a batch of type {type(batch).__name__}. Give `loss_fn` as a function "
                "loss_fn(model, batch), a method name, or None for the module's own training loss."
            )
        with quiet_call(model):
            return self.criterion(model(batch[0]), batch[1])


def _import_loss(path: str, argument: str = "loss_fn") -> LossFn:
    """A dotted path: a function ``loss_fn(model, batch)``, or a loss class built without arguments."""
    module_name, _, name = path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"`{argument}` {path!r} cannot be imported: {exc}.") from exc
    if isinstance(found, type) and issubclass(found, nn.Module):
        return _CriterionLoss(found())
    if not callable(found):
        raise ValueError(f"`{argument}` {path!r} names {type(found).__name__}, not a function.")
    return _FunctionLoss(found)


def resolve_loss_fn(spec: LossSpec, model: nn.Module, name: str = "loss_fn") -> LossFn:
    """The core's ``loss_fn(model, batch)`` for a ``loss_fn`` form (see the module docstring).

    A resolved loss resolves to itself; the cross-entropy resolves to
    :data:`~lightning_landscape.core.base.losses.CROSS_ENTROPY_LOSS`.

    Raises:
        TypeError: naming ``name``: a value that is no loss form.
        ValueError: naming ``name``: a form that cannot work with ``model`` (``"training_step"``
            without one, a module with manual optimization and the default loss, a method name the
            model lacks, a dotted path that cannot be imported).

    Example:
        >>> resolve_loss_fn(None, nn.Linear(2, 2)) is CROSS_ENTROPY_LOSS  # no training_step of its own
        True
        >>> resolve_loss_fn("compute_loss", nn.Linear(2, 2))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: `loss_fn` 'compute_loss' is neither 'training_step', 'cross_entropy', a method of ...
    """
    if isinstance(spec, _Resolved) or spec is CROSS_ENTROPY_LOSS:
        return spec
    check_loss_spec(name, spec)
    if spec is None:
        return _TrainingStepLoss(model, name) if _has_training_step(model) else CROSS_ENTROPY_LOSS
    if isinstance(spec, str):
        if spec == "training_step":
            return _TrainingStepLoss(model, name, given="'training_step'")
        if spec == CROSS_ENTROPY:
            return CROSS_ENTROPY_LOSS
        if callable(getattr(model, spec, None)):
            return _MethodLoss(spec)
        if "." in spec:
            return _import_loss(spec, name)
        raise ValueError(
            f"`{name}` {spec!r} is neither 'training_step', 'cross_entropy', a method of "
            f"{type(model).__name__}, nor a dotted path of a function loss_fn(model, batch)."
        )
    if isinstance(spec, nn.Module):
        return _CriterionLoss(spec)
    return _FunctionLoss(spec)


def _has_training_step(model: nn.Module) -> bool:
    return callable(getattr(model, "training_step", None))


def move_criterion(spec: LossSpec, device: torch.device) -> None:
    """Move a loss module given as ``loss_fn`` (its buffers: class weights...) to ``device``."""
    if isinstance(spec, nn.Module):
        spec.to(device)


def _takes_batch_idx(step: Callable[..., Any]) -> bool:
    """Whether ``training_step`` takes a second positional argument (``batch_idx``)."""
    try:
        parameters = list(inspect.signature(step).parameters.values())
    except (TypeError, ValueError):
        return True
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in parameters)


# ------------------------------------------------------------------ losses of the experiments
def reverse_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """``−log(1 − p(y|x))`` of class logits, computed stably (Huang et al. 2020's distractor loss).

    ``log(1 − p_y) = logsumexp_{k≠y} z_k − logsumexp_k z_k``, with the target class masked out of
    the first log-sum-exp, so the loss and its gradient stay finite when ``p_y → 1`` in float32
    (``log(1 − softmax)`` would give ``−inf``). Minimizing it *mis*classifies the sample. For two
    classes it equals cross-entropy with the label flipped.

    Args:
        logits: ``(N, C)`` class logits, ``C ≥ 2``.
        target: ``(N,)`` integer labels.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Example:
        >>> logits = torch.tensor([[2.0, 0.0, -1.0]])
        >>> p = logits.softmax(-1)[0, 0]
        >>> torch.allclose(reverse_cross_entropy(logits, torch.tensor([0])), -torch.log(1 - p))
        True
    """
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"`logits` must have shape (N, C) with C >= 2, got {tuple(logits.shape)}.")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"`reduction` must be one of ('mean', 'sum', 'none'), got {reduction!r}.")
    everything = torch.logsumexp(logits, dim=-1)
    is_target = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, target.unsqueeze(-1), True)
    others = torch.logsumexp(logits.masked_fill(is_target, float("-inf")), dim=-1)
    loss = everything - others
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss
