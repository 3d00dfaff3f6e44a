"""SGD noise scales: Smith & Le 2018's temperature and McCandlish et al. 2018's gradient noise scale."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..._checks import check_int, check_optional_int
from ..base._inputs import evaluation_inputs
from ..base.batches import autograd_batch, batch_size, slice_batch, total_samples
from ..base.distributed import guarded_sum
from ..base.evaluation import check_model, mean_batch_loss
from ..base.losses import LossSpec, is_cross_entropy
from ..base.params import gradient_context, module_device
from ..base.results import ResultFile
from ..linalg._risk import EmpiricalRisk

__all__ = ["gradient_noise_scale", "GradientNoiseScale", "sgd_noise_scale"]


def sgd_noise_scale(lr: float, dataset_size: int, batch_size: int, momentum: float = 0.0) -> float:
    """Smith & Le's SGD noise scale ``g = ε (N/B − 1)``, divided by ``1 − m`` with momentum ``m``.

    >>> sgd_noise_scale(0.1, 1000, 10)
    9.9
    """
    if batch_size < 1 or dataset_size < batch_size:
        raise ValueError(f"need 1 <= batch_size <= dataset_size, got B={batch_size}, N={dataset_size}.")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"`momentum` must be in [0, 1), got {momentum!r}.")
    return lr * (dataset_size / batch_size - 1.0) / (1.0 - momentum)


@dataclass(frozen=True)
class GradientNoiseScale(ResultFile):
    """``B_simple = tr(Σ) / |G|²`` from per-sample gradients.

    Attributes:
        b_simple: the simple noise scale (the batch size at which gradient noise and signal balance).
        trace_covariance: ``tr Σ``, the summed per-coordinate variance of per-sample gradients
            (unbiased, divided by n − 1).
        gradient_norm_sq: ``|G|²`` of the mean gradient.
        num_samples: n.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape.core.measures.noise import gradient_noise_scale
        >>> result = gradient_noise_scale(net, data)
        >>> result.num_samples, result.b_simple > 0
        (16, True)
    """

    b_simple: float
    trace_covariance: float
    gradient_norm_sq: float
    num_samples: int


def gradient_noise_scale(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    loss_fn: LossSpec = None,
    chunk: int = 256,
    num_samples: int | None = None,
) -> GradientNoiseScale:
    """McCandlish et al.'s simple noise scale from exact per-sample gradients (``vmap(grad)``).

    Per-sample gradients ``gᵢ`` of the loss (eval mode) are accumulated into ``Σᵢ gᵢ`` and ``Σᵢ |gᵢ|²``
    chunk by chunk, so memory stays at ``chunk`` gradients. The default loss is cross-entropy on
    ``(x, y)`` (vectorized with ``vmap``); a custom ``loss_fn(model, batch)`` is called on
    single-sample batches (every tensor of any batch structure sliced along its first dimension),
    one autograd call each (slower). At most ``num_samples`` samples are read from ``batches``
    (needed for an iterable without ``len``). The model, its ``.grad`` and the random streams are
    left untouched.

    Example:
        >>> net = nn.Linear(3, 2)
        >>> result = gradient_noise_scale(net, [(torch.randn(16, 3), torch.randint(0, 2, (16,)))])
        >>> result.num_samples, result.b_simple > 0
        (16, True)
    """
    from torch.func import grad, vmap

    check_model(model)
    check_int("chunk", chunk, minimum=1)
    check_optional_int("num_samples", num_samples, minimum=2)
    loss_fn, cached = evaluation_inputs(model, batches, loss_fn, num_samples)
    found = total_samples(cached)
    if found < 2:  # one gradient has no spread: tr Σ would be 0 and B_simple 0, silently
        raise ValueError(
            f"`batches` hold {found} sample(s); the gradient noise scale needs at least 2 to estimate "
            "the variance of per-sample gradients."
        )
    with gradient_context(model):
        risk = EmpiricalRisk(model)
        trainable = dict(zip(risk.names, risk.params))
        params = risk.parameters()

        def sample_loss(theta, x, y):
            return F.cross_entropy(risk.call(theta, x.unsqueeze(0)), y.unsqueeze(0))

        def custom_grads(batch, start, stop):  # one autograd call per sample: any loss_fn and batch
            rows = [
                torch.autograd.grad(
                    mean_batch_loss(model, slice_batch(batch, i, i + 1), loss_fn), list(trainable.values())
                )
                for i in range(start, stop)
            ]
            return {n: torch.stack([row[k] for row in rows]) for k, n in enumerate(trainable)}

        per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))
        if is_cross_entropy(loss_fn):  # refuse what the cross-entropy would get wrong, before any work
            with torch.no_grad():
                mean_batch_loss(model, slice_batch(next(iter(cached)), 0, 1))
        device = module_device(model)

        def local_sums() -> torch.Tensor:  # [Σᵢ|gᵢ|², n, Σᵢ gᵢ (flat)] over this process's samples
            total = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in params.items()}
            squares = torch.zeros(1, dtype=torch.float64, device=device)
            count = 0
            for batch in cached:
                batch = autograd_batch(batch)
                size = batch_size(batch)
                for start in range(0, size, chunk):
                    stop = min(start + chunk, size)
                    if is_cross_entropy(loss_fn):
                        grads = per_sample(params, batch[0][start:stop], batch[1][start:stop])
                    else:
                        grads = custom_grads(batch, start, stop)
                    for n, g in grads.items():
                        total[n] += g.double().sum(dim=0)
                        squares += g.double().square().sum()
                    count += stop - start
            counts = torch.full((1,), float(count), dtype=torch.float64, device=device)
            return torch.cat([squares, counts, *(t.flatten() for t in total.values())])

        numel = 2 + sum(p.numel() for p in params.values())
        sums = guarded_sum(local_sums, shape=(numel,), dtype=torch.float64, device=device).cpu()
    squares, count, total = float(sums[0]), int(sums[1]), sums[2:]
    mean_sq = float((total / count).square().sum())
    # Σᵢ|gᵢ − Ḡ|² = Σᵢ|gᵢ|² − n|Ḡ|²; unbiased covariance trace divides by n − 1
    trace = (squares - count * mean_sq) / max(count - 1, 1)
    return GradientNoiseScale(trace / mean_sq if mean_sq > 0 else float("inf"), trace, mean_sq, count)
