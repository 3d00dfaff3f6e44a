"""Module-level pieces of the DDP tests: spawned processes must be able to import them."""

from __future__ import annotations

import builtins
import os
import time

import lightning.pytorch as pl
import matplotlib.figure
import torch
import torch.nn.functional as F
from problems import LitClassifier
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_landscape import LossLandscapeMonitor


class LitMLP(LitClassifier):
    """A small MLP without BatchNorm or dropout: DDP training equals full-batch training exactly."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed=seed, lr=0.5)
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3))


def full_batch_loader(num_processes: int, n: int = 64) -> DataLoader:
    """``n`` samples, one step per epoch whether one process reads them all or each reads its half."""
    generator = torch.Generator().manual_seed(11)
    x = torch.randn(n, 6, generator=generator)
    y = torch.randint(0, 3, (n,), generator=generator)
    return DataLoader(TensorDataset(x, y), batch_size=n // num_processes, shuffle=False)


def fails_on_rank_one(model, batch):
    """Cross-entropy, except that process 1 raises: a data error on one shard."""
    if torch.distributed.is_initialized() and torch.distributed.get_rank() == 1:
        raise RuntimeError("corrupt batch on rank 1")
    return F.cross_entropy(model(batch[0]), batch[1])


def fails_on_rank_one_after_a_step(model, batch):
    """As :func:`fails_on_rank_one`, once training has taken a step (past the check at train start)."""
    if model.trainer.global_step > 0:
        return fails_on_rank_one(model, batch)
    return F.cross_entropy(model(batch[0]), batch[1])


class WriteSpy(pl.Callback):
    """Records, per process, every file opened for writing under ``watched`` and every Figure made.

    Records go to ``<record_dir>/rank<r>.txt``.
    """

    def __init__(self, record_dir: str, watched: str) -> None:
        self.record_dir = record_dir
        self.watched = os.path.abspath(watched)

    def setup(self, trainer, pl_module, stage):
        rank = trainer.global_rank
        original_open = builtins.open
        original_figure_init = matplotlib.figure.Figure.__init__
        record = os.path.join(self.record_dir, f"rank{rank}.txt")
        watched = self.watched

        def note(line: str) -> None:
            with original_open(record, "a") as fh:
                fh.write(line + "\n")

        def spying_open(file, mode="r", *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+"):
                if os.path.abspath(os.fspath(file)).startswith(watched):
                    note(f"write {os.fspath(file)}")
            return original_open(file, mode, *args, **kwargs)

        def spying_figure_init(self, *args, **kwargs):
            note("figure")
            original_figure_init(self, *args, **kwargs)

        builtins.open = spying_open
        matplotlib.figure.Figure.__init__ = spying_figure_init


class RecordingLandscapeMonitor(LossLandscapeMonitor):
    """Writes what each process's run raised to ``<record_dir>/error<r>.txt``, then re-raises.

    It waits a moment before re-raising, so that the launcher, which stops every worker when one
    fails, does not stop the other before it has recorded its own outcome.
    """

    def __init__(self, record_dir: str, linger_s: float = 3.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.record_dir = record_dir
        self.linger_s = linger_s

    def run(self, trainer, pl_module):
        self._recorded(super().run, trainer, pl_module)

    def check_loss(self, trainer, pl_module):
        return self._recorded(super().check_loss, trainer, pl_module)

    def _recorded(self, work, trainer, pl_module):
        try:
            return work(trainer, pl_module)
        except Exception as exc:
            with open(os.path.join(self.record_dir, f"error{trainer.global_rank}.txt"), "w") as fh:
                fh.write(f"{type(exc).__name__}: {exc}")
            time.sleep(self.linger_s)
            raise


class FakeClock(pl.Callback):
    """Replaces the budget ledger's clock in this process by a fake one that only this callback's
    training batches (``per_batch[rank]`` seconds each) and :class:`FakeCostMonitor` advance."""

    now = 0.0

    def __init__(self, per_batch: tuple[float, ...] = (1.0,)) -> None:
        self.per_batch = per_batch

    @staticmethod
    def read() -> float:
        return FakeClock.now

    def setup(self, trainer, pl_module, stage):
        from lightning_landscape.callbacks import _budget

        _budget.clock = FakeClock.read

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        FakeClock.now += self.per_batch[min(trainer.global_rank, len(self.per_batch) - 1)]


class FakeCostMonitor(LossLandscapeMonitor):
    """A budgeted landscape monitor whose pilot costs ``pilot_cost`` and whose runs cost ``run_cost``
    seconds of :class:`FakeClock`, computing nothing; it records the epoch of every run (``-1`` for
    the one at the end of training), and with ``record_dir`` writes them to ``runs<rank>.txt``."""

    def __init__(self, run_cost: float, pilot_cost: float, record_dir: str | None = None, **kwargs) -> None:
        super().__init__(dims=1, num_points=3, num_samples=8, eval_batch_size=8, progress_bar=False, **kwargs)
        self.run_cost, self.pilot_cost, self.record_dir = run_cost, pilot_cost, record_dir
        self.runs: list[int] = []

    def pilot_pass(self, trainer, pl_module):
        FakeClock.now += self.pilot_cost

    def run(self, trainer, pl_module):
        FakeClock.now += self.run_cost
        self.mark_run(trainer)
        self.runs.append(trainer.current_epoch if self._hook == "epoch_end" else -1)
        if self.record_dir is not None:
            path = os.path.join(self.record_dir, f"runs{trainer.global_rank}.txt")
            with open(path, "w") as fh:
                fh.write(" ".join(map(str, self.runs)))
