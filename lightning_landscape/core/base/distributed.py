"""Sums over processes, for evaluation subsets split across data-parallel processes.

Under data parallelism each process holds a shard of the evaluation subset. Inside
:func:`sharded`, every quantity that is a sum over samples (loss and accuracy sums, sample counts,
gradients, Hessian-vector products, per-sample gradient statistics) is passed through the given
``reduce_sum`` before it is used, so every process computes exactly the numbers one process would
compute on all shards, and every decision taken from them (a Lanczos step, a bisection, a crossing)
is the same on every process. This module creates no process group: the Lightning callbacks pass
``trainer.strategy.reduce``; outside :func:`sharded` (one process) nothing is reduced.

A failure on one process must not leave the others waiting in a collective. Work that touches the
local data therefore goes through :func:`guarded_sum`: a process whose computation raises still
takes part in the reduction, with a failure flag, and then every process raises.

Example:
    >>> double = lambda t: 2 * t  # what two processes holding the same shard would sum to
    >>> with sharded(double):
    ...     guarded_sum(lambda: torch.tensor([1.0, 3.0]), shape=(2,), dtype=torch.float64)
    tensor([2., 6.], dtype=torch.float64)
    >>> guarded_sum(lambda: torch.tensor([1.0, 3.0]), shape=(2,), dtype=torch.float64)
    tensor([1., 3.], dtype=torch.float64)
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from contextvars import ContextVar

import torch

__all__ = [
    "all_sum",
    "guarded_sum",
    "is_sharded",
    "ReduceSum",
    "sharded",
    "ShardFailure",
]

ReduceSum = Callable[[torch.Tensor], torch.Tensor]

_REDUCE_SUM: ContextVar[ReduceSum | None] = ContextVar("lightning_landscape_reduce_sum", default=None)


class ShardFailure(RuntimeError):
    """Raised on the processes whose own computation succeeded when another process's failed."""


@contextlib.contextmanager
def sharded(reduce_sum: ReduceSum | None) -> Iterator[None]:
    """Treat the evaluation data of this process as one shard; ``reduce_sum`` sums over all shards.

    ``reduce_sum(tensor)`` must return the element-wise sum of ``tensor`` over every process (a new
    tensor or the argument; it receives a private copy), and must be called by every process the
    same number of times, which the functions of this package guarantee. ``None`` means one
    process: nothing is reduced.
    """
    token = _REDUCE_SUM.set(reduce_sum)
    try:
        yield
    finally:
        _REDUCE_SUM.reset(token)


def is_sharded() -> bool:
    """Whether a reduction over processes is active."""
    return _REDUCE_SUM.get() is not None


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over processes (``tensor`` itself with one process)."""
    reduce_sum = _REDUCE_SUM.get()
    if reduce_sum is None:
        return tensor
    return reduce_sum(tensor.detach().clone())


def guarded_sum(
    compute: Callable[[], torch.Tensor],
    *,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``compute()`` summed over processes, raising on every process if it raised on any.

    With one process this is ``compute()`` itself (cast to ``dtype``). Otherwise the local value
    (zeros of ``shape`` if ``compute`` raised) travels with a failure count in one reduction; a
    process re-raises its own exception, the others raise :class:`ShardFailure`.
    """
    reduce_sum = _REDUCE_SUM.get()
    if reduce_sum is None:
        return compute().to(dtype).reshape(shape)
    error: BaseException | None = None
    try:
        local = compute().detach().to(dtype).reshape(-1)
    except Exception as exc:  # reported on every process after the reduction below
        error = exc
        local = torch.zeros(math.prod(shape), dtype=dtype, device=device)
    flag = torch.full((1,), 0.0 if error is None else 1.0, dtype=dtype, device=local.device)
    total = reduce_sum(torch.cat([local, flag]))
    failures = int(total[-1].item())
    if failures:
        if error is not None:
            raise error
        raise ShardFailure(
            f"the evaluation failed on {failures} other process(es); see their traceback. "
            "Every process stopped at the same point instead of waiting for the failed one."
        )
    return total[:-1].reshape(shape)
