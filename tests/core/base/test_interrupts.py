"""A Ctrl-C never leaves a model, a random stream or torch itself half-restored (issue 14, defect 7)."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from problems import GlobalRNG, assert_same_state, bn_cnn, image_batches, snapshot
from torch import nn

import lightning_landscape.core.base.params as params
from lightning_landscape import hessian_eigenvalues
from lightning_landscape.core.linalg._folding import folded_batchnorm


def test_a_ctrl_c_during_the_restore_waits_until_the_model_is_whole(monkeypatch):
    model = bn_cnn()
    before = snapshot(model)
    real_copy = params._copy_into
    calls = []

    def interrupted_copy(targets, sources):  # a real SIGINT lands between the two copies
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)
        real_copy(targets, sources)

    monkeypatch.setattr(params, "_copy_into", interrupted_copy)
    rng = GlobalRNG.capture()
    with pytest.raises(KeyboardInterrupt):
        with params.observing(model):
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(1.0)
            torch.rand(3)
    assert len(calls) == 2  # both copies ran before the interrupt was raised
    assert_same_state(before, model)
    assert rng.equals(GlobalRNG.capture())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_interrupt_inside_tracing_never_leaves_torch_fx_patches_behind(monkeypatch):
    import torch.fx._symbolic_trace as symbolic

    originals = (vars(nn.Module)["__call__"], vars(nn.Module)["__getattr__"])

    def interrupted_revert(self):  # fx's own restore of its patches is cut short by a Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(symbolic._Patcher, "revert_all_patches", interrupted_revert)
    model = bn_cnn()
    with pytest.raises(KeyboardInterrupt):
        with folded_batchnorm(model):
            pass
    assert (vars(nn.Module)["__call__"], vars(nn.Module)["__getattr__"]) == originals
    assert symbolic.CURRENT_PATCHER is None  # else torch.compile would re-apply the patches
    monkeypatch.undo()
    assert float(hessian_eigenvalues(model, image_batches(), k=1).eigenvalues[0]) > 0  # modules still work
    compiled = torch.compile(nn.Linear(3, 2))  # compiling re-applies a patcher left set: it is not
    assert compiled(torch.ones(1, 3)).shape == (1, 2)
    assert (vars(nn.Module)["__call__"], vars(nn.Module)["__getattr__"]) == originals
