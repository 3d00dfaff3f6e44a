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


def check_positive_float(name: str, value: Any) -> float:
    """Return ``float(value)`` if it is a finite number > 0."""
    if not _is_real(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}.")
    return float(value)


def check_span(name: str, value: Any) -> tuple[float, float]:
    """Return ``value`` as a ``(low, high)`` pair of finite floats with ``low < high``.

    >>> check_span("span", [-1, 1])
    (-1.0, 1.0)
    >>> check_span("span", (1, -1))
    Traceback (most recent call last):
    ...
    ValueError: `span` must be a pair (low, high) of finite numbers with low < high, got (1, -1).
    """
    message = f"`{name}` must be a pair (low, high) of finite numbers with low < high, got {value!r}."
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(message)
    pair = tuple(value)
    if len(pair) != 2 or not all(_is_real(v) and math.isfinite(v) for v in pair):
        raise ValueError(message)
    if not pair[0] < pair[1]:
        raise ValueError(message)
    return float(pair[0]), float(pair[1])


def check_callable(name: str, value: Any) -> Any:
    """Return ``value`` if it is ``None`` or callable."""
    if value is not None and not callable(value):
        raise TypeError(f"`{name}` must be a callable or None, got {value!r} ({type(value).__name__}).")
    return value


def check_tag(name: str, value: Any) -> str:
    r"""Return ``value`` if it can prefix logger tags and file names (no slashes or spaces).

    >>> check_tag("tag", "a/b")
    Traceback (most recent call last):
    ...
    ValueError: `tag` must be a non-empty string without '/', '\' or spaces, got 'a/b'.
    """
    if not isinstance(value, str) or not value or any(c in value for c in "/\\ "):
        raise ValueError(f"`{name}` must be a non-empty string without '/', '\\' or spaces, got {value!r}.")
    return value
