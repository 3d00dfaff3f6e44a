"""The user's LightningModule as it is: its own loss, its batches through its batch hooks.

The pure-torch core takes ``loss_fn(model, batch)``; this module turns what a user writes in a
monitor, a YAML config or on the command line (``loss_fn``) into one, and gives the batch hooks
(``on_before_batch_transfer``, ``transfer_batch_to_device``, ``on_after_batch_transfer``, the
datamodule's where it overrides them, as Lightning chooses) as a ``transfer(batch)`` function, so
that instruments see exactly the batches and the loss training sees.

``loss_fn`` forms (:data:`LossSpec`):

- ``None`` (or ``"training_step"``): the module's own training loss,
  ``module.training_step(batch, batch_idx=0)`` (a
  tensor, or a dict with ``"loss"``; its other scalar entries become metrics, ``"acc"`` or
  ``"accuracy"`` the accuracy);
- ``"cross_entropy"``: the core's fused cross-entropy and accuracy on ``(x, y, ...)`` batches of
  class logits (the fast path for classifiers);
- the name of a method of the module, called as ``module.<name>(batch)``;
- a dotted import path of a function ``loss_fn(model, batch)`` (or of a loss class, built without
  arguments), or such a function itself;
- a loss module ``criterion(outputs, targets)`` (``torch.nn.CrossEntropyLoss(label_smoothing=0.1)``,
  say), applied to ``model(x)`` and ``y`` of ``(x, y, ...)`` batches.

Every call of the user's code runs under :func:`quiet_call`: ``self.log``/``self.log_dict``
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
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from .core.evaluation import LossFn, move_to_device
from .core.params import preserve_rng_state

__all__ = [
    "CROSS_ENTROPY",
    "LossSpec",
    "batch_transfer",
    "check_loss_spec",
    "move_criterion",
    "describe_loss",
    "quiet_call",
    "resolve_loss_fn",
]

LossSpec = str | nn.Module | Callable[..., Any] | None
"""What ``loss_fn`` accepts on the monitors and the CLI (see the module docstring)."""

CROSS_ENTROPY = "cross_entropy"
_PLAIN = (list, dict, set, int, float, bool, str, bytes, type(None), torch.Tensor)
_BATCH_HOOKS = ("on_before_batch_transfer", "transfer_batch_to_device", "on_after_batch_transfer")


def check_loss_spec(name: str, value: Any) -> LossSpec:
    """Return ``value`` if it is one of the ``loss_fn`` forms (checked further at setup).

    >>> check_loss_spec("loss_fn", 3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: `loss_fn` must be None (the module's own training loss), 'cross_entropy', ...; got 3 (int).
    """
    if value is None or callable(value) or (isinstance(value, str) and value.strip()):
        return value
    raise TypeError(
        f"`{name}` must be None (the module's own training loss), 'cross_entropy', the name of a "
        "method of the module, a dotted path of a function loss_fn(model, batch), such a function, "
        f"or a loss module criterion(outputs, targets); got {value!r} ({type(value).__name__})."
    )


def describe_loss(spec: LossSpec) -> str:
    """How results name the loss: ``"training_step"``, ``"cross_entropy"``, a method or function name."""
    if spec is None:
        return "training_step"
    if isinstance(spec, str):
        return spec
    if isinstance(spec, nn.Module):
        return type(spec).__name__
    return getattr(spec, "__qualname__", type(spec).__name__)


# ------------------------------------------------------------------ guards
def _no_log(*args: Any, **kwargs: Any) -> None:
    return None


def _metrics(module: nn.Module) -> list[nn.Module]:
    try:
        from torchmetrics import Metric
    except ImportError:  # pragma: no cover - torchmetrics comes with Lightning
        return []
    return [m for m in module.modules() if isinstance(m, Metric)]


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
class _TrainingStepLoss:
    """``model.training_step(batch[, 0])`` under :func:`quiet_call`."""

    def __init__(self, module: nn.Module) -> None:
        from lightning.pytorch.utilities.signature_utils import is_param_in_hook_signature

        self.__qualname__ = "training_step"
        self.with_batch_idx = is_param_in_hook_signature(module.training_step, "batch_idx", min_args=2)

    def __call__(self, model: nn.Module, batch: Any) -> Any:
        with quiet_call(model):
            return model.training_step(batch, 0) if self.with_batch_idx else model.training_step(batch)


class _MethodLoss:
    """``model.<name>(batch)`` under :func:`quiet_call`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.__qualname__ = name

    def __call__(self, model: nn.Module, batch: Any) -> Any:
        with quiet_call(model):
            return getattr(model, self.name)(batch)


class _FunctionLoss:
    """A user's ``loss_fn(model, batch)`` under :func:`quiet_call`."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.__qualname__ = getattr(function, "__qualname__", type(function).__name__)

    def __call__(self, model: nn.Module, batch: Any) -> Any:
        with quiet_call(model):
            return self.function(model, batch)


class _CriterionLoss:
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


def _import_loss(path: str) -> LossFn:
    """A dotted path: a function ``loss_fn(model, batch)``, or a loss class built without arguments."""
    module_name, _, name = path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"`loss_fn` {path!r} cannot be imported: {exc}.") from exc
    if isinstance(found, type) and issubclass(found, nn.Module):
        return _CriterionLoss(found())
    if not callable(found):
        raise ValueError(f"`loss_fn` {path!r} names {type(found).__name__}, not a function.")
    return _FunctionLoss(found)


def resolve_loss_fn(spec: LossSpec, module: nn.Module) -> LossFn | None:
    """The core's ``loss_fn(model, batch)`` for a ``loss_fn`` form (``None``: the fused cross-entropy).

    Raises:
        ValueError: naming ``loss_fn`` when the form cannot work with ``module`` (a module with
            manual optimization and ``loss_fn=None``, a method name the module lacks...).

    Example:
        >>> resolve_loss_fn("cross_entropy", nn.Linear(2, 2)) is None
        True
        >>> resolve_loss_fn("compute_loss", nn.Linear(2, 2))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: `loss_fn` 'compute_loss' is neither 'cross_entropy', a method of Linear, nor a dotted ...
    """
    if spec is None or spec == "training_step":
        if not callable(getattr(module, "training_step", None)):
            raise ValueError(
                f"`loss_fn=None` measures the module's own training_step, which {type(module).__name__} "
                "lacks: give `loss_fn`."
            )
        if getattr(module, "automatic_optimization", True) is False:
            raise ValueError(
                f"`loss_fn=None` measures the loss returned by training_step, but {type(module).__name__} "
                "uses manual optimization (automatic_optimization = False), whose training_step "
                "steps the optimizers itself: give `loss_fn` (a method name such as 'compute_loss', "
                "or a function loss_fn(model, batch))."
            )
        return _TrainingStepLoss(module)
    if isinstance(spec, str):
        if spec == CROSS_ENTROPY:
            return None
        if callable(getattr(module, spec, None)):
            return _MethodLoss(spec)
        if "." in spec:
            return _import_loss(spec)
        raise ValueError(
            f"`loss_fn` {spec!r} is neither 'cross_entropy', a method of {type(module).__name__}, nor a "
            "dotted path of a function loss_fn(model, batch)."
        )
    if isinstance(spec, nn.Module):
        return _CriterionLoss(spec)
    return _FunctionLoss(spec)


def move_criterion(spec: LossSpec, device: torch.device) -> None:
    """Move a loss module given as ``loss_fn`` (its buffers: class weights...) to ``device``."""
    if isinstance(spec, nn.Module):
        spec.to(device)


# ------------------------------------------------------------------ batches
def _hook_owner(name: str, module: nn.Module, datamodule: Any) -> Any:
    """The datamodule where it overrides the hook, else the module (Lightning's choice)."""
    if datamodule is not None:
        from lightning.pytorch import LightningDataModule
        from lightning.pytorch.utilities.model_helpers import is_overridden

        if isinstance(datamodule, LightningDataModule) and is_overridden(
            name, datamodule, LightningDataModule
        ):
            return datamodule
    return module


def batch_transfer(
    module: nn.Module, device: torch.device, datamodule: Any = None, dataloader_idx: int = 0
) -> Callable[[Any], Any]:
    """``transfer(batch)``: the batch as Lightning hands it to ``training_step`` on ``device``.

    Calls ``on_before_batch_transfer``, ``transfer_batch_to_device`` and ``on_after_batch_transfer``
    of the datamodule where it overrides them, else of the module (a plain ``nn.Module`` has none:
    the batch is only moved), with every random stream restored afterwards.

    Example:
        >>> transfer = batch_transfer(nn.Linear(2, 2), torch.device("cpu"))
        >>> transfer((torch.zeros(3, 2), torch.zeros(3)))[0].shape
        torch.Size([3, 2])
    """
    hooks = [getattr(_hook_owner(n, module, datamodule), n, None) for n in _BATCH_HOOKS]
    if not all(callable(h) for h in hooks):
        return lambda batch: move_to_device(batch, device)
    before, to_device, after = hooks

    def transfer(batch: Any) -> Any:
        with preserve_rng_state():
            batch = before(batch, dataloader_idx)
            batch = to_device(batch, device, dataloader_idx)
            return after(batch, dataloader_idx)

    return transfer
