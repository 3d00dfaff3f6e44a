"""The budgeted schedule: runs are taken or skipped as the ledger says, on a fake clock.

Training advances the fake clock by 1 s per epoch (one batch), a monitor run by its ``run_cost``;
the pilot (the first estimate) by ``pilot_cost``. With budget 0.1, the run that is due at the end
of epoch e is taken when (all monitor seconds so far + the estimate) <= 0.1 × (e + 1) seconds of
training: the schedules below are worked out by hand from that rule.
"""

import os
from datetime import timedelta

import pytest
import torch
from ddp_problems import FakeClock, FakeCostMonitor, LitMLP, full_batch_loader
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.strategies import DDPStrategy
from problems import assert_same_training_end, training_end

from lightning_landscape import LossLandscapeMonitor, SharpnessMonitor
from lightning_landscape.callbacks import _budget

# pilot 0.05 s: first estimate 0.2 s (4 units of 8 samples); every run 0.27 s, after which the
# estimate is 0.27 s. Epoch 0: 0.05 + 0.2 > 0.1; 1: 0.25 > 0.2; 2: 0.25 <= 0.3, taken (spent 0.32);
# 3: 0.59 > 0.4; 4: 0.59 > 0.5; 5: 0.59 <= 0.6, taken (0.59); 6: 0.86 > 0.7; 7: 0.86 > 0.8;
# 8: 0.86 <= 0.9, taken (0.86); 9: 1.13 > 1.0; then the final run at the end of training.
TAKEN = [2, 5, 8]
SKIPPED = [0, 1, 3, 4, 6, 7, 9]


@pytest.fixture
def fake_clock(monkeypatch):
    FakeClock.now = 0.0
    monkeypatch.setattr(_budget, "clock", FakeClock.read)
    return FakeClock


def fit(root, callbacks, max_epochs=10, ckpt_path=None, **kwargs):
    trainer = Trainer(
        default_root_dir=str(root),
        accelerator="cpu",
        max_epochs=max_epochs,
        callbacks=callbacks,
        logger=kwargs.pop("logger", False),
        enable_checkpointing=kwargs.pop("enable_checkpointing", False),
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )
    model = LitMLP()
    trainer.fit(model, full_batch_loader(1), ckpt_path=ckpt_path)
    return trainer, model


def test_due_runs_are_taken_or_skipped_as_the_ledger_says_and_the_final_run_always(tmp_path, fake_clock):
    monitor = FakeCostMonitor(run_cost=0.27, pilot_cost=0.05)
    logger = CSVLogger(str(tmp_path), name="csv")
    fit(tmp_path, [FakeClock(), monitor], logger=logger)
    assert monitor.runs == TAKEN + [-1]
    assert monitor.skipped_epochs == SKIPPED
    assert monitor.spent_seconds == pytest.approx(0.05 + 4 * 0.27)
    logger.finalize("success")
    metrics = open(os.path.join(logger.log_dir, "metrics.csv")).read()
    assert "landscape/overhead" in metrics and "landscape/num_skipped" in metrics


def test_the_final_run_is_left_out_only_with_at_train_end_false(tmp_path, fake_clock):
    monitor = FakeCostMonitor(run_cost=0.27, pilot_cost=0.05, at_train_end=False)
    fit(tmp_path, [FakeClock(), monitor])
    assert monitor.runs == TAKEN


def test_monitors_share_one_budget(tmp_path, fake_clock):
    # a second monitor that runs every epoch at 0.02 s leaves the budgeted one less room
    fixed = FakeCostMonitor(run_cost=0.02, pilot_cost=0.0, every_n_epochs=1, tag="fixed")
    budgeted = FakeCostMonitor(run_cost=0.27, pilot_cost=0.05)
    fit(tmp_path, [FakeClock(), fixed, budgeted])
    assert fixed.runs == list(range(10))  # a fixed schedule ignores the budget
    # at the end of epoch e the fixed one has spent 0.02 (e + 1) before the budgeted one decides:
    # e = 0..2: 0.02 (e + 1) + 0.05 + 0.2 > 0.1 (e + 1); e = 3: 0.33 <= 0.4, taken (spent 0.40 in
    # all); 4..6: 0.42..0.46 + 0.27 > 0.5..0.7; 7: 0.75 <= 0.8, taken; 8, 9: 1.04 > 0.9, 1.06 > 1.0
    assert budgeted.runs == [3, 7, -1]


def test_every_n_epochs_ignores_the_budget_and_budget_none_means_every_epoch(tmp_path, fake_clock):
    fixed = FakeCostMonitor(run_cost=5.0, pilot_cost=5.0, every_n_epochs=3)
    every = FakeCostMonitor(run_cost=5.0, pilot_cost=5.0, budget=None, tag="every")
    fit(tmp_path, [FakeClock(), fixed, every])
    assert fixed.runs == [2, 5, 8, -1] and fixed.skipped_epochs == []
    assert every.runs == list(range(10))  # ran at the last epoch's end: no second run at the end


def test_a_resumed_run_keeps_its_budget(tmp_path, fake_clock):
    whole = FakeCostMonitor(run_cost=0.27, pilot_cost=0.05)
    checkpoints = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), every_n_epochs=1, save_top_k=-1)
    fit(tmp_path / "whole", [FakeClock(), whole, checkpoints], enable_checkpointing=True)
    assert whole.runs == TAKEN + [-1]

    FakeClock.now = 1000.0  # another process, another day: only differences of the clock count
    resumed = FakeCostMonitor(run_cost=0.27, pilot_cost=0.05)
    path = os.path.join(str(tmp_path / "ckpt"), "epoch=4-step=5.ckpt")
    fit(tmp_path / "resumed", [FakeClock(), resumed], ckpt_path=path)
    assert resumed.runs == [5, 8, -1]  # as in the uninterrupted run: no new pilot, same ledger
    assert resumed.skipped_epochs == SKIPPED
    assert resumed.spent_seconds == pytest.approx(whole.spent_seconds)


def test_training_is_bit_identical_under_every_schedule(tmp_path):
    _, plain = fit(tmp_path / "plain", [], max_epochs=4)
    end = training_end(plain)
    common = dict(dims=1, num_points=5, num_samples=32, eval_batch_size=16, progress_bar=False)
    schedules = [
        dict(),  # budgeted, on the real clock
        dict(budget=None),
        dict(every_n_epochs=2),
        dict(budget=1e-6),  # skips every due run, takes the final one
    ]
    for i, schedule in enumerate(schedules):
        monitors = [
            LossLandscapeMonitor(**common, **schedule),
            SharpnessMonitor(measures=("top_eigenvalue",), num_samples=32, progress_bar=False, **schedule),
        ]
        _, watched = fit(tmp_path / f"watched{i}", monitors, max_epochs=4)
        assert_same_training_end(end, training_end(watched))
        assert monitors[0].last_result is not None  # the final run at least


@pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="needs torch.distributed with gloo",
)
def test_ddp_processes_take_the_same_decisions_although_their_clocks_disagree(tmp_path):
    # rank 0's training advances its clock 1 s per epoch, rank 1's 100 s: on its own, rank 1
    # would take every run; the decisions are rank zero's, broadcast
    FakeClock.now = 0.0
    records = tmp_path / "records"
    records.mkdir()
    strategy = DDPStrategy(start_method="spawn", process_group_backend="gloo", timeout=timedelta(seconds=120))
    monitor = FakeCostMonitor(run_cost=0.27, pilot_cost=0.05, record_dir=str(records))
    try:
        fit(tmp_path, [FakeClock(per_batch=(1.0, 100.0)), monitor], devices=2, strategy=strategy)
    finally:
        _budget.clock = _budget.time.perf_counter  # spawn ran the workers elsewhere; be safe here
    runs = [(records / f"runs{rank}.txt").read_text() for rank in (0, 1)]
    assert runs[0] == runs[1] == " ".join(map(str, TAKEN + [-1]))


def test_a_budgeted_monitor_refuses_early_stopping_on_its_values_before_training(tmp_path):
    from lightning.pytorch.callbacks import EarlyStopping

    monitor = SharpnessMonitor(measures=("top_eigenvalue",), num_samples=16, progress_bar=False)
    stop = EarlyStopping(monitor="sharpness/top_eigenvalue", mode="min")
    model = LitMLP()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(
        default_root_dir=str(tmp_path),
        max_epochs=2,
        callbacks=[monitor, stop],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with pytest.raises(
        ValueError, match=r"EarlyStopping\(monitor='sharpness/top_eigenvalue'\).*every_n_epochs"
    ):
        trainer.fit(model, full_batch_loader(1))
    assert trainer.global_step == 0 and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # on its own overhead, or with a fixed schedule, it is fine
    ok = [
        SharpnessMonitor(measures=("top_eigenvalue",), num_samples=16, progress_bar=False, every_n_epochs=1),
        EarlyStopping(monitor="sharpness/top_eigenvalue", mode="min"),
    ]
    fit(tmp_path / "ok", ok, max_epochs=2)


def test_budgeted_monitors_share_the_budget_so_a_cheap_one_cannot_starve_an_expensive_one(
    tmp_path, fake_clock
):
    # a cheap monitor whose run costs the budget of a whole epoch (0.1 s) would, first come first
    # served, take the whole budget every time it fits and leave the expensive one (0.27 s) nothing;
    # with two budgeted monitors each may spend at most half of it
    cheap = FakeCostMonitor(run_cost=0.1, pilot_cost=0.025, tag="cheap")
    dear = FakeCostMonitor(run_cost=0.27, pilot_cost=0.05, tag="dear")
    fit(tmp_path, [FakeClock(), cheap, dear], max_epochs=12)
    assert [e for e in dear.runs if e >= 0], dear.runs  # an epoch-end run of the expensive one
    assert cheap.skipped_epochs  # the cheap one is held to its share
    training = 12.0
    assert cheap.spent_seconds <= 0.05 * training + 0.1 + 0.025  # its share, plus the final run and pilot
