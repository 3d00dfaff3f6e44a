"""The user's module as it is: loss forms, the guards around the user's code, the batch hooks."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from problems import GlobalRNG
from torch import nn
from user_modules import ImageData, ManualOptimization, RegressionModule, SmallCNN

from lightning_landscape.core.base._inputs import check_loss_fn
from lightning_landscape.core.base.losses import CROSS_ENTROPY_LOSS
from lightning_landscape.user_module import (
    batch_transfer,
    check_loss_spec,
    describe_loss,
    quiet_call,
    resolve_loss_fn,
)


def _batch(n: int = 8):
    x, y = ImageData.tensors()
    return x[:n], y[:n]


# ---------------------------------------------------------------- guards around the user's code
def test_training_step_leaves_no_trace_on_the_module(monkeypatch):
    logged = []
    monkeypatch.setattr(pl.LightningModule, "log", lambda self, *a, **k: logged.append(a[0]))
    model = SmallCNN(noise=0.5).eval()
    model.training_step_outputs.append(torch.tensor(1.0))
    model.train_accuracy.update(torch.tensor([1, 0]), torch.tensor([1, 1]))
    before_metric = model.train_accuracy.compute()
    before_count = model.train_accuracy._update_count
    rng = GlobalRNG.capture()
    loss = resolve_loss_fn(None, model)
    first = loss(model, _batch())
    second = loss(model, _batch())
    assert logged == []  # self.log silenced
    assert len(model.training_step_outputs) == 1  # the list the step appends to is put back
    assert model.train_accuracy._update_count == before_count
    assert torch.equal(model.train_accuracy.compute(), before_metric)
    assert rng.equals(GlobalRNG.capture())  # every random stream restored...
    assert torch.equal(first["loss"], second["loss"])  # ...so the noisy step is one function
    assert "log" not in vars(model) and "log_dict" not in vars(model)
    model.training_step(_batch(), 0)  # outside the guard the module's own log works again
    assert logged == ["train_acc"]


def test_attributes_the_call_adds_are_removed_and_numbers_put_back():
    class Counting(nn.Linear):
        def step(self, x):
            self.calls += 1
            self.last_input = x
            self.history["n"] = len(x)
            return self(x).sum()

    net = Counting(2, 1)
    net.calls, net.history = 0, {}
    with quiet_call(net):
        net.step(torch.zeros(3, 2))
    assert net.calls == 0 and net.history == {} and not hasattr(net, "last_input")


# ---------------------------------------------------------------- loss forms
def test_every_loss_form_resolves_to_the_same_number_as_written_by_hand():
    model = SmallCNN(label_smoothing=0.2).eval()
    x, y = _batch()
    with torch.no_grad():
        logits = model(x)
    smoothed = F.cross_entropy(logits, y, label_smoothing=0.2)
    plain = F.cross_entropy(logits, y)
    with torch.no_grad():
        assert torch.allclose(resolve_loss_fn(None, model)(model, (x, y))["loss"], smoothed)
        assert resolve_loss_fn("cross_entropy", model) is CROSS_ENTROPY_LOSS  # the core's fused path
        assert torch.allclose(CROSS_ENTROPY_LOSS(model, (x, y)), plain)
        assert torch.allclose(resolve_loss_fn("training_step", model)(model, (x, y))["loss"], smoothed)
        assert torch.allclose(resolve_loss_fn("compute_loss", model)(model, (x, y)), plain)
        criterion = nn.CrossEntropyLoss(label_smoothing=0.2)
        assert torch.allclose(resolve_loss_fn(criterion, model)(model, (x, y)), smoothed)
        dotted = resolve_loss_fn("user_modules.smoothed_cross_entropy", model)
        assert torch.allclose(dotted(model, (x, y)), F.cross_entropy(logits, y, label_smoothing=0.1))
        assert torch.allclose(
            resolve_loss_fn(lambda m, b: F.cross_entropy(m(b[0]), b[1]), model)(model, (x, y)), plain
        )
    assert describe_loss(None) == "training_step" and describe_loss(criterion) == "CrossEntropyLoss"


@pytest.mark.parametrize(
    ("spec", "model", "match"),
    [
        (None, ManualOptimization(), "manual optimization"),
        ("compute_los", SmallCNN(), "neither 'training_step', 'cross_entropy', a method of SmallCNN"),
        ("user_modules.no_such_function", SmallCNN(), "cannot be imported"),
        ("training_step", nn.Linear(2, 2), "lacks"),
    ],
)
def test_forms_that_cannot_work_are_refused_naming_loss_fn(spec, model, match):
    with pytest.raises(ValueError, match=f"`loss_fn.*{match}"):
        resolve_loss_fn(spec, model)


def test_the_default_of_a_plain_module_is_the_cross_entropy_and_a_resolved_loss_resolves_to_itself():
    assert resolve_loss_fn(None, nn.Linear(2, 2)) is CROSS_ENTROPY_LOSS
    model = SmallCNN()
    own = resolve_loss_fn(None, model)
    assert (
        resolve_loss_fn(own, model) is own
        and resolve_loss_fn(CROSS_ENTROPY_LOSS, model) is CROSS_ENTROPY_LOSS
    )


def test_manual_optimization_works_with_a_method_name():
    model = ManualOptimization().eval()
    assert check_loss_fn(model, _batch(), resolve_loss_fn("compute_loss", model)) > 0


@pytest.mark.parametrize("bad", [3, "", b"ce", ["cross_entropy"]])
def test_construction_refuses_what_is_no_loss_form(bad):
    with pytest.raises(TypeError, match="`loss_fn` must be None"):
        check_loss_spec("loss_fn", bad)


def test_the_criterion_form_refuses_dict_batches_clearly():
    model = RegressionModule(dict_batches=True)
    loss = resolve_loss_fn(nn.MSELoss(), model)
    batch = {"features": torch.zeros(4, 4), "target": torch.zeros(4)}
    with pytest.raises(
        ValueError, match="`loss_fn` \\(MSELoss\\) fails on an evaluation batch.*\\(x, y, \\.\\.\\.\\)"
    ):
        check_loss_fn(model, batch, loss)


# ---------------------------------------------------------------- the batch hooks
class _Shift(pl.LightningDataModule):
    def on_after_batch_transfer(self, batch, dataloader_idx):
        return batch[0] + 100.0, batch[1]


class _Scale(RegressionModule):
    def on_before_batch_transfer(self, batch, dataloader_idx):
        return batch[0] * 2.0, batch[1]

    def on_after_batch_transfer(self, batch, dataloader_idx):
        return batch[0] - 1.0, batch[1]


def test_batches_go_through_the_hooks_lightning_would_call():
    batch = (torch.ones(2, 4), torch.zeros(2, 1))
    module_only = batch_transfer(_Scale(), torch.device("cpu"))
    assert torch.equal(module_only(batch)[0], torch.full((2, 4), 1.0))  # (1·2) − 1
    # a datamodule's override wins where it has one; the module's other hooks still run
    both = batch_transfer(_Scale(), torch.device("cpu"), datamodule=_Shift())
    assert torch.equal(both(batch)[0], torch.full((2, 4), 102.0))  # (1·2) + 100
    plain = batch_transfer(nn.Linear(4, 1), torch.device("cpu"))  # not a LightningModule: only moved
    assert torch.equal(plain(batch)[0], batch[0])
