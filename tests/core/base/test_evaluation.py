"""The fixed evaluation subset and per-sample weighted evaluation."""

import pytest
import torch
from problems import GlobalRNG
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from lightning_landscape.core.base.batches import batch_size, cache_batches, evaluation_subset

CPU = torch.device("cpu")


def _dataset(n=50):
    return TensorDataset(torch.arange(float(n)).unsqueeze(1), torch.arange(n) % 3)


def test_subset_is_fixed_by_seed_and_leaves_loader_and_rng_alone():
    loader = DataLoader(_dataset(), batch_size=7, shuffle=True)
    rng = GlobalRNG.capture()
    first = evaluation_subset(loader, 20, 8, seed=1, device=CPU)
    assert GlobalRNG.capture().equals(rng)
    again = evaluation_subset(loader, 20, 8, seed=1, device=CPU)
    other = evaluation_subset(loader, 20, 8, seed=2, device=CPU)
    assert [batch_size(b) for b in first] == [8, 8, 4]
    values = torch.cat([b[0] for b in first]).flatten()
    assert torch.equal(values, torch.cat([b[0] for b in again]).flatten())
    assert not torch.equal(values, torch.cat([b[0] for b in other]).flatten())
    assert len(set(values.tolist())) == 20 and torch.all(values[1:] > values[:-1])  # distinct, ordered


def test_subset_larger_than_dataset_takes_everything():
    subset = evaluation_subset(DataLoader(_dataset(10)), 100, 4, seed=0, device=CPU)
    assert sum(batch_size(b) for b in subset) == 10


class _Stream(IterableDataset):
    def __iter__(self):
        for i in range(30):
            yield torch.tensor([float(i)]), torch.tensor(i % 2)


def test_iterable_dataset_takes_first_samples_and_restores_rng():
    rng = GlobalRNG.capture()
    subset = evaluation_subset(DataLoader(_Stream(), batch_size=8), 12, 4, seed=0, device=CPU)
    assert GlobalRNG.capture().equals(rng)
    assert [batch_size(b) for b in subset] == [8, 4]


def test_batch_size_of_dicts_and_errors():
    assert batch_size({"x": torch.zeros(3, 2), "y": [1, 2, 3]}) == 3
    with pytest.raises(TypeError, match="number of samples"):
        batch_size({"a": 1})
    with pytest.raises(ValueError, match="empty"):
        cache_batches([], CPU)


def test_fused_cross_entropy_matches_float64_reference_ties_and_nonfinite():
    import torch.nn.functional as F

    from lightning_landscape.core.base.evaluation import cross_entropy_and_correct

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(257, 7, generator=g) * 6
    logits[:5] = 1.0  # ties: the first maximal class is the prediction, as with argmax
    target = torch.randint(0, 7, (257,), generator=g)
    loss, correct = cross_entropy_and_correct(logits, target)
    reference = F.cross_entropy(logits.double(), target, reduction="sum").item()
    assert loss.item() == pytest.approx(reference, rel=1e-6)
    assert int(correct) == int((logits.argmax(-1) == target).sum())
    huge = torch.tensor([[1e4, 0.0, -1e4]])
    assert torch.isfinite(cross_entropy_and_correct(huge, torch.tensor([1]))[0])
    assert torch.isnan(cross_entropy_and_correct(torch.tensor([[float("nan"), 0.0]]), torch.tensor([0]))[0])


def test_clamping_before_exp_changes_nothing_for_confident_logits():
    from lightning_landscape.core.base.evaluation import cross_entropy_and_correct

    g = torch.Generator().manual_seed(1)
    logits = torch.randn(512, 10, generator=g) * 90  # shifts far below -80: denormal territory
    target = torch.randint(0, 10, (512,), generator=g)
    shifted = logits - logits.max(-1, keepdim=True).values
    unclamped = (shifted.exp().sum(-1).log() - shifted.gather(-1, target[:, None]).squeeze(-1)).sum()
    loss, _ = cross_entropy_and_correct(logits, target)
    assert torch.equal(loss, unclamped)
    assert (shifted < -80).any()
