"""What the property-based suites saw, counted by outcome, for the summary at the end of a run.

Every example of a fuzz test is one of:

- ``clean``: refused with our error (``ValueError``/``TypeError`` naming the argument, or
  ``ResultFileError`` for a file);
- ``unclear``: refused with another exception, or an error that does not name the argument;
- ``accepted``: the call returned although the value is invalid (the suites draw only invalid
  values, so this is a value silently accepted);
- ``hang``: the call ran past :data:`HANG_SECONDS`.

``conftest.py`` prints the counts after the run and, with ``LL_FUZZ_REPORT=path``, writes them as
JSON.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator

OUTCOMES: defaultdict[str, Counter] = defaultdict(Counter)
"""suite → outcome → examples."""

HANG_SECONDS = 30


class _Hang(BaseException):
    """Raised by the alarm (a BaseException: the code under test cannot catch it as an error)."""


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Raise :class:`_Hang` in the main thread after ``seconds``."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def alarm(signum, frame):
        raise _Hang

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def outcome(call: Callable[[], object], is_clean: Callable[[BaseException], bool]) -> tuple[str, str]:
    """Run ``call`` and classify it (see the module docstring); the second item describes it."""
    try:
        with time_limit(HANG_SECONDS):
            call()
    except _Hang:
        return "hang", f"ran past {HANG_SECONDS} s"
    except Exception as exc:  # noqa: BLE001 - every exception is classified
        described = f"{type(exc).__name__}: {str(exc)[:300]}"
        return ("clean" if is_clean(exc) else "unclear"), described
    return "accepted", "returned"


def record(suite: str, result: tuple[str, str]) -> tuple[str, str]:
    OUTCOMES[suite][result[0]] += 1
    return result
