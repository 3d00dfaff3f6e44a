"""Loss and accuracy of a model over a fixed list of batches, weighted per sample.

A *loss function* has the signature ``loss_fn(model, batch)`` and returns the mean loss over the
batch: a scalar tensor, or a mapping with the loss under ``"loss"`` and other scalar metrics beside
it (what a Lightning ``training_step`` may return; an ``"acc"`` or ``"accuracy"`` entry is recorded
as the accuracy). With ``loss_fn=None`` the batch must be ``(x, y, ...)``, ``model(x)`` class
logits ``(N, C)`` and ``y`` integer labels ``(N,)``: the loss is their cross-entropy and the
accuracy is recorded too; anything else is refused with an error naming ``loss_fn``.

Batch means are combined with weights equal to the batch sizes, so the result is the mean over
samples whatever the batching. Sums stay on the device; nothing synchronizes with the host until a
caller asks for the numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, IterableDataset

from .batches import batch_size, cache_batches, total_samples
from .losses import (
    LossFn,
    LossSpec,
    check_class_logits,
    cross_entropy_inputs,
    is_cross_entropy,
    resolve_loss_fn,
)
from .params import module_device, observing
from .results import ResultFile

__all__ = [
    "check_batches",
    "check_model",
    "cross_entropy_and_correct",
    "evaluate",
    "Evaluation",
    "evaluation_sums",
    "EvaluationSums",
    "loss_name",
    "loss_on",
    "loss_output",
    "mean_batch_loss",
]

ACCURACY_KEYS = ("acc", "accuracy")


class EvaluationSums(NamedTuple):
    """Per-sample mean loss and accuracy as 0-d tensors on the evaluation device.

    ``accuracy`` is ``None`` when it is not recorded (a ``loss_fn`` that returns no ``"acc"`` or
    ``"accuracy"`` entry). ``metrics`` holds the per-sample means of the other scalar entries a
    ``loss_fn`` returned beside its loss.
    """

    loss: torch.Tensor
    accuracy: torch.Tensor | None
    metrics: dict[str, torch.Tensor] = {}


def loss_output(output: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(loss, metrics)`` of what a ``loss_fn`` returned: a scalar tensor, or a mapping with ``"loss"``.

    The other entries of a mapping that are scalars (numbers or one-element tensors) are returned,
    detached, as metrics; the rest is ignored.

    >>> loss, metrics = loss_output({"loss": torch.tensor(2.0), "acc": 0.5, "logits": torch.zeros(3)})
    >>> float(loss), {k: float(v) for k, v in metrics.items()}
    (2.0, {'acc': 0.5})
    """
    if isinstance(output, Mapping):
        if "loss" not in output:
            raise TypeError(
                f"`loss_fn` returned a mapping without a 'loss' entry (keys: {sorted(map(str, output))})."
            )
        loss = output["loss"]
        metrics = {
            str(k): torch.as_tensor(v).detach().reshape(())
            for k, v in output.items()
            if k != "loss" and _is_scalar(v)
        }
    else:
        loss, metrics = output, {}
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError(
            "`loss_fn` must return a scalar tensor (the mean loss of the batch) or a mapping with one "
            f"under 'loss', got {_describe(loss)}."
        )
    return loss.reshape(()), metrics


def _is_scalar(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and not value.is_complex()
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"{value!r} ({type(value).__name__})"


def loss_name(loss_fn: LossFn | None) -> str:
    """How results name a loss: ``"cross_entropy"`` for the default, else the function's name."""
    return (
        "cross_entropy"
        if is_cross_entropy(loss_fn)
        else getattr(loss_fn, "__qualname__", type(loss_fn).__name__)
    )


def mean_batch_loss(model: nn.Module, batch: Any, loss_fn: LossFn | None = None) -> torch.Tensor:
    """The mean loss of one batch: ``loss_fn(model, batch)``, else cross-entropy on ``(x, y)``."""
    if not is_cross_entropy(loss_fn):
        return loss_output(loss_fn(model, batch))[0]
    x, y = cross_entropy_inputs(batch)
    output = model(x)
    check_class_logits(output, y)
    return F.cross_entropy(output, y)


def _full_precision(output: Any) -> Any:
    """Half-precision outputs (under autocast) as float32, so that the loss is reduced in float32."""
    if isinstance(output, torch.Tensor) and output.dtype in (torch.float16, torch.bfloat16):
        return output.float()
    return output


def cross_entropy_and_correct(
    logits: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy and number of correct predictions of class logits ``(N, C)``.

    One ``max`` gives both the stabilizing shift of the log-sum-exp and the predicted classes, so
    this costs about 40% of ``F.cross_entropy`` plus ``argmax`` on small class counts (the CPU
    ``log_softmax`` kernel is slow there); ties resolve to the first maximal class as with
    ``argmax``. Shifted logits are clamped at −80 before ``exp``: the row maximum contributes
    ``exp(0) = 1`` to the sum, so terms below ``e⁻⁸⁰ ≈ 1.8e-35`` vanish in float32 and float64 alike
    and the result is unchanged, but confident (trained) models no longer produce denormal numbers,
    which are several times slower on x86 CPUs. NaN still propagates.

    >>> logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    >>> loss, correct = cross_entropy_and_correct(logits, torch.tensor([0, 0]))
    >>> torch.allclose(loss, F.cross_entropy(logits, torch.tensor([0, 0]), reduction="sum")), int(correct)
    (True, 1)
    """
    top, predicted = logits.max(dim=-1)
    shifted = logits - top.unsqueeze(-1)
    log_normalizer = shifted.clamp_min(-80.0).exp().sum(dim=-1).log()
    loss = (log_normalizer - shifted.gather(-1, target.unsqueeze(-1)).squeeze(-1)).sum()
    return loss, (predicted == target).sum()


def evaluation_sums(
    model: nn.Module, batches: Iterable[Any], loss_fn: LossFn | None = None
) -> EvaluationSums:
    """Per-sample mean loss (and accuracy) of ``model`` over ``batches``, as device tensors.

    The caller chooses the grad mode and the train/eval mode; this function only runs forwards.
    """
    loss_total: torch.Tensor | float = 0.0
    correct_total: torch.Tensor | float = 0.0
    metric_totals: dict[str, torch.Tensor] = {}
    count = 0
    with_accuracy = True
    for batch in batches:
        size = batch_size(batch)
        if is_cross_entropy(loss_fn):
            x, y = cross_entropy_inputs(batch)
            output = _full_precision(model(x))
            check_class_logits(output, y)
            loss, correct = cross_entropy_and_correct(output, y)
            loss_total = loss_total + loss
            correct_total = correct_total + correct
        else:
            loss, metrics = loss_output(loss_fn(model, batch))
            loss_total = loss_total + _full_precision(loss) * size
            accuracy_key = next((k for k in ACCURACY_KEYS if k in metrics), None)
            if accuracy_key is None:
                with_accuracy = False
            else:
                correct_total = correct_total + metrics.pop(accuracy_key).double() * size
            for name, value in metrics.items():
                metric_totals[name] = metric_totals.get(name, 0.0) + value.double() * size
        count += size
    loss = torch.as_tensor(loss_total) / count
    accuracy = torch.as_tensor(correct_total) / count if with_accuracy else None
    return EvaluationSums(loss, accuracy, {name: total / count for name, total in metric_totals.items()})


@dataclass(frozen=True)
class Evaluation(ResultFile):
    """The per-sample mean loss (and accuracy) of a model on some data.

    Unpacks as ``loss, accuracy = evaluate(...)``, the pair :func:`evaluate` returned before it
    returned a result.

    Attributes:
        loss: the per-sample mean loss.
        accuracy: the fraction of correct predictions, ``None`` when the loss reports none.
        num_samples: the samples evaluated (every process's, inside ``sharded``).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import evaluate
        >>> result = evaluate(net, data)
        >>> result.num_samples, 0.0 <= result.accuracy <= 1.0
        (16, True)
    """

    loss: float
    accuracy: float | None
    num_samples: int

    def __iter__(self) -> Iterator[float | None]:
        return iter((self.loss, self.accuracy))


def check_model(model: Any, name: str = "model") -> nn.Module:
    """``model`` if it is a ``torch.nn.Module``; a state dict or anything else is refused.

    >>> check_model({"weight": torch.zeros(2)})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: `model` must be a torch.nn.Module (the network itself), got a dict: ...
    """
    if isinstance(model, nn.Module):
        return model
    hint = (
        "a state dict holds weights, not the network: build the network and load them into it "
        "(net.load_state_dict(state)), then pass the network."
        if isinstance(model, Mapping)
        else "pass the network (a LightningModule or any nn.Module)."
    )
    raise TypeError(
        f"`{name}` must be a torch.nn.Module (the network itself), got a {type(model).__name__}: {hint}"
    )


def check_batches(batches: Any, name: str = "batches") -> Any:
    """``batches`` if it can be iterated batch by batch: a ``DataLoader``, a list or tuple of
    batches, a generator, a :class:`~lightning_landscape.core.base.batches.StreamedBatches`. A
    map-style ``Dataset`` (which yields single samples) and a lone tensor are refused.

    >>> check_batches(torch.zeros(3, 2))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: `batches` must be an iterable of batches (a DataLoader, a list of (x, y) ...
    """
    if isinstance(batches, Dataset) and not isinstance(batches, IterableDataset):
        raise TypeError(
            f"`{name}` is a data set ({type(batches).__name__}), which yields single samples, not "
            "batches: wrap it in a DataLoader (torch.utils.data.DataLoader(data, batch_size=...))."
        )
    if isinstance(batches, (torch.Tensor, str, bytes, Mapping)) or not isinstance(batches, Iterable):
        raise TypeError(
            f"`{name}` must be an iterable of batches (a DataLoader, a list of (x, y) tuples, ...), got "
            f"{type(batches).__name__}."
        )
    return batches


def loss_on(model: nn.Module, batch: Any, loss_fn: LossFn | None, name: str = "loss_fn") -> torch.Tensor:
    """The mean loss of one batch (:func:`mean_batch_loss`), with whatever goes wrong in it refused
    as ``name``'s: the batch does not suit the loss's form, or the loss is no floating-point scalar."""
    try:
        loss = mean_batch_loss(model, batch, loss_fn)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, RuntimeError) as exc:
        raise ValueError(
            f"`{name}` ({loss_name(loss_fn)}) fails on an evaluation batch "
            f"({type(batch).__name__}): {type(exc).__name__}: {exc}"
        ) from exc
    if not loss.is_floating_point():
        raise ValueError(f"`{name}` ({loss_name(loss_fn)}) returned a {loss.dtype} value, not a float.")
    return loss


def evaluate(
    model: nn.Module, batches: Iterable[Any], *, loss_fn: LossSpec = None, num_samples: int | None = None
) -> Evaluation:
    """Plain evaluation: per-sample mean loss and accuracy of ``model`` in eval mode, no gradients.

    The model's state and flags are left as they were.

    Example:
        >>> net = nn.Linear(3, 2)
        >>> result = evaluate(net, [(torch.randn(8, 3), torch.randint(0, 2, (8,)))])
        >>> result.loss > 0, 0.0 <= result.accuracy <= 1.0, result.num_samples
        (True, True, 8)
        >>> loss, accuracy = result  # it unpacks as the pair it used to be
    """
    check_model(model)
    check_batches(batches)
    loss_fn = resolve_loss_fn(loss_fn, model)
    cached = cache_batches(batches, module_device(model), num_samples)
    with observing(model):
        loss_on(model, next(iter(cached)), loss_fn)  # what cannot work fails naming loss_fn
        sums = evaluation_sums(model, cached, loss_fn)
    accuracy = None if sums.accuracy is None else float(sums.accuracy)
    return Evaluation(float(sums.loss), accuracy, total_samples(cached))
