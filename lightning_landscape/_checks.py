"""Argument validators shared by the public functions and callbacks.

Each raises a ``ValueError`` or ``TypeError`` whose message names the argument, the value received
and what is allowed, so that bad input fails at construction and never deep inside a computation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_int(name: str, value: Any, *, minimum: int) -> int:
    """Return ``value`` if it is an ``int`` no smaller than ``minimum``.

    >>> check_int("num_points", 21, minimum=2)
    21
    >>> check_int("num_points", 1, minimum=2)
    Traceback (most recent call last):
    ...
    ValueError: `num_points` must be an integer >= 2, got 1.
    """
    if not _is_int(value):
        raise TypeError(f"`{name}` must be an integer >= {minimum}, got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    return value


MAX_SEED = 2**63 - 1


def check_seed(name: str, value: Any) -> int:
    """Return ``value`` if it is an ``int`` a ``torch.Generator`` takes (``0 <= seed < 2**63``).

    >>> check_seed("seed", 2**64)
    Traceback (most recent call last):
    ...
    ValueError: `seed` must be an integer in [0, 2**63 - 1], got 18446744073709551616.
    """
    if not _is_int(value):
        allowed = "an integer in [0, 2**63 - 1]"
        raise TypeError(f"`{name}` must be {allowed}, got {value!r} ({type(value).__name__}).")
    if not 0 <= value <= MAX_SEED:
        raise ValueError(f"`{name}` must be an integer in [0, 2**63 - 1], got {value!r}.")
    return value


def check_params(name: str, value: Any) -> list[str] | None:
    """Return ``value`` as a list of glob patterns over parameter names (``None``: every trainable
    parameter; a string: one pattern).

    >>> check_params("params", "*.lora_*")
    ['*.lora_*']
    >>> check_params("params", [])
    Traceback (most recent call last):
    ...
    ValueError: `params` must be None, a glob pattern or a non-empty list of them (e.g. ['*.lora_*']), got [].
    """
    if value is None:
        return None
    patterns = [value] if isinstance(value, str) else value
    message = (
        f"`{name}` must be None, a glob pattern or a non-empty list of them (e.g. ['*.lora_*']), "
        f"got {value!r}."
    )
    if not isinstance(patterns, (list, tuple)):
        raise TypeError(message)
    if not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise ValueError(message)
    return list(patterns)


def check_optional_int(name: str, value: Any, *, minimum: int) -> int | None:
    """Like :func:`check_int`, but ``None`` is allowed and returned as is."""
    return None if value is None else check_int(name, value, minimum=minimum)


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``.

    >>> check_choice("normalization", "foo", ("filter", "layer", None))
    Traceback (most recent call last):
    ...
    ValueError: `normalization` must be one of ('filter', 'layer', None), got 'foo'.
    """
    allowed = tuple(allowed)
    # `True == 1`, so a bool must match a bool member by identity to count.
    is_member = any(a is value for a in allowed) if isinstance(value, bool) else value in allowed
    if not is_member:
        raise ValueError(f"`{name}` must be one of {allowed}, got {value!r}.")
    return value


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a ``bool``."""
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be True or False, got {value!r} ({type(value).__name__}).")
    return value


def check_positive_float(name: str, value: Any, *, maximum: float | None = None) -> float:
    """Return ``float(value)`` if it is a finite number > 0 (and ``<= maximum``).

    >>> check_positive_float("tol", 10**400)
    Traceback (most recent call last):
    ...
    ValueError: `tol` must be a finite number > 0, got a 401-digit integer.
    """
    allowed = "a finite number > 0" + ("" if maximum is None else f" and <= {maximum:g}")
    if _is_int(value) and abs(value) > 1e300:  # float() of it overflows
        raise ValueError(f"`{name}` must be {allowed}, got a {len(str(abs(value)))}-digit integer.")
    if not _is_real(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be {allowed}, got {value!r}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be {allowed}, got {value!r}.")
    return float(value)


def check_span(name: str, value: Any) -> tuple[float, float]:
    """Return ``value`` as a ``(low, high)`` pair of finite floats with ``low < high``.

    >>> check_span("span", [-1, 1])
    (-1.0, 1.0)
    >>> check_span("span", (1, -1))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: `span` must be a pair (low, high) of finite numbers with low < high and ..., got (1, -1).
    """
    message = (
        f"`{name}` must be a pair (low, high) of finite numbers with low < high and a finite "
        f"high - low, got {value!r}."
    )
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(message)
    pair = tuple(value)
    if len(pair) != 2 or not all(_is_real(v) and math.isfinite(v) for v in pair):
        raise ValueError(message)
    if not pair[0] < pair[1] or not math.isfinite(float(pair[1]) - float(pair[0])):
        raise ValueError(message)
    return float(pair[0]), float(pair[1])


def check_callable(name: str, value: Any) -> Any:
    """Return ``value`` if it is ``None`` or callable."""
    if value is not None and not callable(value):
        raise TypeError(f"`{name}` must be a callable or None, got {value!r} ({type(value).__name__}).")
    return value


def check_tag(name: str, value: Any) -> str:
    r"""Return ``value`` if it can prefix logger tags and file names: 1 to 100 printable characters,
    no slashes or spaces.

    >>> check_tag("tag", "a/b")
    Traceback (most recent call last):
    ...
    ValueError: `tag` must be 1 to 100 printable characters without '/', '\' or spaces, got 'a/b'.
    """
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= 100
        or not value.isprintable()
        or any(c in value for c in "/\\ ")
    ):
        raise ValueError(
            f"`{name}` must be 1 to 100 printable characters without '/', '\\' or spaces, got {value!r}."
        )
    return value


def memory_bytes() -> int:
    """This machine's physical memory in bytes (no allocation can be larger); 2**50 where the
    system does not say."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 2**50


def check_fits_in_memory(name: str, value: Any, nbytes: float, what: str) -> None:
    """Refuse a count whose arrays could never fit in this machine's memory, naming ``name`` and
    the estimated size, before anything is allocated.

    >>> check_fits_in_memory("num_points", 2**31, 40.0 * 2**62, "a 2D grid")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: `num_points` = 2147483648 needs about ... TB for a 2D grid, more than this machine's ...
    """
    limit = memory_bytes()
    if nbytes > limit:
        raise ValueError(
            f"`{name}` = {value!r} needs about {_size(nbytes)} for {what}, more than this machine's "
            f"{_size(limit)} of memory."
        )


def _size(nbytes: float) -> str:
    for unit, scale in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20)):
        if nbytes >= scale:
            return f"{nbytes / scale:.2g} {unit}"
    return f"{nbytes:.0f} bytes"
