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

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, IterableDataset, default_collate

from .distributed import all_sum, is_sharded
from .losses import (
    CROSS_ENTROPY_LOSS,
    LossFn,
    check_class_logits,
    cross_entropy_inputs,
    is_class_logits,
    is_cross_entropy,
    resolve_loss_fn,
)
from .params import observing, preserve_rng_state
from .results import ResultFile

__all__ = [
    "CROSS_ENTROPY_LOSS",
    "LossFn",
    "EvaluationSums",
    "StreamedBatches",
    "batch_size",
    "batch_weights",
    "cache_batches",
    "check_batches",
    "check_class_logits",
    "check_model",
    "is_class_logits",
    "count_samples",
    "cross_entropy_and_correct",
    "evaluate",
    "evaluation_subset",
    "evaluation_sums",
    "is_cross_entropy",
    "loss_name",
    "loss_on",
    "loss_output",
    "map_batch",
    "mean_batch_loss",
    "module_device",
    "move_to_device",
    "slice_batch",
    "stream_batches",
    "total_samples",
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


def module_device(module: nn.Module) -> torch.device:
    """The device of the module's first parameter (or buffer); CPU for a module with neither."""
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def map_batch(batch: Any, leaf: Callable[[Any], Any]) -> Any:
    """``batch`` with ``leaf`` applied to every value that is not a container: the one walk over
    batch structures (tuples, lists, dicts, namedtuples and dataclasses, nested), which moving,
    slicing and copying batches share. A container ``leaf`` takes whole (a list of per-sample
    strings, say) is handed to it by returning something other than ``NotImplemented``.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Batch:
    ...     x: torch.Tensor
    ...     meta: dict
    >>> map_batch(Batch(torch.ones(2), {"y": torch.zeros(2)}), lambda t: t + 1 if torch.is_tensor(t) else t)
    Batch(x=tensor([2., 2.]), meta={'y': tensor([1., 1.])})
    """
    if isinstance(batch, (list, tuple)):
        whole = leaf(batch)
        if whole is not batch:
            return whole
    if isinstance(batch, Mapping):
        return type(batch)({k: map_batch(v, leaf) for k, v in batch.items()})
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(map_batch(v, leaf) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(map_batch(v, leaf) for v in batch)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        changed = {
            f.name: map_batch(getattr(batch, f.name), leaf) for f in dataclasses.fields(batch) if f.init
        }
        return dataclasses.replace(batch, **changed)
    return leaf(batch)


def batch_values(batch: Any) -> Iterator[Any]:
    """The values of a batch container, in order (none for a value that is no container)."""
    if isinstance(batch, Mapping):
        yield from batch.values()
    elif isinstance(batch, (list, tuple)):
        yield from batch
    elif dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        yield from (getattr(batch, f.name) for f in dataclasses.fields(batch))


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor of a batch (any structure :func:`map_batch` walks) to ``device``."""
    return map_batch(batch, lambda v: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v)


def batch_size(batch: Any) -> int:
    """The number of samples in ``batch``: the length of its first tensor, found through tuples,
    lists, dicts, namedtuples and dataclasses; a batch of a type of your own says it with an
    integer attribute ``batch_size``.

    >>> batch_size((torch.zeros(5, 3), torch.zeros(5)))
    5
    >>> class Tokens:
    ...     batch_size = 7
    >>> batch_size(Tokens())
    7
    """
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim > 0 else 1
    own = getattr(batch, "batch_size", None)
    if isinstance(own, int) and not isinstance(own, bool) and not isinstance(batch, (Mapping, list, tuple)):
        return own
    for value in batch_values(batch):
        try:
            return batch_size(value)
        except TypeError:
            continue
    raise TypeError(
        f"cannot tell the number of samples in a batch of type {type(batch).__name__}: expected a "
        "tensor, a tuple, list, dict, namedtuple or dataclass holding one, or an object with an integer "
        "attribute `batch_size`."
    )


def batch_weights(batches: Sequence[Any]) -> list[float]:
    """Each batch's share of all samples, so that weighted batch means give the per-sample mean.

    Inside :func:`~lightning_landscape.core.distributed.sharded` the share is of the samples of all
    processes, so the weighted means still have to be summed over processes.

    >>> batch_weights([torch.zeros(1), torch.zeros(3)])
    [0.25, 0.75]
    """
    sizes = [batch_size(b) for b in batches]
    total = sum(sizes)
    if is_sharded():  # each process holds a shard: weights are shares of all processes' samples
        total = int(all_sum(torch.tensor([float(total)], dtype=torch.float64)).item())
    return [size / total for size in sizes]


def mean_batch_loss(model: nn.Module, batch: Any, loss_fn: LossFn | None = None) -> torch.Tensor:
    """The mean loss of one batch: ``loss_fn(model, batch)``, else cross-entropy on ``(x, y)``."""
    if not is_cross_entropy(loss_fn):
        return loss_output(loss_fn(model, batch))[0]
    x, y = cross_entropy_inputs(batch)
    output = model(x)
    check_class_logits(output, y)
    return F.cross_entropy(output, y)


def _is_sample_list(value: list | tuple) -> bool:
    """A list of per-sample plain values (strings, numbers), as a collate function leaves them."""
    return bool(value) and all(isinstance(v, (str, bytes, int, float)) for v in value)


def slice_batch(batch: Any, start: int, stop: int) -> Any:
    """Samples ``start:stop`` of a batch: every tensor (and list of strings or numbers) along its
    first dimension, in any structure :func:`map_batch` walks; other values as they are.

    >>> slice_batch({"x": torch.arange(4), "id": ["a", "b", "c", "d"], "k": 7}, 1, 3)
    {'x': tensor([1, 2]), 'id': ['b', 'c'], 'k': 7}
    """

    def cut(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value[start:stop] if value.ndim > 0 else value
        if isinstance(value, (list, tuple)) and not hasattr(value, "_fields") and _is_sample_list(value):
            return type(value)(value[start:stop])
        return value

    return map_batch(batch, cut)


def cache_batches(
    batches: Iterable[Any],
    device: torch.device,
    num_samples: int | None = None,
    transfer: Callable[[Any], Any] | None = None,
) -> list[Any]:
    """Materialize ``batches`` on ``device``, keeping the first ``num_samples`` samples.

    The returned list is the fixed evaluation subset: iterate it as often as needed without
    touching the data loader again; reading it leaves every global random stream where it was.
    ``num_samples=None`` keeps every batch of a finite collection (one with ``len``: a list, a
    loader over a map-style data set); an iterable without ``len`` (a generator, an
    ``IterableDataset``'s loader, possibly endless) needs ``num_samples``, and no more than that is
    ever read from it. ``transfer(batch)``, when given, moves each batch instead of
    :func:`move_to_device` (e.g. through Lightning's batch hooks).

    >>> data = [(torch.zeros(4, 2), torch.zeros(4)), (torch.zeros(4, 2), torch.zeros(4))]
    >>> [batch_size(b) for b in cache_batches(data, torch.device("cpu"), num_samples=6)]
    [4, 2]
    """
    if isinstance(batches, StreamedBatches) and num_samples is None:
        return batches  # read afresh, batch by batch, on every pass: nothing is cached
    if num_samples is None and not hasattr(batches, "__len__"):
        raise ValueError(
            f"`batches` ({type(batches).__name__}) has no length and may never end: give `num_samples`, "
            "the number of samples to read from it."
        )
    if num_samples is not None and (
        isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1
    ):
        raise ValueError(f"`num_samples` must be an integer >= 1 or None, got {num_samples!r}.")
    cached: list[Any] = []
    remaining = num_samples
    with preserve_rng_state():  # a shuffling loader draws from the global stream: put it back
        for batch in batches:
            if remaining is not None and remaining <= 0:
                break
            size = batch_size(batch)
            if remaining is not None and size > remaining:
                batch = slice_batch(batch, 0, remaining)
                size = remaining
            cached.append(move_to_device(batch, device) if transfer is None else transfer(batch))
            if remaining is not None:
                remaining -= size
                if remaining <= 0:
                    break
    if not cached:
        raise ValueError("`batches` is empty: the landscape needs at least one batch of data.")
    return cached


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
    model: nn.Module, batches: Sequence[Any], loss_fn: LossFn | None = None
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
    batches, a generator, a :class:`~lightning_landscape.core.evaluation.StreamedBatches`. A
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
    model: nn.Module, batches: Iterable[Any], loss_fn: LossFn | None = None, *, num_samples: int | None = None
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


def evaluation_subset(
    loader: Any,
    num_samples: int,
    batch_size: int,
    seed: int,
    device: torch.device,
    *,
    rank: int = 0,
    world_size: int = 1,
    transfer: Callable[[Any], Any] | None = None,
) -> list[Any]:
    """Choose a fixed evaluation subset of a data loader's data and cache it on ``device``.

    With a map-style dataset behind ``loader`` (anything with ``.dataset`` supporting ``len`` and
    indexing), ``num_samples`` indices are drawn without replacement from a private generator seeded
    with ``seed`` (all of them if the data set is smaller), read in increasing order and collated
    with the loader's ``collate_fn`` into batches of ``batch_size``. The loader is never iterated, so
    its sampler and every global random stream are untouched, and every process gets the same
    subset. Otherwise (an iterable data set, or a plain iterable of batches), the first batches are
    taken until ``num_samples`` samples, with the global random streams restored afterwards.

    With ``world_size > 1`` (data parallelism) process ``rank`` keeps every ``world_size``-th of the
    chosen indices, starting at ``rank``: the shards are disjoint and together hold the same
    ``num_samples`` samples one process would use. From an iterable it takes its first
    ``⌈num_samples / world_size⌉`` samples (its loader is expected to yield its own shard), and
    never reads more, so an endless stream is fine.

    ``transfer(batch)`` moves each collated batch to the device instead of :func:`move_to_device`
    (the callbacks pass Lightning's batch hooks, so that the subset is what training sees).

    Example:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> data = TensorDataset(torch.arange(10.0).unsqueeze(1), torch.zeros(10, dtype=torch.long))
        >>> subset = evaluation_subset(DataLoader(data, shuffle=True), 4, 3, 0, torch.device("cpu"))
        >>> [batch_size(b) for b in subset]
        [3, 1]
    """
    from torch.utils.data import IterableDataset

    dataset = getattr(loader, "dataset", None)
    indexable = (
        dataset is not None
        and not isinstance(dataset, IterableDataset)
        and hasattr(dataset, "__len__")
        and hasattr(dataset, "__getitem__")
    )
    if not 0 <= rank < world_size:
        raise ValueError(f"`rank` must lie in [0, world_size={world_size}), got {rank}.")
    with preserve_rng_state():
        if not indexable:
            return cache_batches(loader, device, -(-num_samples // world_size), transfer)
        size = len(dataset)
        generator = torch.Generator().manual_seed(seed)
        chosen = torch.randperm(size, generator=generator)[: min(num_samples, size)]
        indices = chosen.sort().values.tolist()[rank::world_size]
        collate = getattr(loader, "collate_fn", None) or default_collate
        batches = [
            collate([dataset[i] for i in indices[start : start + batch_size]])
            for start in range(0, len(indices), batch_size)
        ]
        return cache_batches(batches, device, transfer=transfer)


class StreamedBatches:
    """A data loader read afresh on every pass, each batch moved to the device as it comes.

    What core functions take instead of a cached list when the data does not fit on the device
    (the whole training set of a paper-scale landscape): :func:`cache_batches` passes it through,
    so every pass over ``batches`` reads the loader again and at most the loader's prefetched
    batches live on the device at once. The loader must yield the same batches in the same order
    on every pass (no shuffling, no random augmentation outside the batch hooks, whose random
    streams ``transfer`` restores); :func:`stream_batches` builds one.

    Args:
        loader: a re-iterable of batches on the host (a ``DataLoader``).
        num_samples: the number of samples one pass yields (it is not counted by reading them).
        device: where batches go with :func:`move_to_device` when ``transfer`` is not given.
        transfer: ``transfer(batch)`` moves each batch (e.g. through Lightning's batch hooks).

    Example:
        >>> data = [(torch.zeros(4, 2), torch.zeros(4)), (torch.zeros(2, 2), torch.zeros(2))]
        >>> stream = StreamedBatches(data, 6, torch.device("cpu"))
        >>> [batch_size(b) for b in stream], count_samples(stream)
        ([4, 2], 6)
    """

    def __init__(
        self,
        loader: Iterable[Any],
        num_samples: int,
        device: torch.device | None = None,
        transfer: Callable[[Any], Any] | None = None,
    ) -> None:
        if transfer is None and device is None:
            raise ValueError("StreamedBatches needs `device` or `transfer` to move its batches.")
        self.loader = loader
        self.num_samples = int(num_samples)
        self.transfer = transfer if transfer is not None else (lambda batch: move_to_device(batch, device))

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            yield self.transfer(batch)

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]


def count_samples(batches: Iterable[Any]) -> int:
    """The number of samples in ``batches`` (a stream tells it without being read)."""
    if isinstance(batches, StreamedBatches):
        return batches.num_samples
    return sum(batch_size(b) for b in batches)


def total_samples(batches: Iterable[Any]) -> int:
    """The samples of ``batches`` on every process together: inside
    :func:`~lightning_landscape.core.distributed.sharded` the sum of every shard's count (a
    collective: every process calls it), else :func:`count_samples`. What results record as their
    ``num_samples``."""
    count = count_samples(batches)
    if is_sharded():
        count = int(all_sum(torch.tensor([float(count)], dtype=torch.float64)).item())
    return count


def stream_batches(
    loader: Any,
    batch_size: int,
    device: torch.device,
    *,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int | None = None,
    transfer: Callable[[Any], Any] | None = None,
) -> StreamedBatches:
    """Every sample of ``loader``'s data set, streamed in a fixed order (the whole-data counterpart
    of :func:`evaluation_subset`).

    Reads ``loader.dataset`` (map-style) in index order, in batches of ``batch_size`` collated with
    the loader's ``collate_fn``, with ``num_workers`` loader workers (default: the loader's own,
    kept alive between passes) and pinned host memory when ``device`` is a GPU, so that copies to
    it are asynchronous. Process ``rank`` of ``world_size`` reads every ``world_size``-th index
    from ``rank``: the shards are disjoint and together hold the data set once (no padding).
    The loader's sampler and every global random stream are untouched.

    Example:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> data = TensorDataset(torch.arange(10.0), torch.zeros(10))
        >>> stream = stream_batches(DataLoader(data, shuffle=True), 4, torch.device("cpu"))
        >>> [b[0].tolist() for b in stream][0], count_samples(stream)
        ([0.0, 1.0, 2.0, 3.0], 10)
    """
    from torch.utils.data import DataLoader, IterableDataset, Subset

    dataset = getattr(loader, "dataset", None)
    if dataset is None or isinstance(dataset, IterableDataset) or not hasattr(dataset, "__len__"):
        raise ValueError(
            "`num_samples='all'` streams the whole data set in a fixed order and needs a loader over a "
            f"map-style data set (with len and indexing); got {type(dataset).__name__}. Give an integer "
            "`num_samples` instead."
        )
    if not 0 <= rank < world_size:
        raise ValueError(f"`rank` must lie in [0, world_size={world_size}), got {rank}.")
    indices = list(range(rank, len(dataset), world_size))
    workers = getattr(loader, "num_workers", 0) if num_workers is None else num_workers
    shard = DataLoader(
        Subset(dataset, indices),
        batch_size=batch_size,
        shuffle=False,
        collate_fn=getattr(loader, "collate_fn", None) or default_collate,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0),  # the workers' seeds: never the global stream
    )
    return StreamedBatches(shard, len(indices), device, transfer)
