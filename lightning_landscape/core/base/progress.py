"""Progress of long work: a tqdm bar, a caller's callback, or nothing."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["progress_reporter"]

ProgressFn = Callable[[int], None]


def check_progress(name: str, value: Any) -> bool | ProgressFn:
    """``value`` if it is a bool (a progress bar or none) or a callable ``on_point(done)``."""
    if isinstance(value, bool) or callable(value):
        return value
    raise TypeError(
        f"`{name}` must be True, False or a callable taking the number of points done, "
        f"got {value!r} ({type(value).__name__})."
    )


@contextlib.contextmanager
def progress_reporter(progress: bool | ProgressFn, total: int, desc: str) -> Iterator[ProgressFn | None]:
    """Yield the ``on_point`` callback for ``progress``: a tqdm bar (``True``), the callable itself,
    or ``None`` (``False``). A bar is closed on exit."""
    if callable(progress):
        yield progress
        return
    if not progress:
        yield None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="pt", leave=False)
    try:
        yield lambda done: bar.update(done - bar.n)
    finally:
        bar.close()
