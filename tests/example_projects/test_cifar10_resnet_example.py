"""The CIFAR-10 ResNet example on tiny fake files in the real CIFAR-10 python format."""

import importlib.util
import os
import pathlib
import pickle
import sys

import numpy as np
import pytest
import torch
import yaml

from lightning_landscape import LossLandscapeMonitor, TrajectoryMonitor

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "example_projects" / "cifar10_resnet"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"cifar_example_{name}", EXAMPLE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(EXAMPLE))
    spec.loader.exec_module(module)
    return module


cifar = _load("cifar")


def write_fake_cifar10(root: pathlib.Path, per_batch: int = 6, test: int = 10, seed: int = 0) -> pathlib.Path:
    """Write data_batch_1..5, test_batch and batches.meta exactly as the official python version."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, count in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", test)]:
        entry = {
            "batch_label": f"fake {name}",
            "labels": rng.integers(0, 10, count).tolist(),
            "data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
            "filenames": [f"img_{i}.png" for i in range(count)],
        }
        with open(folder / name, "wb") as fh:
            pickle.dump(entry, fh, protocol=2)
    meta = {
        "num_cases_per_batch": per_batch,
        "label_names": [f"class{i}" for i in range(10)],
        "num_vis": 3072,
    }
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump(meta, fh, protocol=2)
    return root


def test_reader_agrees_with_torchvision_on_the_same_files(tmp_path, monkeypatch):
    torchvision = pytest.importorskip("torchvision")
    root = write_fake_cifar10(tmp_path)
    images, labels = cifar.read_cifar10(str(root), train=True)
    assert images.shape == (30, 3, 32, 32) and images.dtype == torch.uint8 and labels.shape == (30,)
    # torchvision checks md5 sums, which fake files cannot match: skip only that check
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    reference = torchvision.datasets.CIFAR10(str(root), train=True, download=False)
    assert torch.equal(images.permute(0, 2, 3, 1), torch.from_numpy(reference.data))  # theirs is HWC
    assert labels.tolist() == list(reference.targets)


def test_missing_files_give_a_clear_error(tmp_path):
    module = cifar.CIFAR10DataModule(root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py.*download=True"):
        module.setup()


def test_resnets_with_and_without_shortcuts():
    with_skip = cifar.cifar_resnet(20, skip=True)
    without = cifar.cifar_resnet(20, skip=False)
    x = torch.randn(2, 3, 32, 32)
    assert with_skip(x).shape == without(x).shape == (2, 10)
    projections = [
        m for m in with_skip.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1)
    ]
    assert len(projections) == 2  # stages 2 and 3 change the shape
    assert not [m for m in without.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1)]
    assert sum(1 for m in cifar.cifar_resnet(56).modules() if isinstance(m, cifar.BasicBlock)) == 27
    with pytest.raises(ValueError, match="6n"):
        cifar.cifar_resnet(21)


def test_lightning_cli_run_on_fake_cifar(tmp_path):
    root = write_fake_cifar10(tmp_path / "data")
    config = yaml.safe_load((EXAMPLE / "base.yaml").read_text())
    config["trainer"].update(max_epochs=2, enable_progress_bar=False, default_root_dir=str(tmp_path))
    config["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp_path / "logs")
    for callback in config["trainer"]["callbacks"]:
        if callback["class_path"].startswith("lightning_landscape."):
            callback["init_args"].update(every_n_epochs=1, num_points=3, num_samples=16, eval_batch_size=8)
    small = tmp_path / "base.yaml"
    small.write_text(yaml.safe_dump(config))
    run = yaml.safe_load((EXAMPLE / "resnet20_noshort.yaml").read_text())
    run["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp_path / "logs")
    run_file = tmp_path / "run.yaml"
    run_file.write_text(yaml.safe_dump(run))
    main = _load("main")
    cli = main.main(
        args=[
            "fit",
            "--config",
            str(small),
            "--config",
            str(run_file),
            "--data.root",
            str(root),
            "--data.batch_size",
            "8",
            "--data.num_workers",
            "0",
        ]
    )
    assert cli.model.hparams.skip is False and cli.model.hparams.depth == 20
    monitors = {type(c): c for c in cli.trainer.callbacks}
    assert monitors[LossLandscapeMonitor].last_result.num_samples == 16
    assert monitors[TrajectoryMonitor].snapshots.epochs == [0, 1, 2]
    assert os.path.isdir(os.path.join(cli.trainer.logger.log_dir, "trajectory"))


def test_a_crafted_batch_file_cannot_run_code(tmp_path):
    import pickle

    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "payload-ran"), "w"))

    root = write_fake_cifar10(tmp_path)
    target = next(root.rglob("data_batch_1"))
    with open(target, "wb") as fh:
        pickle.dump({"data": Payload(), "labels": [0]}, fh, protocol=2)
    cifar = _load("cifar")
    with pytest.raises(pickle.UnpicklingError, match="refusing .*open in a CIFAR-10 batch file"):
        cifar.read_cifar10(str(tmp_path), train=True)
    assert not (tmp_path / "payload-ran").exists()
