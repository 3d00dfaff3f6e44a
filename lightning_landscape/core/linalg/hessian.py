"""Hessian-vector products of the loss over a fixed set of batches.

``H`` is the Hessian of ``L(θ) = (1/N) Σ_i ℓ_i(θ)``, the per-sample mean loss over every sample of
the batches (each batch's mean loss weighted by its size), with respect to the trainable
parameters, evaluated in eval mode (BatchNorm on running statistics, dropout off).

Products use double backpropagation: the gradient graph of each batch is built once
(``create_graph=True``) and reused for every product, which trades memory (one graph per batch)
for speed, as PyHessian does. ``.grad`` is never written: products come from
``torch.autograd.grad``. Inside :func:`~lightning_landscape.core.base.distributed.sharded` each product
is summed over processes explicitly (DDP's gradient hooks do not fire for ``torch.autograd.grad``).
The graphs are built with eval-mode BatchNorm folded into the layer before it
(:mod:`~lightning_landscape.core.linalg._folding`): the same function of the parameters, cheaper products.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from ..base.batches import cache_batches
from ..base.distributed import guarded_sum
from ..base.evaluation import mean_batch_loss
from ..base.losses import LossFn, is_class_logits
from ..base.params import module_device
from ._folding import folded_batchnorm
from ._risk import EmpiricalRisk
from .operators import LinearOperator
from .spectrum import informed_start

__all__ = ["GGNOperator", "HessianOperator"]


class _RiskOperator(LinearOperator):
    """An operator on the flat space of an :class:`~lightning_landscape.core.linalg._risk.EmpiricalRisk`
    (its ``dim``, ``device`` and ``dtype``), counting its products."""

    def __init__(self, risk: EmpiricalRisk) -> None:
        self.risk = risk
        self.dim, self.device, self.dtype = risk.dim, risk.device, risk.dtype
        self.names, self.params, self.split = risk.names, risk.params, risk.split
        risk.weights  # noqa: B018 - eagerly: a sum over processes when sharded, on every process alike
        self.num_matvecs = 0


class HessianOperator(_RiskOperator):
    """The Hessian of the empirical risk, ``v ↦ H v``, on flat vectors of the trainable parameters.

    A :class:`~lightning_landscape.core.linalg.operators.LinearOperator` (``H @ v``, ``c * H``,
    ``H.shifted(1.0)``, ``H.sandwiched(d)``, ``H.dense()``) over an
    :class:`~lightning_landscape.core.linalg._risk.EmpiricalRisk` (``H.risk``).
    Use inside :func:`gradient_context` (the public functions do).

    Args:
        model: the network; parameters with ``requires_grad=True`` span the space (or ``names``).
        batches: fixed evaluation batches on the model's device.
        loss_fn: ``loss_fn(model, batch) -> mean loss``; default cross-entropy on ``(x, y)``.
        names: restrict to these parameter names (e.g. only weights with ``ndim > 1``, as Li et al.).
        fold_batchnorm: build the product graphs with every eval-mode BatchNorm that follows a
            convolution or linear layer folded into it (:func:`~lightning_landscape.core.linalg._folding.
            folded_batchnorm`): the same Hessian, cheaper products. The first batch's loss is
            recomputed as written and compared; if they differ, the graphs are rebuilt unfolded
            with a warning.

    Attributes:
        dim: number of coordinates P.
        num_matvecs: products computed so far.
        folded_batchnorm: names of the BatchNorm modules folded into the product graphs (set when
            the graphs are built, on the first product).
    """

    def __init__(
        self,
        model: nn.Module,
        batches: Iterable[Any],
        loss_fn: LossFn | None = None,
        names: Sequence[str] | None = None,
        fold_batchnorm: bool = True,
    ) -> None:
        super().__init__(EmpiricalRisk(model, batches, loss_fn, names))
        self.model, self.batches, self.loss_fn = model, self.risk.batches, loss_fn
        self.fold_batchnorm = fold_batchnorm
        self.folded_batchnorm: list[str] = []
        self._graphs: list[tuple[list[int], tuple[torch.Tensor, ...]]] | None = None
        self._local_gradient: torch.Tensor | None = None

    def _built(self) -> list[tuple[list[int], tuple[torch.Tensor, ...]]]:
        """The per-batch gradient graphs (and the local gradient), built on first use."""
        if self._graphs is None:
            self._graphs = self._build()
        return self._graphs

    def _build(self) -> list[tuple[list[int], tuple[torch.Tensor, ...]]]:
        if not self.fold_batchnorm:
            return self._build_graphs()[0]
        with folded_batchnorm(self.model) as folded:
            graphs, first_loss = self._build_graphs()
        if folded and not self._same_loss_unfolded(first_loss):
            warnings.warn(
                f"Folding BatchNorm {folded} into the layers before them changed the loss; Hessian "
                "products use the model as written. Pass `fold_batchnorm=False` to skip the attempt.",
                stacklevel=2,
            )
            folded, graphs = [], self._build_graphs()[0]
        self.folded_batchnorm = folded
        return graphs

    def _build_graphs(self) -> tuple[list[tuple[list[int], tuple[torch.Tensor, ...]]], torch.Tensor | None]:
        """The per-batch gradient graphs (the local gradient as a side product) and the first
        batch's loss (``None`` without batches)."""
        graphs, first_loss = [], None
        self._local_gradient = torch.zeros(self.dim, device=self.device, dtype=self.dtype)
        gradient_pieces = self.split(self._local_gradient)
        for weight, batch in zip(self.risk.weights, self.batches):
            loss = mean_batch_loss(self.model, batch, self.loss_fn)
            if first_loss is None:
                first_loss = loss.detach()
            grads = torch.autograd.grad(loss * weight, self.params, create_graph=True, allow_unused=True)
            self.risk.add_into(gradient_pieces, [None if g is None else g.detach() for g in grads])
            # gradients that are constant in θ contribute nothing to H v
            live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
            graphs.append((live, tuple(grads[i] for i in live)))
        return graphs, first_loss

    def _same_loss_unfolded(self, folded_loss: torch.Tensor | None) -> bool:
        """Whether the first batch's loss, recomputed without folding, equals the folded one (to
        1e-4, or 8 units of rounding in half precision, where folding moves the loss by a few)."""
        if folded_loss is None:
            return True
        with torch.no_grad():
            unfolded = mean_batch_loss(self.model, self.batches[0], self.loss_fn)
        rtol = max(1e-4, 8 * torch.finfo(unfolded.dtype).eps)  # a differentiated loss is floating
        return bool(torch.allclose(folded_loss, unfolded, rtol=rtol, atol=1e-6, equal_nan=True))

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``H v`` for a flat vector ``v`` of length :attr:`dim` (any float dtype; returns the same)."""
        pieces = self.split(v.to(self.device, self.dtype))

        def local_product() -> torch.Tensor:
            graphs = self._built()
            out = torch.zeros(self.dim, device=self.device, dtype=self.dtype)
            out_pieces = self.split(out)
            for live, grads in graphs:
                if not live:
                    continue
                # H v = ∂⟨∇L, v⟩/∂θ: differentiate the live gradient pieces against every parameter
                products = torch.autograd.grad(
                    grads,
                    self.params,
                    grad_outputs=[pieces[i] for i in live],
                    retain_graph=True,
                    allow_unused=True,
                )
                self.risk.add_into(out_pieces, products)
            return out

        # with data split across processes, H v is the sum of every shard's (weighted) product
        out = guarded_sum(local_product, shape=(self.dim,), dtype=self.dtype, device=self.device)
        self.num_matvecs += 1
        return out.to(v.dtype)

    def gradient(self) -> torch.Tensor:
        """The flat gradient ``∇L`` (summed over processes when sharded), free from the product graphs."""

        def local_gradient() -> torch.Tensor:
            self._built()
            assert self._local_gradient is not None  # _built() made it
            return self._local_gradient

        return guarded_sum(local_gradient, shape=(self.dim,), dtype=self.dtype, device=self.device)

    def lanczos_start(self, which: str, seed: int, scale: torch.Tensor | None = None) -> torch.Tensor | None:
        """Lanczos start vector for this operator (or for ``D H D`` with ``D = diag(scale)``).

        For the top end (``which`` ``"largest"`` or ``"both"``) a random unit vector plus the unit
        loss gradient (:func:`~lightning_landscape.core.linalg.spectrum.informed_start`); ``None`` (a random
        start) for ``"smallest"``, about which the gradient says nothing.
        """
        if which == "smallest":
            return None
        gradient = self.gradient()
        hint = gradient if scale is None else scale * gradient
        return informed_start(hint, self.dim, seed=seed, device=self.device, dtype=self.dtype)


class GGNOperator(_RiskOperator):
    """The generalized Gauss-Newton matrix of the mean cross-entropy, ``v ↦ G v``.

    ``G = (1/N) Σᵢ Jᵢᵀ (diag pᵢ − pᵢpᵢᵀ) Jᵢ`` with ``Jᵢ`` the Jacobian of sample i's logits with
    respect to the parameters and ``pᵢ`` its softmax: the Hessian with the second derivatives of
    the network dropped, so it is positive semi-definite everywhere (the usual curvature of Laplace
    approximations of neural networks). For a model linear in its parameters it equals the
    Hessian. Products are a forward-mode Jacobian product then a reverse-mode one
    (``torch.func.jvp``/``vjp`` over the risk's pure function of the parameters), summed over
    processes when sharded.
    Batches must be ``(x, y, ...)`` with class logits ``model(x)`` of shape ``(batch, classes)``.

    An operator like :class:`HessianOperator`; use inside :func:`gradient_context`.
    """

    def __init__(self, model: nn.Module, batches: Iterable[Any], names: Sequence[str] | None = None) -> None:
        super().__init__(EmpiricalRisk(model, batches, None, names))
        self._theta = self.risk.parameters()
        for batch in self.risk.batches:
            if not isinstance(batch, (list, tuple)) or len(batch) < 2:
                raise TypeError("the Gauss-Newton matrix needs batches (x, y) with class labels y.")

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``G v`` for a flat vector ``v`` of length :attr:`dim`."""
        from torch.func import jvp, vjp

        tangent = dict(zip(self.names, self.split(v.to(self.device, self.dtype))))

        def local_product() -> torch.Tensor:
            out = torch.zeros(self.dim, device=self.device, dtype=self.dtype)
            for weight, batch in zip(self.risk.weights, self.risk.batches):
                logits_of = self.risk.function(batch[0])
                logits, jv = jvp(logits_of, (self._theta,), (tangent,))[:2]
                if not is_class_logits(logits, batch[1]):
                    raise ValueError(
                        "the Gauss-Newton matrix needs class logits (batch, classes), got "
                        f"{tuple(logits.shape)}."
                    )
                p = torch.softmax(logits.detach(), dim=-1)
                u = p * jv - p * (p * jv).sum(dim=-1, keepdim=True)
                pull = vjp(logits_of, self._theta)[1]
                (pieces,) = pull(u * (weight / logits.shape[0]))
                out += torch.cat([pieces[n].reshape(-1) for n in self.names])
            return out

        out = guarded_sum(local_product, shape=(self.dim,), dtype=self.dtype, device=self.device)
        self.num_matvecs += 1
        return out.to(v.dtype)


def hessian_operator(
    model: nn.Module, batches: Iterable[Any], loss_fn: LossFn | None, names, num_samples: int | None
) -> HessianOperator:
    return HessianOperator(model, cache_batches(batches, module_device(model), num_samples), loss_fn, names)
