"""Two CPU processes under Lightning's ``ddp_spawn`` (gloo) give the single-process instruments.

Training is arranged so that DDP and one process take the same steps: no BatchNorm or dropout, one
full batch per epoch (64 samples in one process, 32 per process under DDP, whose averaged gradients
are the full-batch gradient). Every monitor then sees the same weights, and its numbers must agree
within float rounding, although each process evaluates only its half of the evaluation subset.
"""

import glob
import os
import time
from datetime import timedelta

import pytest
import torch
from ddp_problems import (
    LitMLP,
    RecordingLandscapeMonitor,
    WriteSpy,
    fails_on_rank_one,
    fails_on_rank_one_after_a_step,
    full_batch_loader,
)
from lightning.pytorch import Trainer
from lightning.pytorch.strategies import DDPStrategy

from lightning_landscape import LossLandscapeMonitor, SharpnessMonitor, SharpnessReport, TrajectoryMonitor
from lightning_landscape.core.base.results import LandscapeResult
from lightning_landscape.core.landscapes.trajectory import TrajectoryResult

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="needs torch.distributed with gloo",
)


def monitors(**extra):
    common = dict(num_samples=48, eval_batch_size=10, progress_bar=False, every_n_epochs=1, **extra)
    return [
        LossLandscapeMonitor(num_points=5, **common),
        SharpnessMonitor(measures=("top_eigenvalue", "keskar"), **common),
        TrajectoryMonitor(num_points=5, **common),
    ]


def fit(root, num_processes: int, callbacks, timeout_s: int = 120):
    strategy = (
        DDPStrategy(start_method="spawn", process_group_backend="gloo", timeout=timedelta(seconds=timeout_s))
        if num_processes > 1
        else "auto"
    )
    trainer = Trainer(
        default_root_dir=str(root),
        accelerator="cpu",
        devices=num_processes,
        strategy=strategy,
        callbacks=callbacks,
        max_epochs=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(LitMLP(), full_batch_loader(num_processes))


def results(root):
    folder = os.path.join(str(root), "landscape_logs", "version_0")  # no logger: a fresh folder
    files = lambda sub: sorted(glob.glob(os.path.join(folder, sub, "*.npz")))  # noqa: E731
    return files("landscapes"), files("sharpness"), files("trajectory")


def test_ddp_instruments_equal_one_process_and_only_rank_zero_writes(tmp_path):
    fit(tmp_path / "one", 1, monitors())
    records = tmp_path / "records"
    records.mkdir()
    fit(tmp_path / "ddp", 2, [*monitors(), WriteSpy(str(records), str(tmp_path / "ddp"))])

    one, ddp = results(tmp_path / "one"), results(tmp_path / "ddp")
    assert [len(f) for f in one] == [len(f) for f in ddp] == [3, 3, 1]
    for a, b in zip(one[0], ddp[0]):
        single, parallel = LandscapeResult.load(a), LandscapeResult.load(b)
        torch.testing.assert_close(parallel.loss, single.loss, rtol=1e-5, atol=0)
        torch.testing.assert_close(parallel.accuracy, single.accuracy, rtol=1e-5, atol=0)
    for a, b in zip(one[1], ddp[1]):
        single, parallel = SharpnessReport.load(a).scalars(), SharpnessReport.load(b).scalars()
        for key in ("top_eigenvalue", "center_loss"):
            assert parallel[key] == pytest.approx(single[key], rel=1e-5)
    single, parallel = TrajectoryResult.load(one[2][0]), TrajectoryResult.load(ddp[2][0])
    torch.testing.assert_close(parallel.landscape.loss, single.landscape.loss, rtol=1e-5, atol=0)
    torch.testing.assert_close(parallel.pca.coords, single.pca.coords, rtol=1e-5, atol=1e-6)

    rank_zero = (records / "rank0.txt").read_text().splitlines()
    # result files are written beside their name (``x.npz.<pid>.tmp``), then renamed onto it
    assert "figure" in rank_zero and any(".npz" in line for line in rank_zero)
    assert not (records / "rank1.txt").exists() or (records / "rank1.txt").read_text() == ""


@pytest.mark.parametrize("when", ["at_train_start", "in_the_grid"])
def test_ddp_failure_on_one_rank_fails_every_rank_without_hanging(tmp_path, when):
    records = tmp_path / "records"
    records.mkdir()
    loss_fn = fails_on_rank_one if when == "at_train_start" else fails_on_rank_one_after_a_step
    monitor = RecordingLandscapeMonitor(
        str(records), num_points=3, num_samples=32, loss_fn=loss_fn, progress_bar=False, every_n_epochs=1
    )
    start = time.monotonic()
    with pytest.raises(Exception, match="corrupt batch on rank 1|ShardFailure"):
        fit(tmp_path / "ddp", 2, [monitor], timeout_s=60)
    assert time.monotonic() - start < 60  # no collective waited for its timeout
    # both processes left the collective with our error
    assert (records / "error0.txt").read_text().startswith("ShardFailure: the evaluation failed on 1 other")
    error = (records / "error1.txt").read_text()
    if when == "at_train_start":  # the check before the first step names the loss
        assert error.startswith("ValueError: `loss_fn` (fails_on_rank_one) fails on an evaluation batch")
    assert error.endswith("RuntimeError: corrupt batch on rank 1")
