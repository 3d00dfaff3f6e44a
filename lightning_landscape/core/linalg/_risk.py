"""The empirical risk ``L(θ) = (1/N) Σ_i ℓ_i(θ)`` of a model on fixed batches, over chosen parameters.

:class:`EmpiricalRisk` is the one place that turns *model + batches + loss + parameter names* into
what the curvature and sharpness instruments work on:

- the **flat space** of the chosen parameters (``dim``, ``split`` of a flat vector into views);
- the **batch weights**, each batch's share of every process's samples, so that weighted batch
  means are per-sample means (:func:`~lightning_landscape.core.base.batches.batch_weights`);
- the **loss at an offset** ``L(θ₀ + δ)`` and its gradient, written into the model in place from a
  saved θ₀ and summed over processes (sharpness's ascent and sampling);
- the model as a **pure function** of the chosen parameters (``functional_call`` with every other
  tensor held fixed), for ``torch.func`` transforms (Gauss-Newton products, per-sample Jacobians
  and gradients).

Use inside :func:`~lightning_landscape.core.base.params.gradient_context` (the public functions do),
which restores everything an offset writes.

Example:
    >>> net = nn.Linear(3, 2)
    >>> data = [(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))]
    >>> risk = EmpiricalRisk(net, data, names=["weight"])
    >>> risk.dim, [tuple(p.shape) for p in risk.split(torch.zeros(6))]
    (6, [(2, 3)])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from ..base.batches import autograd_batch, batch_weights
from ..base.distributed import guarded_sum, is_sharded
from ..base.evaluation import mean_batch_loss
from ..base.losses import LossFn
from ..base.params import named_tensors, perturbable_parameters

__all__ = ["EmpiricalRisk"]


class EmpiricalRisk:
    """The per-sample mean loss of ``model`` on ``batches``, as a function of the parameters ``names``.

    Args:
        model: the network; its parameters with ``requires_grad=True`` are the candidates.
        batches: fixed evaluation batches on the model's device (copied out of inference mode for
            autograd); may be empty when only the functional form is used.
        loss_fn: ``loss_fn(model, batch) -> mean loss``; default cross-entropy on ``(x, y)``.
        names: the parameters spanning the space (default: every trainable parameter).

    Attributes:
        names, params: the chosen parameter names and tensors, in order.
        dim: number of coordinates; ``device``, ``dtype``: those of the first parameter.

    Raises:
        ValueError: ``names`` that are not trainable parameters of the model, or none at all.
    """

    def __init__(
        self,
        model: nn.Module,
        batches: Iterable[Any] = (),
        loss_fn: LossFn | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        available = perturbable_parameters(model)
        self.names = list(available) if names is None else list(names)
        unknown = [n for n in self.names if n not in available]
        if unknown:
            raise ValueError(f"`names` {unknown} are not trainable parameters of the model.")
        if not self.names:
            raise ValueError("the model has no trainable parameters (requires_grad=True): nothing to vary.")
        self.model = model
        self.loss_fn = loss_fn
        self.params = [available[n] for n in self.names]
        self.shapes = [p.shape for p in self.params]
        self.numels = [p.numel() for p in self.params]
        self.dim = sum(self.numels)
        self.device = self.params[0].device
        self.dtype = self.params[0].dtype
        self.batches = [autograd_batch(b) for b in batches]
        self._weights: list[float] | None = None
        self._base: list[torch.Tensor] | None = None
        self._fixed_tensors: dict[str, torch.Tensor] | None = None

    # the flat space ---------------------------------------------------------------------------
    def split(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Views of a flat vector shaped like the parameters."""
        return [t.view(shape) for t, shape in zip(flat.split(self.numels), self.shapes)]

    def flatten(self, tensors: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """One flat vector from tensors shaped like the parameters (``None`` as zeros)."""
        flat = torch.zeros(self.dim, device=self.device, dtype=self.dtype)
        self.add_into(self.split(flat), tensors)
        return flat

    @staticmethod
    def add_into(pieces: Sequence[torch.Tensor], tensors: Sequence[torch.Tensor | None]) -> None:
        """``pieces[i] += tensors[i]`` in place, skipping ``None`` (parameters autograd left unused)."""
        for piece, tensor in zip(pieces, tensors):
            if tensor is not None:
                piece.add_(tensor)

    @property
    def weights(self) -> list[float]:
        """Each batch's share of every process's samples (a sum over processes when sharded: touch
        it on every process alike, outside any other reduction), computed once."""
        # not functools.cached_property: before Python 3.12 it holds one lock for every instance,
        # which serializes the processes a threaded test runs and deadlocks their reductions
        if self._weights is None:
            self._weights = batch_weights(self.batches)
        return self._weights

    # the loss at an offset from θ₀ --------------------------------------------------------------
    @property
    def base(self) -> list[torch.Tensor]:
        """θ₀: a copy of the chosen parameters, taken on first use."""
        if self._base is None:
            self._base = [p.detach().clone() for p in self.params]
        return self._base

    def _write(self, delta: Sequence[torch.Tensor] | None) -> None:
        with torch.no_grad():
            params: list[torch.Tensor] = list(self.params)
            torch._foreach_copy_(params, self.base)
            if delta is not None:
                torch._foreach_add_(params, [*delta])

    def loss(self, delta: Sequence[torch.Tensor] | None = None) -> float:
        """``L(θ₀ + δ)`` (``L(θ₀)`` without ``delta``), summed over processes; the model keeps θ₀ + δ."""
        self._write(delta)
        weights = self.weights  # before the sum over processes: computing them is a sum itself

        def local_loss() -> torch.Tensor:
            with torch.no_grad():
                total = sum(
                    w * mean_batch_loss(self.model, b, self.loss_fn).double()
                    for w, b in zip(weights, self.batches)
                )
            return torch.as_tensor(total, dtype=torch.float64)

        return float(guarded_sum(local_loss, shape=(), dtype=torch.float64, device=self.device))

    def loss_and_grad(self, delta: Sequence[torch.Tensor]) -> tuple[float, list[torch.Tensor]]:
        """``L(θ₀ + δ)`` and its gradient (shaped like the parameters), summed over processes."""
        self._write(delta)
        weights = self.weights  # before the sum over processes: computing them is a sum itself
        grads = [torch.zeros_like(p) for p in self.params]

        def local_loss_and_grad() -> torch.Tensor:
            total = torch.zeros((), dtype=torch.float64, device=self.device)
            for w, batch in zip(weights, self.batches):
                loss = w * mean_batch_loss(self.model, batch, self.loss_fn)
                self.add_into(grads, torch.autograd.grad(loss, self.params, allow_unused=True))
                total += loss.detach().double()
            return total

        if not is_sharded():
            return float(local_loss_and_grad()), grads

        def flat_loss_and_grad() -> torch.Tensor:
            total = local_loss_and_grad()
            return torch.cat([total.reshape(1), *(g.double().flatten() for g in grads)])

        flat = guarded_sum(flat_loss_and_grad, shape=(1 + self.dim,), dtype=torch.float64, device=self.device)
        summed = flat[1:].split(self.numels)
        return float(flat[0]), [s.view_as(p).to(p.dtype) for s, p in zip(summed, self.params)]

    # the model as a pure function of the chosen parameters -----------------------------------
    def parameters(self) -> dict[str, torch.Tensor]:
        """The chosen parameters by name, detached: the point ``torch.func`` transforms differentiate at."""
        return {n: p.detach() for n, p in zip(self.names, self.params)}

    def call(self, theta: dict[str, torch.Tensor], *args: Any) -> Any:
        """``model(*args)`` with the chosen parameters taken from ``theta`` and every other tensor
        (frozen parameters, buffers) as it is in the model (``torch.func.functional_call``)."""
        from torch.func import functional_call

        return functional_call(self.model, {**self._fixed, **theta}, args)

    def function(self, *args: Any) -> Callable[[dict[str, torch.Tensor]], Any]:
        """``θ ↦ model(*args)`` at the parameters ``θ`` (a dict like :meth:`parameters`): :meth:`call`
        with the inputs bound, the form ``torch.func.jvp``/``vjp``/``jacrev`` differentiate."""

        def at(theta: dict[str, torch.Tensor]) -> Any:
            return self.call(theta, *args)

        return at

    @property
    def _fixed(self) -> dict[str, torch.Tensor]:
        if self._fixed_tensors is None:
            chosen = set(self.names)
            self._fixed_tensors = {
                n: t.detach() for n, t in named_tensors(self.model).items() if n not in chosen
            }
        return self._fixed_tensors
