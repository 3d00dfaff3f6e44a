"""A registry of small problems with independent references, shared by the tests."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, hessian
from torch.utils.data import DataLoader, TensorDataset


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))


def bn_cnn(seed: int = 0, dropout: float = 0.3) -> nn.Module:
    """A CNN with BatchNorm and dropout (the modules that misbehave in train mode)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(4 * 16, 5),
    )


def image_batches(sizes=(7, 16, 9), seed: int = 1, classes: int = 5):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(n, 1, 4, 4, generator=g), torch.randint(0, classes, (n,), generator=g)) for n in sizes
    ]


def vector_batches(sizes=(8, 5), seed: int = 1, features: int = 4, classes: int = 3):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(n, features, generator=g), torch.randint(0, classes, (n,), generator=g)) for n in sizes
    ]


def dense_hessian(model: nn.Module, x, y) -> torch.Tensor:
    """Reference: torch.func.hessian of the full-data mean loss in eval mode."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    was_training = model.training
    model.eval()

    def loss(theta):
        params = {n: t.view(s) for n, t, s in zip(names, theta.split(sizes), shapes)}
        return F.cross_entropy(functional_call(model, {**params, **buffers}, (x,)), y)

    h = hessian(loss)(flat)
    model.train(was_training)
    return h


def warm_up_bn(model: nn.Module, batches) -> None:
    """Give BatchNorm non-trivial running statistics."""
    model.train()
    with torch.no_grad():
        for x, _ in batches:
            model(x)


class Quadratic(nn.Module):
    """L(θ) = ½ (θ − θ*)ᵀ A (θ − θ*) with θ = [W.flatten(), b] (float64)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(3, 4, generator=g, dtype=torch.float64))
        self.bias = nn.Parameter(torch.randn(3, generator=g, dtype=torch.float64))
        n = self.weight.numel() + self.bias.numel()
        m = torch.randn(n, n, generator=g, dtype=torch.float64)
        self.register_buffer("A", m @ m.T / n + torch.eye(n, dtype=torch.float64))
        self.register_buffer("theta_star", torch.randn(n, generator=g, dtype=torch.float64))

    def flat(self) -> torch.Tensor:
        return torch.cat([self.weight.flatten(), self.bias])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.flat() - self.theta_star
        return 0.5 * e @ self.A @ e + 0.0 * x.sum()

    def closed_form(self, theta: np.ndarray) -> float:
        """The loss at a flat parameter vector, in float64 numpy (independent of torch)."""
        e = theta - self.theta_star.numpy()
        return float(0.5 * e @ self.A.numpy() @ e)


def quadratic_loss(model: nn.Module, batch) -> torch.Tensor:
    return model(batch[0])


@dataclass
class GlobalRNG:
    torch_state: torch.Tensor
    numpy_state: tuple
    python_state: tuple

    @classmethod
    def capture(cls) -> GlobalRNG:
        return cls(torch.get_rng_state(), np.random.get_state(), random.getstate())

    def equals(self, other: GlobalRNG) -> bool:
        return (
            torch.equal(self.torch_state, other.torch_state)
            and all(
                np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
                for a, b in zip(self.numpy_state, other.numpy_state)
            )
            and self.python_state == other.python_state
        )


def snapshot(module: nn.Module) -> dict:
    """Everything 'observing never perturbs' promises to keep, for comparison with `same_state`."""
    return {
        "state": {k: v.detach().clone() for k, v in module.state_dict().items()},
        "training": [m.training for m in module.modules()],
        "requires_grad": [p.requires_grad for p in module.parameters()],
        "grad_ids": [id(p.grad) if p.grad is not None else None for p in module.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in module.parameters()],
    }


def assert_same_state(before: dict, module: nn.Module) -> None:
    after = snapshot(module)
    assert before["state"].keys() == after["state"].keys()
    for k in before["state"]:
        assert torch.equal(before["state"][k], after["state"][k]), k
    assert before["training"] == after["training"]
    assert before["requires_grad"] == after["requires_grad"]
    assert before["grad_ids"] == after["grad_ids"]
    for a, b in zip(before["grads"], after["grads"]):
        assert (a is None and b is None) or torch.equal(a, b)


def training_end(module: pl.LightningModule) -> dict:
    """What a finished run must leave identical: parameters, buffers and optimizer state."""
    import copy

    return {
        "state": {k: v.detach().clone() for k, v in module.state_dict().items()},
        "optimizer": copy.deepcopy(module.trainer.optimizers[0].state_dict()),
    }


def assert_same_training_end(plain: dict, watched: dict) -> None:
    """``torch.equal`` on every parameter, buffer and optimizer state tensor of two runs."""
    assert plain["state"].keys() == watched["state"].keys()
    for name, tensor in plain["state"].items():
        assert torch.equal(tensor, watched["state"][name]), name
    assert plain["optimizer"]["param_groups"] == watched["optimizer"]["param_groups"]
    for key, state in plain["optimizer"]["state"].items():
        for field, value in state.items():
            assert torch.equal(value, watched["optimizer"]["state"][key][field]), (key, field)


# ---------------------------------------------------------------------- Lightning problems
class LitClassifier(pl.LightningModule):
    """A Lightning wrapper around `bn_cnn` trained with SGD + momentum on random images."""

    def __init__(self, seed: int = 0, lr: float = 0.1, dropout: float = 0.3) -> None:
        super().__init__()
        self.net = bn_cnn(seed, dropout)
        self.lr = lr

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


def image_loader(n: int = 96, batch_size: int = 16, seed: int = 3, shuffle: bool = True) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 4, 4, generator=g)
    y = torch.randint(0, 5, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle)


def trainer_kwargs(tmp_path, **overrides) -> dict:
    kwargs = dict(
        default_root_dir=str(tmp_path),
        accelerator="cpu",
        devices=1,
        max_epochs=3,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=False,
        deterministic=True,
    )
    kwargs.update(overrides)
    return kwargs


def fit_classifier(tmp_path, callbacks, *, seed: int, model=None, ckpt_path=None, shuffle=True, **overrides):
    """Seed everything, then fit ``model`` (default: a fresh :class:`LitClassifier`) on random images."""
    from lightning.pytorch import Trainer, seed_everything

    seed_everything(seed, workers=True)
    model = model or LitClassifier()
    trainer = Trainer(callbacks=callbacks, **trainer_kwargs(tmp_path, **overrides))
    trainer.fit(model, image_loader(shuffle=shuffle), ckpt_path=ckpt_path)
    return trainer, model


def fit_two_epochs(root, model, data, config: str):
    """2 epochs, a checkpoint per epoch: (root, config path, epoch-0 and epoch-1 checkpoints, model)."""
    from lightning.pytorch import Trainer, seed_everything
    from lightning.pytorch.callbacks import ModelCheckpoint

    seed_everything(0)
    checkpoints = ModelCheckpoint(dirpath=str(root / "ckpt"), save_top_k=-1, filename="{epoch}")
    trainer = Trainer(
        default_root_dir=str(root),
        max_epochs=2,
        logger=False,
        callbacks=[checkpoints],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, data)
    (root / "config.yaml").write_text(config)
    ckpt = root / "ckpt"
    return root, str(root / "config.yaml"), str(ckpt / "epoch=0.ckpt"), str(ckpt / "epoch=1.ckpt"), model


class ThreadWorld:
    """``size`` threads whose ``reduce_sum`` is an all-reduce over a barrier (hangs fail the test)."""

    def __init__(self, size: int = 2, timeout: float = 60.0) -> None:
        self.size = size
        self.slots: list[torch.Tensor | None] = [None] * size
        self.barrier = threading.Barrier(size, timeout=timeout)
        self.calls = [0] * size

    def reducer(self, rank: int):
        def reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
            self.calls[rank] += 1
            self.slots[rank] = tensor
            self.barrier.wait()
            total = sum(self.slots[1:], self.slots[0].clone())
            self.barrier.wait()
            return total

        return reduce_sum

    def run(self, work):
        """``work(rank)`` in every thread inside ``sharded``; returns results (or raised exceptions)."""
        results: list = [None] * self.size

        from lightning_landscape.core.base.distributed import sharded

        def target(rank: int) -> None:
            try:
                with sharded(self.reducer(rank)):
                    results[rank] = work(rank)
            except BaseException as exc:  # noqa: BLE001 - handed back to the test
                results[rank] = exc

        threads = [threading.Thread(target=target, args=(rank,)) for rank in range(self.size)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results
