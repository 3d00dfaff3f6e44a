"""Clean and distractor batches side by side, for :class:`AntiGeneralizationModule`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import cast

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset

from .._checks import check_callable, check_int, check_seed

__all__ = ["AntiGeneralizationDataModule"]


class AntiGeneralizationDataModule(pl.LightningDataModule):
    """Split a distractor set ``D_d`` off the training pool and feed ``(D_t, D_d)`` batch pairs.

    ``distractor_size`` samples of the training pool (chosen with ``seed``) become the distractor
    set; the model never trains on them with their labels, and the test/validation set is never
    touched. Training batches are ``{"train": (x, y), "distractor": (x, y)}`` from Lightning's
    ``CombinedLoader`` (``"max_size_cycle"``: the distractor loader cycles). Both loaders shuffle with
    their own seeded generators, so the global random streams are not consumed.

    Where the data distribution can be sampled (a generator such as the swiss roll's
    :func:`~lightning_landscape.data.two_spirals`), ``distractor_sampler`` replaces the fixed set
    by fresh distractors for every step, as in Huang et al.'s swiss-roll code, which anti-generalizes
    more strongly: nothing is split off the pool, and every training batch comes with
    ``distractor_batch_size`` new samples ``distractor_sampler(n, seed=s)``, the seeds ``s`` drawn
    in sequence from ``seed`` (a fresh data module repeats the same draws; a run resumed from a
    checkpoint restarts the sequence).

    Args:
        datamodule_or_datasets: a LightningDataModule with ``train_dataloader()`` (and optionally
            ``val_dataloader()``) whose training loader has a map-style ``.dataset``, or a pair
            ``(train_dataset, val_dataset)``.
        distractor_size: number of training-pool samples set aside as distractors (default 200;
            not with ``distractor_sampler``).
        seed: seed of the split, of the shuffling and of the fresh distractors.
        batch_size: training batch size (default: the wrapped loader's).
        distractor_batch_size: distractor batch size (default: ``batch_size``).
        num_workers: data-loader workers.
        distractor_sampler: ``sampler(n, seed=s) -> (x, y)``, ``n`` fresh samples of the data
            distribution with their true labels: distractors drawn anew for every step.

    Example:
        >>> from functools import partial
        >>> from lightning_landscape.data import SwissRollDataModule, two_spirals
        >>> data = AntiGeneralizationDataModule(
        ...     SwissRollDataModule(), distractor_sampler=partial(two_spirals, noise=0.5), batch_size=200
        ... )
        >>> data.setup()
        >>> batch, _, _ = next(iter(data.train_dataloader()))
        >>> len(data.train_set), tuple(batch["distractor"][0].shape)
        (200, (200, 2))
    """

    def __init__(
        self,
        datamodule_or_datasets: pl.LightningDataModule | tuple[Dataset, Dataset | None],
        *,
        distractor_size: int | None = None,
        seed: int = 0,
        batch_size: int | None = None,
        distractor_batch_size: int | None = None,
        num_workers: int = 0,
        distractor_sampler: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> None:
        super().__init__()
        self.source = datamodule_or_datasets
        self.distractor_sampler = check_callable("distractor_sampler", distractor_sampler)
        if distractor_sampler is not None and distractor_size is not None:
            raise ValueError(
                f"`distractor_size` ({distractor_size!r}) splits a fixed distractor set off the training "
                "pool; with `distractor_sampler` every step draws fresh distractors instead: give one of "
                "the two (the number drawn per step is `distractor_batch_size`)."
            )
        self.distractor_size = 0 if distractor_sampler is not None else 200
        if distractor_size is not None:
            self.distractor_size = check_int("distractor_size", distractor_size, minimum=1)
        self.seed = check_seed("seed", seed)
        self.batch_size = batch_size
        self.distractor_batch_size = distractor_batch_size
        self.num_workers = check_int("num_workers", num_workers, minimum=0)

    def setup(self, stage: str | None = None) -> None:
        pool, self.val_set = self._datasets(stage)
        size = len(pool)  # type: ignore[arg-type]  # torch's Dataset declares no __len__; map-style ones have it
        if self.distractor_size >= size:
            raise ValueError(
                f"`distractor_size` ({self.distractor_size}) must be smaller than the training pool ({size})."
            )
        if self.distractor_sampler is not None:
            self.train_indices = torch.arange(size)
            self.train_set = pool
            self.distractor_set = None
            return
        order = torch.randperm(size, generator=torch.Generator().manual_seed(self.seed))
        self.distractor_indices = order[: self.distractor_size].sort().values
        self.train_indices = order[self.distractor_size :].sort().values
        self.train_set = Subset(pool, self.train_indices.tolist())
        self.distractor_set = Subset(pool, self.distractor_indices.tolist())

    def _datasets(self, stage: str | None) -> tuple[Dataset, Dataset | None]:
        if isinstance(self.source, pl.LightningDataModule):
            self.source.setup(stage or "fit")
            loader = self.source.train_dataloader()
            self.batch_size = self.batch_size or loader.batch_size
            val = self.source.val_dataloader() if hasattr(self.source, "val_dataloader") else None
            return loader.dataset, None if val is None else val.dataset
        train, val = self.source
        return train, val

    def _loader(self, dataset: Dataset, batch_size: int, seed: int) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(seed),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> CombinedLoader:
        batch = self.batch_size or 64
        train = self._loader(self.train_set, batch, self.seed)
        if self.distractor_sampler is not None:
            fresh = _FreshDistractors(self.distractor_sampler, self.distractor_batch_size or batch, self.seed)
            # endless: the epoch ends with the training loader
            return CombinedLoader(
                {"train": train, "distractor": DataLoader(fresh, batch_size=None)}, "min_size"
            )
        loaders = {
            "train": train,
            "distractor": self._loader(
                cast(Dataset, self.distractor_set), self.distractor_batch_size or batch, self.seed + 1
            ),  # set in setup whenever no sampler draws fresh distractors
        }
        return CombinedLoader(loaders, mode="max_size_cycle")

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return DataLoader(self.val_set, batch_size=512, num_workers=self.num_workers)


class _FreshDistractors(IterableDataset):
    """Endless batches ``sampler(n, seed=s)``, the seeds drawn in sequence from ``seed`` (continuing
    across epochs, so no two steps see the same distractors)."""

    def __init__(self, sampler: Callable[..., tuple[torch.Tensor, torch.Tensor]], n: int, seed: int) -> None:
        self.sampler, self.n = sampler, n
        self.seeds = torch.Generator().manual_seed(seed + 1)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            yield self.sampler(self.n, seed=int(torch.randint(0, 2**62, (), generator=self.seeds)))
