"""Batches: their structures, sizes and devices, and the data evaluated (a fixed subset cached on
the device, or the whole data set streamed)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import default_collate

from .distributed import all_sum, is_sharded
from .params import preserve_rng_state

__all__ = [
    "autograd_batch",
    "batch_size",
    "batch_weights",
    "cache_batches",
    "count_samples",
    "evaluation_subset",
    "map_batch",
    "move_to_device",
    "slice_batch",
    "stream_batches",
    "StreamedBatches",
    "total_samples",
]


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
        mapping: Any = type(batch)  # a dict or another mapping type built from a dict
        return mapping({k: map_batch(v, leaf) for k, v in batch.items()})
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

    Inside :func:`~lightning_landscape.core.base.distributed.sharded` the share is of the samples of all
    processes, so the weighted means still have to be summed over processes.

    >>> batch_weights([torch.zeros(1), torch.zeros(3)])
    [0.25, 0.75]
    """
    sizes = [batch_size(b) for b in batches]
    total = sum(sizes)
    if is_sharded():  # each process holds a shard: weights are shares of all processes' samples
        total = int(all_sum(torch.tensor([float(total)], dtype=torch.float64)).item())
    return [size / total for size in sizes]


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
        # read afresh, batch by batch, on every pass: nothing is cached. A stream stands where the
        # list would (every caller iterates, none indexes), which the annotation cannot say.
        return batches  # type: ignore[return-value]
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
        assert dataset is not None  # indexable
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
        if transfer is None:
            assert device is not None  # refused above otherwise
            target = device
            transfer = lambda batch: move_to_device(batch, target)  # noqa: E731
        self.transfer = transfer

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            yield self.transfer(batch)

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]  # a loader with a length (only then asked)


def count_samples(batches: Iterable[Any]) -> int:
    """The number of samples in ``batches`` (a stream tells it without being read)."""
    if isinstance(batches, StreamedBatches):
        return batches.num_samples
    return sum(batch_size(b) for b in batches)


def total_samples(batches: Iterable[Any]) -> int:
    """The samples of ``batches`` on every process together: inside
    :func:`~lightning_landscape.core.base.distributed.sharded` the sum of every shard's count (a
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
        >>> first = next(iter(stream))
        >>> first[0].tolist(), count_samples(stream)
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


def autograd_batch(batch: Any) -> Any:
    """Plain copies of inference-mode tensors, which autograd may not save for backward."""
    return map_batch(batch, lambda v: v.clone() if isinstance(v, torch.Tensor) and v.is_inference() else v)
