"""The randomization-tests example runs end to end (shrunk) and writes its figure and table."""

import pathlib
import subprocess
import sys

import pytest
import torch

pytest.importorskip("sklearn")

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "example_projects" / "random_labels" / "run.py"


def test_random_labels_script_writes_figure_and_table_for_every_network_and_variant(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--levels", "0", "1", "--max-epochs", "2"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    table = (tmp_path / "results.md").read_text()
    variants = ("true labels", "labels 100% corrupted", "shuffled pixels", "random pixels", "gaussian")
    for network in ("mlp", "cnn"):
        for variant in variants:
            assert f"| {network} | {variant} | 2 |" in table
    assert (tmp_path / "random_labels.png").stat().st_size > 20_000


def test_shuffled_pixels_permute_training_and_test_images_alike():
    sys.path[:0] = [str(SCRIPT.parent), str(SCRIPT.parents[1] / "digits")]
    import run
    from digits import DigitsDataModule

    digits = DigitsDataModule()
    digits.setup()
    train, test = run.variant_data("shuffled_pixels", digits)
    permutation = run.RandomizedDataset(digits.train_set, corruption="shuffled_pixels", seed=0).permutation
    assert not torch.equal(permutation, torch.arange(64))
    for shuffled, original in ((train, digits.train_set), (test, digits.test_set)):
        assert torch.equal(shuffled.tensors[0].flatten(1), original.tensors[0].flatten(1)[:, permutation])
    _, labels_test = run.variant_data("labels-1", digits)
    assert labels_test is digits.test_set  # corrupting labels leaves the test set as it is
