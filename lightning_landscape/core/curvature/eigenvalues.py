"""Hessian spectrum, trace and spectral density of a model's loss over fixed batches.

Every function evaluates the Hessian of the per-sample mean loss over ``batches`` at the current
weights, in eval mode, with respect to the trainable parameters (or ``names``), and leaves the
model, its ``.grad`` and every random stream exactly as before. They may be called from any hook,
validation hooks (inference mode) included.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from ..._checks import (
    check_bool,
    check_choice,
    check_int,
    check_params,
    check_positive_float,
    check_seed,
)
from ..base._inputs import evaluation_inputs
from ..base.batches import batch_size
from ..base.distributed import is_sharded
from ..base.evaluation import check_model
from ..base.losses import LossSpec
from ..base.params import (
    chosen_names,
    gradient_context,
)
from ..base.results import ResultFile
from ..linalg.hessian import hessian_operator
from ..linalg.spectrum import (
    lanczos_eigenpairs,
    warn_unconverged,
)

__all__ = [
    "check_eigenvalue_options",
    "check_hessian_directions",
    "EigenvalueResult",
    "hessian_directions",
    "HESSIAN_DIRECTIONS",
    "hessian_eigenvalues",
    "hessian_eigenvalues_per_batch",
    "PerBatchEigenvalues",
]


@dataclass(frozen=True, eq=False)
class EigenvalueResult(ResultFile):
    """Extreme Hessian eigenvalues from :func:`hessian_eigenvalues`.

    Attributes:
        eigenvalues: float64 CPU tensor: largest first for ``"largest"``, smallest first for
            ``"smallest"``, the ``k`` largest then the ``k`` smallest for ``"both"`` (NaN for a
            diverged model).
        converged: whether every wanted Ritz value met the tolerance within ``max_iter``; when
            not, the values are Ritz values, not converged eigenvalues.
        residuals: the residual bound of each value.
        num_matvecs: Hessian-vector products used.
        which: ``"largest"``, ``"smallest"`` or ``"both"``.
        eigenvectors: with ``return_eigenvectors=True``, unit eigenvectors as dicts name → CPU
            tensor, in the order of ``eigenvalues``; else ``None``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import hessian_eigenvalues
        >>> result = hessian_eigenvalues(net, data, k=2)
        >>> tuple(result.eigenvalues.shape), result.which, sorted(result.scalars())[:2]
        ((2,), 'largest', ['converged', 'eigenvalue'])
    """

    eigenvalues: torch.Tensor
    converged: bool
    residuals: torch.Tensor
    num_matvecs: int
    which: str
    eigenvectors: list[dict[str, torch.Tensor]] | None = None

    ARRAYS = {"eigenvalues": "float[k]", "residuals": "float[k]", "eigenvectors": "float[*]"}

    def scalars(self) -> dict[str, float]:
        """The first eigenvalue (the largest for ``"largest"`` and ``"both"``, the smallest for
        ``"smallest"``), whether Lanczos converged, its largest residual bound and the products
        used: the same keys for every ``k`` and ``which``."""
        return {
            "eigenvalue": float(self.eigenvalues[0]),
            "converged": float(self.converged),
            "max_residual": float(self.residuals.max()),
            "num_matvecs": float(self.num_matvecs),
        }


@dataclass(frozen=True, eq=False)
class PerBatchEigenvalues(ResultFile):
    """Hessian eigenvalues of the loss on each minibatch on its own
    (:func:`hessian_eigenvalues_per_batch`): the
    distribution of per-batch curvature (the "λ_max spectra" of the ViT landscape papers).

    Attributes:
        eigenvalues: ``(num_batches, wanted)`` float64, each row the :class:`EigenvalueResult`
            ``eigenvalues`` of that batch alone.
        batch_sizes: ``(num_batches,)`` the samples of each batch.
        converged: ``(num_batches,)`` whether Lanczos met its tolerance on each batch.
        which: ``"largest"``, ``"smallest"`` or ``"both"``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(8, 3), torch.randint(0, 2, (8,))) for _ in range(2)]
        >>> from lightning_landscape import hessian_eigenvalues_per_batch
        >>> per_batch = hessian_eigenvalues_per_batch(net, data)
        >>> per_batch.batch_sizes.tolist(), per_batch.scalars()["num_batches"]
        ([8, 8], 2.0)
    """

    eigenvalues: torch.Tensor
    batch_sizes: torch.Tensor
    converged: torch.Tensor
    which: str

    ARRAYS = {"eigenvalues": "float[b,k]", "batch_sizes": "int[b]", "converged": "bool[b]"}

    def scalars(self) -> dict[str, float]:
        """Summary of the first eigenvalue over batches: mean, median (of an even count, the mean
        of the middle two, as the figure's), min, max, std, count."""
        first = self.eigenvalues[:, 0]
        return {
            "mean": float(first.mean()),
            "median": float(first.quantile(0.5)),  # the midpoint of the middle two, as numpy's
            "min": float(first.min()),
            "max": float(first.max()),
            "std": float(first.std()) if first.numel() > 1 else 0.0,
            "num_batches": float(first.numel()),
        }


def check_eigenvalue_options(
    *,
    k: int,
    which: str,
    tol: float,
    max_iter: int,
    min_iter: int,
    seed: int,
    params: str | Sequence[str] | None = None,
    **_: Any,
) -> None:
    """The checks of :func:`hessian_eigenvalues`' options, usable before a model exists (monitors
    run them at construction, with the function's own defaults for the options not given).

    >>> check_eigenvalue_options(k=3, which="largest", tol=1e-4, max_iter=2, min_iter=1, seed=0)
    Traceback (most recent call last):
    ...
    ValueError: `max_iter` (2) must be at least the number of wanted eigenvalues (3).
    """
    check_int("k", k, minimum=1)
    check_choice("which", which, ("largest", "smallest", "both"))
    check_positive_float("tol", tol)
    check_int("max_iter", max_iter, minimum=1)
    check_int("min_iter", min_iter, minimum=1)
    check_seed("seed", seed)
    check_params("params", params)
    wanted = 2 * k if which == "both" else k
    if max_iter < wanted:
        raise ValueError(
            f"`max_iter` ({max_iter}) must be at least the number of wanted eigenvalues ({wanted})."
        )


def hessian_eigenvalues(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    k: int = 1,
    which: Literal["largest", "smallest", "both"] = "largest",
    loss_fn: LossSpec = None,
    tol: float = 1e-4,
    max_iter: int = 100,
    min_iter: int = 4,
    seed: int = 0,
    return_eigenvectors: bool = False,
    num_samples: int | None = None,
    params: str | Sequence[str] | None = None,
) -> EigenvalueResult:
    """Extreme eigenvalues of the loss Hessian by Lanczos with full reorthogonalization.

    Args:
        model: the network at the weights of interest.
        batches: evaluation batches (cached on the model's device once).
        k: eigenvalues at each wanted end.
        which: ``"largest"``, ``"smallest"`` (algebraically: the most negative) or ``"both"``.
        loss_fn: the loss: any form of :mod:`~lightning_landscape.core.base.losses`
            (default: the model's own ``training_step``, else the cross-entropy of ``(x, y)`` class logits).
        tol: relative residual bound at which Lanczos stops.
        max_iter: at most this many Hessian-vector products.
        min_iter: at least this many products.
        seed: seed of the random part of the start vector. For ``"largest"`` and ``"both"`` the
            start is that random unit vector plus the unit loss gradient
            (:func:`~lightning_landscape.core.linalg.spectrum.informed_start`): a converged Ritz value is
            only close to *some* eigenvalue, and from a purely random start the second eigenvalue
            can converge before the top one appears; the gradient gives the top eigenvector a large
            share (on the digits MLP and CNN: 11 and 5–6 products instead of up to 20).
        return_eigenvectors: also keep the eigenvectors (as dicts name → tensor) in the result.
        num_samples: read at most this many samples from ``batches`` (needed for an iterable
            without ``len``; default: every batch of a finite collection).
        params: only the trainable parameters matching these glob patterns (e.g. ``"*.lora_*"``);
            default every trainable parameter: the Hessian of the loss as a function of them.

    Per layer: :func:`~lightning_landscape.core.curvature.blocks.blockwise`; per batch:
    :func:`hessian_eigenvalues_per_batch`.

    Returns:
        An :class:`EigenvalueResult`: the
        eigenvalues (float64 CPU tensor), whether Lanczos met ``tol`` within ``max_iter``
        (``converged``; a warning says so when it did not), the residual bounds, the products used
        and, with ``return_eigenvectors``, the eigenvectors.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> result = hessian_eigenvalues(net, data, k=2)
        >>> result.eigenvalues.shape, result.converged
        (torch.Size([2]), True)
    """
    check_model(model)
    check_eigenvalue_options(
        k=k, which=which, tol=tol, max_iter=max_iter, min_iter=min_iter, seed=seed, params=params
    )
    check_bool("return_eigenvectors", return_eigenvectors)
    names = chosen_names(model, params)
    loss_fn, cached = evaluation_inputs(model, batches, loss_fn, num_samples)
    with gradient_context(model):
        op = hessian_operator(model, cached, loss_fn, names, None)
        result = lanczos_eigenpairs(
            op,
            k=k,
            which=which,
            tol=tol,
            max_iter=max_iter,
            min_iter=min_iter,
            seed=seed,
            return_eigenvectors=return_eigenvectors,
            start=op.lanczos_start(which, seed),
        )
    values = result.eigenvalues.cpu()
    if not result.converged and bool(torch.isfinite(values).all()):
        warn_unconverged(
            "hessian_eigenvalues",
            max_iter,
            f"its residuals met tol={tol:g} (residuals {[round(float(r), 6) for r in result.residuals]}); "
            "the values are Ritz values, not converged eigenvalues: raise `max_iter` or `tol`.",
        )
    vectors = None
    if return_eigenvectors:
        assert result.eigenvectors is not None  # asked for: Lanczos returned them
        vectors = [
            {
                n: piece.detach().cpu().clone()
                for n, piece in zip(op.names, op.split(result.eigenvectors[:, j]))
            }
            for j in range(result.eigenvectors.shape[1])
        ]
    return EigenvalueResult(
        eigenvalues=values,
        converged=result.converged,
        residuals=result.residuals.detach().cpu().double(),
        num_matvecs=result.num_steps,
        which=which,
        eigenvectors=vectors,
    )


def hessian_eigenvalues_per_batch(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    k: int = 1,
    which: Literal["largest", "smallest", "both"] = "largest",
    loss_fn: LossSpec = None,
    tol: float = 1e-4,
    max_iter: int = 100,
    min_iter: int = 4,
    seed: int = 0,
    num_samples: int | None = None,
    params: str | Sequence[str] | None = None,
) -> PerBatchEigenvalues:
    """The extreme Hessian eigenvalues of the loss on each batch of ``batches`` on its own: the
    distribution of per-batch curvature (each row what :func:`hessian_eigenvalues`, with the same
    options, gives for that one batch).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(8, 3), torch.randint(0, 2, (8,))) for _ in range(3)]
        >>> hessian_eigenvalues_per_batch(net, data).eigenvalues.shape
        torch.Size([3, 1])
    """
    check_model(model)
    check_eigenvalue_options(
        k=k, which=which, tol=tol, max_iter=max_iter, min_iter=min_iter, seed=seed, params=params
    )
    if is_sharded():
        raise ValueError(
            "hessian_eigenvalues_per_batch measures each batch on its own: call it outside "
            "`sharded(...)`, on each process's own batches."
        )
    loss_fn, cached = evaluation_inputs(model, batches, loss_fn, num_samples)
    options: dict[str, Any] = dict(
        k=k, which=which, loss_fn=loss_fn, tol=tol, max_iter=max_iter, min_iter=min_iter, seed=seed
    )
    rows = [hessian_eigenvalues(model, [batch], **options, params=params) for batch in cached]
    return PerBatchEigenvalues(
        eigenvalues=torch.stack([r.eigenvalues for r in rows]),
        batch_sizes=torch.tensor([batch_size(b) for b in cached]),
        converged=torch.tensor([r.converged for r in rows]),
        which=which,
    )


def check_hessian_directions(kind: Any, dims: int) -> None:
    """Refuse Hessian axes that cannot be had, naming ``directions``: a name outside
    :data:`HESSIAN_DIRECTIONS`, or ``"hessian_extremes"`` (the top and the bottom eigenvector) on
    other than two axes. The one check of functions, plans and monitors alike."""
    check_choice("directions", kind, HESSIAN_DIRECTIONS)
    if kind == "hessian_extremes" and dims != 2:
        raise ValueError("`directions='hessian_extremes'` spans two axes (top and bottom): use `dims=2`.")


def hessian_directions(
    model: nn.Module,
    batches: Iterable[Any],
    kind: Literal["hessian", "hessian_extremes"],
    dims: int,
    *,
    loss_fn: LossSpec = None,
    seed: int = 0,
    tol: float = 1e-4,
    max_iter: int = 100,
    params: str | Sequence[str] | None = None,
) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor]:
    """Landscape axes along Hessian eigenvectors: ``(directions, eigenvalues)``.

    ``"hessian"``: the top ``dims`` eigenvectors; ``"hessian_extremes"``: the top and the bottom
    one (``dims`` must be 2). Unit vectors over the trainable parameters matching ``params`` (all by
    default; names absent from a direction do not move), on the parameters' devices, from
    :func:`hessian_eigenvalues`; along
    one of them a quadratic loss is ``½ λ t²``.
    """
    check_hessian_directions(kind, dims)
    which: Literal["largest", "both"] = "largest" if kind == "hessian" else "both"
    k = dims if kind == "hessian" else 1
    result = hessian_eigenvalues(
        model,
        batches,
        k=k,
        which=which,
        loss_fn=loss_fn,
        seed=seed,
        tol=tol,
        max_iter=max_iter,
        return_eigenvectors=True,
        params=params,
    )
    devices = {n: p for n, p in model.named_parameters()}
    assert result.eigenvectors is not None  # asked for with return_eigenvectors=True
    vectors = [{n: t.to(devices[n]) for n, t in v.items()} for v in result.eigenvectors]
    return vectors, result.eigenvalues


HESSIAN_DIRECTIONS = ("hessian", "hessian_extremes")
"""The directions a landscape may take from the Hessian, by name (see
:func:`~lightning_landscape.core.curvature.eigenvalues.hessian_directions`)."""
