"""Clean and distractor batches side by side, for :class:`AntiGeneralizationModule`."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader, Dataset, Subset

from .._checks import check_int, check_seed

__all__ = ["AntiGeneralizationDataModule"]


class AntiGeneralizationDataModule(pl.LightningDataModule):
    """Split a distractor set ``D_d`` off the training pool and feed ``(D_t, D_d)`` batch pairs.

    ``distractor_size`` samples of the training pool (chosen with ``seed``) become the distractor
    set; the model never trains on them with their labels, and the test/validation set is never
    touched. Training batches are ``{"train": (x, y), "distractor": (x, y)}`` from Lightning's
    ``CombinedLoader`` (``"max_size_cycle"``: the distractor loader cycles). Both loaders shuffle with
    their own seeded generators, so the global random streams are not consumed.

    Args:
        datamodule_or_datasets: a LightningDataModule with ``train_dataloader()`` (and optionally
            ``val_dataloader()``) whose training loader has a map-style ``.dataset``, or a pair
            ``(train_dataset, val_dataset)``.
        distractor_size: number of training-pool samples set aside as distractors.
        seed: seed of the split and of the shuffling.
        batch_size: training batch size (default: the wrapped loader's).
        distractor_batch_size: distractor batch size (default: ``batch_size``).
        num_workers: data-loader workers.
    """

    def __init__(
        self,
        datamodule_or_datasets: pl.LightningDataModule | tuple[Dataset, Dataset | None],
        *,
        distractor_size: int = 200,
        seed: int = 0,
        batch_size: int | None = None,
        distractor_batch_size: int | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.source = datamodule_or_datasets
        self.distractor_size = check_int("distractor_size", distractor_size, minimum=1)
        self.seed = check_seed("seed", seed)
        self.batch_size = batch_size
        self.distractor_batch_size = distractor_batch_size
        self.num_workers = check_int("num_workers", num_workers, minimum=0)

    def setup(self, stage: str | None = None) -> None:
        pool, self.val_set = self._datasets(stage)
        size = len(pool)  # type: ignore[arg-type]
        if self.distractor_size >= size:
            raise ValueError(
                f"`distractor_size` ({self.distractor_size}) must be smaller than the training pool ({size})."
            )
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
        loaders = {
            "train": self._loader(self.train_set, batch, self.seed),
            "distractor": self._loader(
                self.distractor_set, self.distractor_batch_size or batch, self.seed + 1
            ),
        }
        return CombinedLoader(loaders, mode="max_size_cycle")

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return DataLoader(self.val_set, batch_size=512, num_workers=self.num_workers)
