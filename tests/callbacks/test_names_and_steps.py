"""One epoch index and one step (issue 26, item 7): result files, PNGs and Lightning's own
checkpoints name the same epoch and step; ``{tag}/overhead`` is logged once per step; the per-batch
view uses the training batches and its logged median is the figure's; results print short."""

from __future__ import annotations

import os
import re
import warnings

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from problems import fit_classifier, mlp, vector_batches

import lightning_landscape as ll
from lightning_landscape.core.measures.report import per_batch


def _names(paths):
    return [os.path.basename(p) for p in paths]


def test_files_name_the_epoch_and_step_of_lightnings_checkpoints(tmp_path):
    landscape = ll.LossLandscapeMonitor(
        every_n_epochs=1, dims=1, num_points=3, num_samples=32, eval_batch_size=16
    )
    trajectory = ll.TrajectoryMonitor(num_points=3, num_samples=32, eval_batch_size=16)
    checkpoints = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_top_k=-1, filename="{epoch}-{step}")
    logger = CSVLogger(str(tmp_path), name="csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_classifier(
            tmp_path,
            [landscape, trajectory, checkpoints],
            seed=0,
            max_epochs=3,
            logger=logger,
            enable_checkpointing=True,
        )
    lightning = sorted(_names(os.listdir(tmp_path / "ckpt")))  # epoch=0-step=6.ckpt ...
    pairs = {tuple(map(int, re.findall(r"epoch=(\d+)-step=(\d+)", n)[0])) for n in lightning}
    ours = {
        tuple(map(int, re.findall(r"epoch=(\d+)-step=(\d+)", n)[0])) for n in _names(landscape.saved_files)
    }
    assert ours == pairs  # one result per epoch, named as Lightning names its checkpoint there
    (last,) = _names(trajectory.saved_files)  # drawn at the end of training: the last epoch's index
    assert tuple(map(int, re.findall(r"epoch=(\d+)-step=(\d+)", last)[0])) == max(pairs)
    assert ll.TrajectoryResult.load(trajectory.saved_files[0]).landscape is not None
    pngs = _names(os.listdir(os.path.join(logger.log_dir, "landscapes")))
    steps = {int(s) for n in pngs for s in re.findall(r"step=(\d+)\.png", n)}
    assert steps == {step for _, step in pairs}  # PNGs too, by the training step
    logger.finalize("success")
    rows = open(os.path.join(logger.log_dir, "metrics.csv")).read().splitlines()
    header = rows[0].split(",")
    column = header.index("trajectory/overhead")
    logged = [r.split(",") for r in rows[1:] if r.split(",")[column]]
    step_column = header.index("step")
    assert len({r[step_column] for r in logged}) == len(logged)  # once per step, the last one too


def test_the_per_batch_view_takes_training_sized_batches_and_logs_the_figures_median(tmp_path):
    monitor = ll.SharpnessMonitor(
        every_n_epochs=1, measures=["top_eigenvalue"], per_batch=True, num_samples=64, eval_batch_size=64
    )
    fit_classifier(tmp_path, [monitor], seed=0, max_epochs=1)
    sizes = monitor.last_result.per_batch.batch_sizes
    assert sizes.tolist() == [16, 16, 16, 16]  # the training loader's batch size, not 64
    values = monitor.last_result.per_batch.eigenvalues[:, 0]
    median = monitor.last_values["per_batch_top_eigenvalue/median"]
    assert median == pytest.approx(float(torch.tensor(values.tolist()).double().quantile(0.5)), rel=1e-6)
    import numpy as np

    assert median == pytest.approx(float(np.median(values.numpy())), rel=1e-6)  # the figure's title


def test_one_batch_has_no_spread_and_says_so():
    with pytest.warns(RuntimeWarning, match="per-batch curvature of 1 batch: no spread"):
        per_batch(mlp(), vector_batches()[:1])


def test_results_print_short_blockwise_iterates_and_sharpness_takes_the_curvature_measures():
    model, batches = mlp(), vector_batches()
    landscape = ll.compute_landscape(model, batches, num_points=11)
    assert len(repr(landscape)) < 700 and "tensor(shape=(11, 11)" in repr(landscape)
    blocks = ll.blockwise(ll.hessian_eigenvalues, model, batches, blocks="module", max_iter=6)
    assert list(blocks) == ["0", "2"] and len(blocks) == 2 and dict(blocks.items())["2"] is blocks["2"]
    top = ll.sharpness(model, batches, measure="top_eigenvalue")
    assert top.value == pytest.approx(float(ll.hessian_eigenvalues(model, batches, k=1).eigenvalues[0]))
    assert top.center_loss == pytest.approx(ll.evaluate(model, batches).loss)
    trace = ll.sharpness(model, batches, measure="trace")
    assert trace.value == pytest.approx(ll.hessian_trace(model, batches).estimate)


def test_a_subset_whose_weights_are_zero_is_said_to_be_flat_under_filter_normalization():
    model = mlp()
    with torch.no_grad():
        model[2].weight.zero_()  # an adapter's B at initialization
    with pytest.warns(RuntimeWarning, match=r"the weights of\s+\['2.weight'\] are all zero"):
        ll.compute_landscape(model, vector_batches(), num_points=3)
