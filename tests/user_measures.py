"""A sharpness measure defined outside the package, as a user's own module would define it: it is
registered when the module is imported (by a test, or by the module a LightningCLI config names).

It is careless on purpose: it writes a random step into the weights in place, switches the model
to train mode and reseeds the global random stream. The registry's guard puts all of it back, so
the never-perturbs table holds for it as for our own measures."""

import math

import torch
from torch import nn

from lightning_landscape import SharpnessResult, evaluate, register_measure


def random_step_sharpness(
    model: nn.Module, batches, *, loss_fn=None, seed=0, num_samples=None, params=None, sigma: float = 0.01
) -> SharpnessResult:
    """``L(θ + σε) − L(θ)`` for one Gaussian step ``ε`` (seeded by ``seed``)."""
    center = evaluate(model, batches, loss_fn=loss_fn, num_samples=num_samples).loss
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(sigma * torch.randn_like(p))
    model.train()
    moved = evaluate(model, batches, loss_fn=loss_fn, num_samples=num_samples).loss
    return SharpnessResult("random_step", moved - center, center, extra={"sigma": sigma})


def check_random_step(sigma, **_):
    """``sigma`` must be a finite number > 0."""
    if (
        isinstance(sigma, bool)
        or not isinstance(sigma, (int, float))
        or not (math.isfinite(sigma) and sigma > 0)
    ):
        raise ValueError(f"`sigma` must be a finite number > 0, got {sigma!r}.")


register_measure("random_step", random_step_sharpness, check=check_random_step, replace=True)


from user_modules import RegressionModule  # noqa: E402


class MeasuredRegression(RegressionModule):
    """A user's LightningModule whose package defines the measure above: naming it in a config
    (``--model_class user_measures.MeasuredRegression``) imports the module, which registers it."""
