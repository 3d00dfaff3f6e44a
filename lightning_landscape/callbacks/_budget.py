"""The time ledger behind the budgeted schedule: what the monitors of one trainer have spent.

Training time so far is the wall time since training started (plus the training time of the run a
checkpoint resumes) minus the time the monitors spent; a budgeted monitor whose run is due takes it
only if everything the monitors have spent, plus the run's estimated cost, stays within
``budget × training time``, and its own spending plus the estimate within its share of that,
``budget × training time / k`` for the k budgeted monitors of the trainer (so a cheap monitor
cannot take the whole budget at every epoch and starve an expensive one). Every monitor charges
its time here, budgeted or not, so a budgeted one sees what the others cost.

The clock is this module's ``clock`` (``time.perf_counter``), looked up at every reading so tests
can replace it.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

clock = time.perf_counter


class Ledger:
    """Seconds spent by the monitors of one ``fit``, and the training time they are measured against."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.offset = 0.0  # training seconds of the runs before a resume
        self.restored = 0.0  # monitor seconds of the runs before a resume
        self.spent: dict[str, float] = {}
        self.budgeted: set[str] = set()  # the monitors that share the budget

    def start(self) -> None:
        """Start the training clock (the first monitor to call it, when training starts)."""
        if self.started is None:
            self.started = clock()

    def register(self, key: str, spent: float, training_seconds: float) -> None:
        """A monitor resumed from a checkpoint: its past spending and the training time then."""
        self.spent[key] = self.spent.get(key, 0.0) + spent
        self.restored += spent
        self.offset = max(self.offset, training_seconds)

    def charge(self, key: str, seconds: float) -> None:
        self.spent[key] = self.spent.get(key, 0.0) + seconds

    def total(self) -> float:
        """Seconds spent by all monitors, resumed runs included."""
        return sum(self.spent.values())

    def training_seconds(self) -> float:
        """Training time so far: wall time since the start minus the monitors' time, plus the offset."""
        if self.started is None:
            return self.offset
        return max(self.offset + (clock() - self.started) - (self.total() - self.restored), 0.0)

    def affords(self, key: str, budget: float, estimate: float) -> bool:
        """Whether a run of monitor ``key`` costing ``estimate`` seconds keeps the monitors within
        ``budget`` and ``key`` within its share of it."""
        allowed = budget * self.training_seconds()
        share = allowed / max(len(self.budgeted), 1)
        return self.total() + estimate <= allowed and self.spent.get(key, 0.0) + estimate <= share


_LEDGERS: weakref.WeakKeyDictionary[Any, Ledger] = weakref.WeakKeyDictionary()


def new_ledger(trainer: Any) -> Ledger:
    """A fresh ledger for this trainer's next ``fit`` (every monitor calls it at ``setup``)."""
    _LEDGERS[trainer] = Ledger()
    return _LEDGERS[trainer]


def ledger_of(trainer: Any) -> Ledger:
    """This trainer's ledger (a fresh one if ``setup`` did not make one)."""
    if trainer not in _LEDGERS:
        return new_ledger(trainer)
    return _LEDGERS[trainer]
