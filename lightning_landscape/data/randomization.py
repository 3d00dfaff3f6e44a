"""Zhang et al. 2017's randomization tests as a dataset wrapper."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch.utils.data import Dataset

from .._checks import check_bool, check_choice, check_int, check_seed

__all__ = ["RandomizedDataset"]

Corruption = Literal["labels", "shuffled_pixels", "random_pixels", "gaussian"]


def _pixels(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """View ``x`` as (channels, positions): images ``(C, H, W)`` keep a pixel's channels together."""
    if x.ndim == 3:
        return x.reshape(x.shape[0], -1), x.shape
    return x.reshape(1, -1), x.shape


class RandomizedDataset(Dataset):
    """A data set with its labels or inputs randomized, deterministically (Zhang et al. 2017).

    Every random choice comes from ``seed`` (and the item index), never from the global streams,
    so every epoch, worker and process sees the same randomized data.

    Args:
        dataset: a map-style data set of ``(x, y)`` pairs with tensor ``x`` and integer ``y``.
        corruption: what to randomize:

            - ``"labels"``: as in the paper, each label is independently, with probability
              ``fraction``, replaced by a class drawn uniformly from *all* ``C`` classes, so it
              keeps its value with probability ``1 − fraction + fraction/C`` (at ``fraction=1``
              about one label in ``C`` is still right, and a network trained on them scores at
              chance on true test labels). With ``exclude_true_label=True``: exactly
              ``round(fraction · n)`` items get a label drawn from the *other* classes, so every
              chosen label changes; at ``fraction=1`` that is a data set of complementary labels,
              from which a network learns "not the true class" and scores *below* chance (a
              ten-class test error near 100%, not 90%);
            - ``"shuffled_pixels"``: one fixed permutation of pixel positions for every image (the
              channels of a pixel stay together);
            - ``"random_pixels"``: a different fixed permutation for each image;
            - ``"gaussian"``: each image replaced by Gaussian noise with the data set's per-channel
              mean and standard deviation.

        fraction: ``"labels"`` only: the probability that a label is redrawn (0 to 1).
        seed: seed of every random choice.
        exclude_true_label: ``"labels"`` only: the rule that changes exactly ``round(fraction·n)``
            labels, each to another class (see above).
        num_classes: number of classes (default: largest label + 1).

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> data = TensorDataset(torch.zeros(10, 2), torch.arange(10) % 5)
        >>> exact = RandomizedDataset(data, fraction=0.5, seed=0, exclude_true_label=True)
        >>> sum(int(exact[i][1] != data[i][1]) for i in range(10))
        5
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        corruption: Corruption = "labels",
        fraction: float = 1.0,
        seed: int = 0,
        num_classes: int | None = None,
        exclude_true_label: bool = False,
    ) -> None:
        self.dataset = dataset
        self.corruption = check_choice(
            "corruption", corruption, ("labels", "shuffled_pixels", "random_pixels", "gaussian")
        )
        if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0.0 <= fraction <= 1.0:
            raise ValueError(f"`fraction` must be a number in [0, 1], got {fraction!r}.")
        self.fraction = float(fraction)
        self.seed = check_seed("seed", seed)
        self.exclude_true_label = check_bool("exclude_true_label", exclude_true_label)
        n = len(dataset)  # type: ignore[arg-type]  # a map-style Dataset (torch declares no __len__)
        labels = torch.tensor([int(dataset[i][1]) for i in range(n)])
        self.num_classes = (
            int(labels.max()) + 1 if num_classes is None else check_int("num_classes", num_classes, minimum=2)
        )
        if int(labels.min()) < 0 or int(labels.max()) >= self.num_classes:
            raise ValueError(
                f"`num_classes` ({self.num_classes}) must exceed every label of the data set; its labels "
                f"span [{int(labels.min())}, {int(labels.max())}]."
            )
        self.labels = labels.clone()
        generator = torch.Generator().manual_seed(seed)
        if corruption == "labels" and exclude_true_label:
            chosen = torch.randperm(n, generator=generator)[: round(self.fraction * n)]
            # a uniform draw among the other C − 1 classes: shift by 1..C−1 modulo C
            shift = torch.randint(1, self.num_classes, (len(chosen),), generator=generator)
            self.labels[chosen] = (labels[chosen] + shift) % self.num_classes
        elif corruption == "labels":  # Zhang et al.: each label redrawn with probability p from all C
            redrawn = torch.rand(n, generator=generator, dtype=torch.float64) < self.fraction
            drawn = torch.randint(0, self.num_classes, (n,), generator=generator)
            self.labels[redrawn] = drawn[redrawn]
        if corruption == "labels":
            self.changed = torch.nonzero(self.labels != labels).flatten()  # labels that differ now
        positions = _pixels(torch.as_tensor(dataset[0][0]))[0].shape[1]
        self.permutation = (
            torch.randperm(positions, generator=generator) if corruption == "shuffled_pixels" else None
        )
        if corruption == "gaussian":
            stacked = torch.stack([_pixels(torch.as_tensor(dataset[i][0]).double())[0] for i in range(n)])
            self.mean = stacked.mean(dim=(0, 2))
            self.std = stacked.std(dim=(0, 2))

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]  # as above: map-style, sized

    def _item_generator(self, index: int) -> torch.Generator:
        # below 2**63 for every seed check_seed takes (the same seeds as before for seeds < 2**43)
        return torch.Generator().manual_seed((self.seed * 1_000_003 + index + 1) % 2**63)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        if index < 0:  # ds[-1] is ds[len - 1], drawn from the same generator
            index += len(self)
        x, _ = self.dataset[index]
        x = torch.as_tensor(x)
        y = self.labels[index]
        if self.corruption == "labels":
            return x, y
        flat, shape = _pixels(x)
        if self.corruption == "shuffled_pixels":
            return flat[:, self.permutation].reshape(shape), y
        generator = self._item_generator(index)
        if self.corruption == "random_pixels":
            return flat[:, torch.randperm(flat.shape[1], generator=generator)].reshape(shape), y
        noise = torch.randn(flat.shape, generator=generator, dtype=torch.float64)
        image = noise * self.std.unsqueeze(1) + self.mean.unsqueeze(1)
        return image.to(x.dtype if x.is_floating_point() else torch.float32).reshape(shape), y
