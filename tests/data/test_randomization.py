"""RandomizedDataset: exact counts, permutations, moments, determinism (issue 5, item 4)."""

import subprocess
import sys

import pytest
import torch
from torch.utils.data import TensorDataset

from lightning_landscape.data import RandomizedDataset


def _images(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 4, 5, generator=g) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    return TensorDataset(x, torch.randint(0, 10, (n,), generator=g))


@pytest.mark.parametrize("fraction", [0.0, 0.2, 0.6, 1.0])
def test_each_label_is_redrawn_from_all_classes_with_probability_fraction(fraction):
    """Zhang et al.'s rule: a label keeps its value with probability 1 − p + p/C."""
    n, classes = 20_000, 10
    data = TensorDataset(
        torch.zeros(n, 1), torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(1))
    )
    noisy = RandomizedDataset(data, corruption="labels", fraction=fraction, seed=3)
    kept = float((noisy.labels == data.tensors[1]).double().mean())
    assert abs(kept - (1 - fraction + fraction / classes)) < 0.02
    assert noisy.changed.tolist() == torch.nonzero(noisy.labels != data.tensors[1]).flatten().tolist()
    counts = torch.bincount(noisy.labels, minlength=classes).double() / n  # uniform draws keep balance
    assert float((counts - 0.1).abs().max()) < 0.02


@pytest.mark.parametrize("fraction", [0.0, 0.2, 0.5, 0.8, 1.0])
def test_exactly_round_fraction_n_labels_change_and_stay_fixed(fraction):
    data = _images(n=123)
    noisy = RandomizedDataset(data, corruption="labels", fraction=fraction, seed=3, exclude_true_label=True)
    changed = [i for i in range(123) if int(noisy[i][1]) != int(data[i][1])]
    assert len(changed) == round(fraction * 123)
    assert changed == noisy.changed.tolist()
    assert all(0 <= int(noisy[i][1]) < 10 for i in range(123))
    assert [int(noisy[i][1]) for i in range(123)] == [int(noisy[i][1]) for i in range(123)]  # every epoch
    assert all(torch.equal(noisy[i][0], data[i][0]) for i in range(5))


def test_shuffled_pixels_use_one_permutation_and_keep_channels_together():
    data = _images(n=20)
    shuffled = RandomizedDataset(data, corruption="shuffled_pixels", seed=0)
    x0, x1 = data[0][0], data[1][0]
    s0, s1 = shuffled[0][0], shuffled[1][0]
    permutation = shuffled.permutation
    assert not torch.equal(permutation, torch.arange(20))
    assert torch.equal(s0.reshape(3, -1), x0.reshape(3, -1)[:, permutation])
    assert torch.equal(s1.reshape(3, -1), x1.reshape(3, -1)[:, permutation])  # the same for every image
    assert torch.equal(s0.reshape(3, -1).sort(dim=1).values, x0.reshape(3, -1).sort(dim=1).values)


def test_random_pixels_differ_across_items_but_are_fixed_per_item():
    data = TensorDataset(
        torch.arange(20.0).repeat(6, 1).reshape(6, 1, 4, 5), torch.zeros(6, dtype=torch.long)
    )
    randomized = RandomizedDataset(data, corruption="random_pixels", seed=0)
    orders = [randomized[i][0].flatten() for i in range(6)]
    assert len({tuple(o.tolist()) for o in orders}) == 6  # a different permutation per image
    assert torch.equal(randomized[2][0], randomized[2][0])  # fixed across epochs
    assert all(torch.equal(o.sort().values, torch.arange(20.0)) for o in orders)  # a permutation


def test_gaussian_images_match_the_per_channel_moments():
    data = _images(n=400)
    gaussian = RandomizedDataset(data, corruption="gaussian", seed=0)
    x = torch.stack([gaussian[i][0] for i in range(400)]).double()
    original = data.tensors[0].double()
    n = x[:, 0].numel()
    for c in range(3):
        mean, std = original[:, c].mean(), original[:, c].std()
        assert abs(float(x[:, c].mean() - mean)) < 4 * float(std) / n**0.5
        assert float(x[:, c].std()) == pytest.approx(float(std), rel=0.05)
    assert int(gaussian[5][1]) == int(data[5][1])


SCRIPT = """
import torch
from torch.utils.data import TensorDataset
from lightning_landscape.data import RandomizedDataset

torch.manual_seed(SEED)  # the global stream must not matter
g = torch.Generator().manual_seed(0)
d = TensorDataset(torch.rand(30, 1, 3, 3, generator=g), torch.randint(0, 4, (30,), generator=g))
values = []
for corruption in ("labels", "random_pixels", "gaussian"):
    r = RandomizedDataset(d, corruption=corruption, fraction=0.5, seed=7)
    values += [round(r[i][0].sum().item(), 6) + 1000 * int(r[i][1]) for i in range(30)]
print(repr(values))
"""


def test_same_output_for_the_same_seed_in_another_process():
    here = {}
    exec(
        SCRIPT.replace("SEED", "1").replace("print(repr(values))", "here['values'] = values"), {"here": here}
    )
    there = subprocess.run(
        [sys.executable, "-c", SCRIPT.replace("SEED", "999")], capture_output=True, text=True, check=True
    ).stdout
    assert there.strip() == repr(here["values"])


def test_bad_arguments():
    with pytest.raises(ValueError, match="`corruption`"):
        RandomizedDataset(_images(5), corruption="blur")
    with pytest.raises(ValueError, match="`fraction`"):
        RandomizedDataset(_images(5), fraction=1.5)
