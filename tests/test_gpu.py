"""On a CUDA device: the monitors leave training bit-identical, the core matches its CPU float64
reference, the batched and bf16 paths hold, and DDP on one GPU agrees with one CPU process.

Marked ``gpu`` and skipped without CUDA (``pytest -m gpu`` on a GPU machine; ``benchmarks/gpu.sh``
runs them first).
"""

from __future__ import annotations

import pytest
import torch
from problems import assert_same_training_end, trainer_kwargs, training_end
from torch import nn

import lightning_landscape as ll

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 10),
    )


def batches(device, dtype=torch.float32, n=64, size=32):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(n, 1, 8, 8, generator=generator, dtype=dtype)
    y = torch.randint(0, 10, (n,), generator=generator)
    return [(x[i : i + size].to(device), y[i : i + size].to(device)) for i in range(0, n, size)]


def on(device, dtype=torch.float64):
    model = small_cnn().to(device=device, dtype=dtype).eval()
    return model, batches(device, dtype)


def cpu_drawn_directions(model: nn.Module) -> list[dict[str, torch.Tensor]]:
    """Two directions drawn on the CPU (random generators of different devices draw differently)."""
    generator = torch.Generator().manual_seed(5)
    return [
        {
            n: torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device)
            for n, p in model.named_parameters()
        }
        for _ in range(2)
    ]


# random starts are drawn on the device, so only what does not depend on them is compared: the
# landscape along CPU-drawn directions, converged eigenvalues, exact traces and evidences
CORE = {
    "landscape": lambda m, b: (
        ll.compute_landscape(m, b, num_points=5, directions=cpu_drawn_directions(m)).loss
    ),
    "top_eigenvalues": lambda m, b: ll.hessian_eigenvalues(m, b, k=2, tol=1e-10, max_iter=300).eigenvalues,
    "trace_exact_ggn": lambda m, b: torch.tensor(ll.hessian_trace(m, b, method="exact_ggn").estimate),
    "filter_normalized_eigenvalue": lambda m, b: torch.tensor(
        ll.sharpness(m, b, measure="filter_normalized_eigenvalue", tol=1e-10, max_iter=300).value
    ),
    "evidence": lambda m, b: torch.tensor(
        ll.log_evidence(m, b, prior_precision=1.0, method="exact", curvature="ggn").log_evidence
    ),
}


@pytest.mark.parametrize("name", sorted(CORE))
def test_core_on_cuda_equals_the_cpu_float64_reference(name):
    reference = CORE[name](*on("cpu"))
    got = CORE[name](*on("cuda"))
    torch.testing.assert_close(got.cpu().double(), reference.cpu().double(), rtol=1e-6, atol=1e-8)


def test_points_per_forward_auto_equals_the_sequential_path_on_cuda():
    model, data = on("cuda", torch.float32)
    sequential = ll.compute_landscape(model, data, dims=2, num_points=7)
    batched = ll.compute_landscape(model, data, dims=2, num_points=7, points_per_forward="auto")
    torch.testing.assert_close(batched.loss, sequential.loss, rtol=1e-4, atol=1e-5)


def test_bf16_autocast_stays_within_one_percent():
    model, data = on("cuda", torch.float32)
    full = ll.compute_landscape(model, data, dims=1, num_points=9)
    bf16 = ll.compute_landscape(model, data, dims=1, num_points=9, autocast="bf16")
    assert torch.allclose(bf16.loss, full.loss, rtol=0.01)


def _fit(tmp_path, callbacks, **overrides):
    from lightning.pytorch import Trainer, seed_everything
    from problems import LitClassifier, image_loader

    seed_everything(3, workers=True)
    model = LitClassifier()
    options = trainer_kwargs(tmp_path, max_epochs=2, **overrides)
    options.update(accelerator="gpu", devices=1, deterministic=True)
    trainer = Trainer(callbacks=callbacks, **options)
    trainer.fit(model, image_loader())
    cuda_rng = torch.cuda.get_rng_state()
    return trainer, model, cuda_rng


def test_every_monitor_on_the_gpu_leaves_training_bit_identical(tmp_path):
    _, plain, plain_cuda = _fit(tmp_path / "plain", [])
    plain_cpu = torch.get_rng_state()
    quick = dict(num_samples=32, eval_batch_size=16, every_n_epochs=1, progress_bar=False)
    monitors = [
        ll.LossLandscapeMonitor(dims=2, num_points=3, **quick),
        ll.SharpnessMonitor(measures=("top_eigenvalue", "trace", "keskar"), **quick),
        ll.TrajectoryMonitor(num_points=3, **quick),
        ll.NoiseScaleMonitor(num_samples=16, every_n_epochs=1),
    ]
    _, watched, watched_cuda = _fit(tmp_path / "watched", monitors)
    assert_same_training_end(training_end(plain), training_end(watched))
    assert torch.equal(plain_cuda, watched_cuda) and torch.equal(plain_cpu, torch.get_rng_state())
    assert all(p.is_cuda for p in watched.parameters())


def test_ddp_on_one_gpu_agrees_with_one_cpu_process(tmp_path):
    from ddp_problems import LitMLP, full_batch_loader
    from lightning.pytorch import Trainer

    def run(accelerator, strategy):
        monitor = ll.LossLandscapeMonitor(
            dims=1, num_points=5, num_samples=48, eval_batch_size=16, every_n_epochs=1, progress_bar=False
        )
        trainer = Trainer(
            default_root_dir=str(tmp_path / accelerator),
            accelerator=accelerator,
            devices=1,
            strategy=strategy,
            max_epochs=2,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[monitor],
        )
        trainer.fit(LitMLP(), full_batch_loader(1))
        return monitor.last_result.loss

    torch.testing.assert_close(run("gpu", "ddp"), run("cpu", "auto"), rtol=1e-4, atol=1e-6)
