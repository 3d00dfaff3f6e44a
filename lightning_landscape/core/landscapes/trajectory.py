"""Optimizer trajectories (Li et al. 2018, §6): weight snapshots, their PCA plane and its landscape.

Snapshots live on the CPU (float32 by default, float16 on request) within a memory budget; past the
budget they spill to files. The PCA never forms a P×P matrix: it works on the n×n Gram matrix of
the n snapshot differences, accumulated tensor by tensor (in float64, on a device of the caller's
choice), so memory is O(n² + largest tensor · n).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from ..._checks import check_bool, check_int, check_positive_float
from ..base._inputs import evaluation_inputs
from ..base.batches import total_samples
from ..base.evaluation import check_model, loss_name
from ..base.losses import LossSpec
from ..base.params import apart_from, module_device, observing, selected_parameters
from ..base.progress import ProgressFn, check_progress, progress_reporter
from ..base.results import (
    LandscapeResult,
    ResultFile,
    ResultFileError,
    check_arrays,
    conform,
    file_tensor,
    guarded_read,
    library_versions,
    load_arrays,
    read_metadata,
    register_result_type,
    save_arrays,
    short_repr,
)
from ..linalg.spectrum import finite_eigh
from ._grid import check_grid_size, evaluate_points, grid_coordinates, linear_combination_writer, scan_grid

__all__ = [
    "pca_directions",
    "PCAResult",
    "SnapshotBuffer",
    "trajectory_landscape",
    "TrajectoryResult",
]

State = Mapping[str, torch.Tensor]


# ----------------------------------------------------------------------------- snapshots
class SnapshotBuffer:
    """Weight snapshots on the CPU, spilling to files past a memory budget.

    Args:
        budget_bytes: how many bytes of snapshots to keep in memory; later ones go to files.
        dtype: storage dtype, ``torch.float32`` (default) or ``torch.float16``.
        spill_dir: folder for spilled snapshots (required once the budget is exceeded).

    Example:
        >>> buffer = SnapshotBuffer(budget_bytes=1 << 20)
        >>> buffer.append({"w": torch.ones(2, 2)}, epoch=0)
        >>> len(buffer), buffer.epochs, buffer[0]["w"].device.type
        (1, [0], 'cpu')
    """

    def __init__(self, budget_bytes: int, dtype: torch.dtype = torch.float32, spill_dir: str | None = None):
        if dtype not in (torch.float32, torch.float16):
            raise ValueError(f"`dtype` must be torch.float32 or torch.float16, got {dtype}.")
        self.budget_bytes = int(budget_bytes)
        self.dtype = dtype
        self.spill_dir = spill_dir
        self._items: list[dict[str, torch.Tensor] | str] = []  # in memory, or a file path
        self.epochs: list[int] = []
        self.steps: list[int] = []

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes_in_memory(self) -> int:
        return sum(
            sum(t.numel() * t.element_size() for t in item.values())
            for item in self._items
            if isinstance(item, dict)
        )

    @property
    def spilled_files(self) -> list[str]:
        return [item for item in self._items if isinstance(item, str)]

    def append(self, state: State, epoch: int, step: int = 0) -> None:
        """Store a detached CPU copy of ``state`` (name → tensor)."""
        copy = {n: t.detach().to("cpu", self.dtype, copy=True) for n, t in state.items()}
        size = sum(t.numel() * t.element_size() for t in copy.values())
        if self.bytes_in_memory + size > self.budget_bytes:
            if self.spill_dir is None:
                raise RuntimeError("snapshot memory budget exceeded and no `spill_dir` to spill to.")
            os.makedirs(self.spill_dir, exist_ok=True)
            # absolute: a run resumed from another working directory still finds it
            path = os.path.abspath(
                os.path.join(self.spill_dir, f"snapshot-{len(self._items):05d}-epoch={epoch:03d}.pt")
            )
            torch.save(copy, path)
            self._items.append(path)
        else:
            self._items.append(copy)
        self.epochs.append(int(epoch))
        self.steps.append(int(step))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self._items[index]
        if isinstance(item, str):
            # memory-mapped: pages are read on demand and are not charged to the heap
            return torch.load(item, map_location="cpu", weights_only=True, mmap=True)
        return item

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def state_dict(self) -> dict[str, Any]:
        """In-memory snapshots as tensors, spilled ones as file paths (for checkpoints)."""
        return {
            "items": list(self._items),
            "epochs": list(self.epochs),
            "steps": list(self.steps),
            "dtype": str(self.dtype).removeprefix("torch."),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict`. Spilled snapshots whose files are gone are dropped with a
        warning now, at resume time (the path is drawn from the others), not found missing at the end.
        """
        dtype = state.get("dtype", "float32")
        if dtype not in ("float32", "float16"):
            raise ValueError(f"snapshot state: `dtype` must be 'float32' or 'float16', got {dtype!r}.")
        items, epochs, steps = list(state["items"]), list(state["epochs"]), list(state["steps"])
        if not len(items) == len(epochs) == len(steps):
            raise ValueError(
                f"snapshot state: {len(items)} items, {len(epochs)} epochs and {len(steps)} steps must agree."
            )
        missing = [i for i, item in enumerate(items) if isinstance(item, str) and not os.path.isfile(item)]
        if missing:
            warnings.warn(
                f"{len(missing)} spilled weight snapshot file(s) of the trajectory are gone "
                f"({items[missing[0]]!r}, ...); the trajectory is drawn without epochs "
                f"{[epochs[i] for i in missing]}.",
                RuntimeWarning,
                stacklevel=2,
            )
        gone = set(missing)
        keep = [i for i in range(len(items)) if i not in gone]
        self._items = [items[i] for i in keep]
        self.epochs = [int(epochs[i]) for i in keep]
        self.steps = [int(steps[i]) for i in keep]
        self.dtype = getattr(torch, dtype)


# ----------------------------------------------------------------------------- PCA
@dataclass(frozen=True, eq=False)
class PCAResult(ResultFile):
    """The principal plane of a trajectory.

    Attributes:
        directions: ``k`` dicts name → CPU float32 tensor; together they are orthonormal vectors of
            unit norm overall (not filter-normalized).
        explained_variance_ratio: ``(k,)`` share of the (centred) variance along each direction.
        coords: ``(n, k)`` coordinates of every difference ``θ_i − θ_final`` along the directions.
        residuals: ``(n,)`` distance ``‖(θ_i − θ_final) − projection‖`` of each snapshot from the
            plane through θ_final: how faithful the picture is.
        singular_values: ``(k,)`` singular values of the (centred) difference matrix.
        centered: whether the differences were centred before the PCA.

    Example:
        >>> import torch
        >>> from lightning_landscape import pca_directions
        >>> final = {"w": torch.zeros(3)}
        >>> path = [{"w": torch.tensor([3.0, 0.0, 0.0])}, {"w": torch.tensor([1.0, 1.0, 0.0])}, final]
        >>> pca = pca_directions(path, final, k=2)
        >>> tuple(pca.coords.shape), round(float(pca.explained_variance_ratio.sum()), 6)
        ((3, 2), 1.0)
    """

    directions: tuple[dict[str, torch.Tensor], ...]
    explained_variance_ratio: torch.Tensor
    coords: torch.Tensor
    residuals: torch.Tensor
    singular_values: torch.Tensor
    centered: bool

    ARRAYS = {
        "directions": "float[*]",
        "explained_variance_ratio": "float[k]",
        "coords": "float[n,k]",
        "residuals": "float[n]",
        "singular_values": "float[k]",
    }

    def scalars(self) -> dict[str, float]:
        """The explained variance of both axes and the largest residual off the plane."""
        return {
            "explained_variance_pc1": float(self.explained_variance_ratio[0]),
            "explained_variance_pc2": float(self.explained_variance_ratio[1]),
            "max_residual": float(self.residuals.max()),
        }


def _difference_chunks(
    snapshots: Sequence[State],
    final: State,
    names: Sequence[str],
    ignored: set[str],
    device: torch.device,
    chunk_bytes: int,
):
    """``(name, start, stop, d)``: ``d`` the (n, stop − start) float64 matrix of
    ``θ_i[name] − θ_final[name]`` over elements ``start:stop`` of the flattened tensor, chunked so
    that ``d`` takes at most ``chunk_bytes`` (at least one element per row). Snapshots that live in
    memory-mapped files are read slice by slice; a pass holds about four chunks at a time."""
    n = len(snapshots)
    step = max(1, chunk_bytes // (8 * max(n, 1)))
    for name in names:
        numel = final[name].numel()
        base = final[name].detach().reshape(-1)
        for start in range(0, numel, step):
            stop = min(numel, start + step)
            if name in ignored:
                yield name, start, stop, torch.zeros(n, stop - start, dtype=torch.float64, device=device)
                continue
            d = torch.empty(n, stop - start, dtype=torch.float64, device=device)
            for i, snapshot in enumerate(snapshots):
                d[i] = snapshot[name].detach().reshape(-1)[start:stop].to(device, torch.float64)
            d -= base[start:stop].to(device, torch.float64)
            yield name, start, stop, d


def pca_directions(
    snapshots: Sequence[State],
    final: State,
    k: int = 2,
    *,
    center: bool = True,
    ignore_bias_and_norm: bool = False,
    device: torch.device | str | None = None,
    chunk_bytes: int = 16 * 2**20,
) -> PCAResult:
    """PCA of the differences ``θ_i − θ_final`` of a trajectory (Li et al. 2018).

    With ``center=True`` (default) the rows are centred before the PCA, as in the paper's code
    (scikit-learn's ``PCA``); the coordinates and residuals are those of the uncentred differences,
    so θ_final sits at the origin of the plane. Directions are unit vectors in the full parameter
    space (not filter-normalized). Their sign is fixed so that the largest-magnitude entry of the
    corresponding left singular vector is positive (scikit-learn's convention).

    The n×n Gram matrix is accumulated chunk by chunk in float64 on ``device`` (default: the
    device of ``final``), never a P×P matrix: each pass reads the snapshots ``chunk_bytes`` of
    differences at a time, so the working memory stays within about ``4 × chunk_bytes`` besides the
    k directions returned, however many snapshots there are (spilled ones are memory-mapped: 11
    spilled snapshots of 4 MB take 32 MB at ``chunk_bytes`` = 4 MB, against 435 MB when every
    tensor's differences were stacked at once).

    Args:
        snapshots: n dicts name → tensor (e.g. one per epoch, the initialization first).
        final: the reference θ_final (the names define the parameter space).
        k: number of principal directions.
        center: subtract the mean difference before the PCA.
        ignore_bias_and_norm: leave out tensors with ``ndim <= 1`` (Li et al.'s ``--ignore biasbn``).
        device: where to compute.
        chunk_bytes: working memory of one chunk of differences.

    Returns:
        A :class:`PCAResult`.

    Example:
        >>> final = {"w": torch.zeros(3)}
        >>> path = [{"w": torch.tensor([3.0, 0.0, 0.0])}, {"w": torch.tensor([1.0, 1.0, 0.0])}, final]
        >>> pca = pca_directions(path, final, k=2)
        >>> round(float(pca.explained_variance_ratio.sum()), 6), float(pca.residuals.abs().max()) < 1e-6
        (1.0, True)
    """
    names = list(final)
    _check_pca_inputs(snapshots, names, k, center, ignore_bias_and_norm, chunk_bytes)
    device = torch.device(device) if device is not None else final[names[0]].device
    ignored = {nm for nm in names if ignore_bias_and_norm and final[nm].ndim <= 1}

    def chunks() -> Iterator[tuple[str, int, int, torch.Tensor]]:
        return _difference_chunks(snapshots, final, names, ignored, device, chunk_bytes)

    gram = _centred(
        sum((d @ d.T for *_, d in chunks()), torch.zeros(1, dtype=torch.float64, device=device)), center
    )
    u, variances = _top_eigenvectors(gram, k)
    singular = variances.sqrt()
    directions, coords, residuals = _project(chunks(), final, u, singular, center)
    return PCAResult(
        directions=tuple(directions),
        explained_variance_ratio=_explained_ratio(variances, gram).cpu(),
        coords=coords.cpu(),
        residuals=residuals.cpu(),
        singular_values=singular.cpu(),
        centered=center,
    )


def _check_pca_inputs(
    snapshots: Sequence[State],
    names: list[str],
    k: int,
    center: bool,
    ignore_bias_and_norm: bool,
    chunk_bytes: int,
) -> None:
    """Refuse arguments a PCA of the path cannot take, naming them."""
    check_int("k", k, minimum=1)
    check_bool("center", center)
    check_bool("ignore_bias_and_norm", ignore_bias_and_norm)
    check_int("chunk_bytes", chunk_bytes, minimum=1)
    if len(snapshots) < k + int(center):
        raise ValueError(
            f"`snapshots` must hold at least {k + int(center)} snapshots for k={k}, got {len(snapshots)}."
        )
    missing = sorted({nm for s in snapshots for nm in names if nm not in s})
    if missing:
        raise ValueError(f"snapshots lack tensors {missing} of `final`.")


def _gram(chunks: Iterable[tuple[str, int, int, torch.Tensor]], n: int, device: torch.device) -> torch.Tensor:
    """The n×n Gram matrix ``D Dᵀ`` of the differences, accumulated chunk by chunk in float64."""
    gram = torch.zeros(n, n, dtype=torch.float64, device=device)
    for *_, d in chunks:
        gram += d @ d.T
    return gram


def _centred(gram: torch.Tensor, center: bool) -> torch.Tensor:
    """``H G H`` with the centring matrix ``H = I − 1/n`` (``G`` itself without centring)."""
    if not center:
        return gram
    n = gram.shape[0]
    h = torch.eye(n, dtype=torch.float64, device=gram.device) - 1.0 / n
    return h @ gram @ h


def _top_eigenvectors(gram: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` leading eigenvectors ``u`` of the Gram matrix (signed as scikit-learn does: the
    largest-magnitude entry of each column positive) and their variances (eigenvalues ≥ 0)."""
    eigenvalues, eigenvectors = finite_eigh(gram, "trajectory PCA")
    order = torch.argsort(eigenvalues, descending=True)[:k]
    u = eigenvectors[:, order]
    signs = torch.sign(u.gather(0, u.abs().argmax(dim=0, keepdim=True))).squeeze(0)
    return u * torch.where(signs == 0, torch.ones_like(signs), signs), eigenvalues[order].clamp_min(0.0)


def _project(
    chunks: Iterable[tuple[str, int, int, torch.Tensor]],
    final: State,
    u: torch.Tensor,
    singular: torch.Tensor,
    center: bool,
) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor, torch.Tensor]:
    """The unit directions ``v = Dcᵀ u / s``, the coordinates ``D v`` of the uncentred differences
    and each snapshot's distance from the plane, in one more pass over the chunks."""
    n, k = u.shape
    usable = (
        singular > singular[0] * 1e-12 if singular[0] > 0 else torch.zeros_like(singular, dtype=torch.bool)
    )
    inverse = torch.where(usable, 1.0 / torch.where(usable, singular, torch.ones_like(singular)), 0.0)
    flat = [{nm: torch.empty(t.numel(), dtype=torch.float32) for nm, t in final.items()} for _ in range(k)]
    coords = torch.zeros(n, k, dtype=torch.float64, device=u.device)
    norms_sq = torch.zeros(n, dtype=torch.float64, device=u.device)
    for name, start, stop, d in chunks:
        dc = d - d.mean(dim=0, keepdim=True) if center else d
        v = (dc.T @ u) * inverse  # (stop − start, k)
        for j in range(k):
            flat[j][name][start:stop] = v[:, j].to("cpu", torch.float32)
        coords += d @ v
        norms_sq += d.square().sum(dim=1)
    directions = [{nm: t.reshape(final[nm].shape) for nm, t in dj.items()} for dj in flat]
    residuals = (norms_sq - coords.square().sum(dim=1)).clamp_min(0.0).sqrt()
    return directions, coords, residuals


def _explained_ratio(variances: torch.Tensor, gram: torch.Tensor) -> torch.Tensor:
    """Each direction's share of the total variance (NaN for a diverged trajectory)."""
    total = gram.diagonal().sum()
    if not bool(torch.isfinite(total)):  # a diverged trajectory: no meaningful shares
        return torch.full_like(variances, float("nan"))
    return variances / total if total > 0 else torch.zeros_like(variances)


# ----------------------------------------------------------------------------- plane landscape
@register_result_type
@dataclass(frozen=True, eq=False)
class TrajectoryResult:
    """A trajectory drawn on the loss landscape of its PCA plane.

    Attributes:
        pca: the :class:`PCAResult` (coordinates of every snapshot, explained variance, residuals).
        landscape: loss on the plane ``θ_final + x·pc₁ + y·pc₂``, on a grid covering the path.
        epochs: completed epochs at each snapshot (0 = initialization).
        snapshot_loss: the true loss at each snapshot θ_i.
        plane_loss: the loss at each snapshot's projection onto the plane; compare with
            ``snapshot_loss`` to see how much the plane hides.
        extra: metadata (versions, margin, ...).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> weights = dict(net.named_parameters())
        >>> moved = lambda i: {n: p.detach() + 0.1 * i * torch.randn_like(p) for n, p in weights.items()}
        >>> path = [moved(i) for i in range(3)]
        >>> from lightning_landscape import trajectory_landscape
        >>> result = trajectory_landscape(net, data, path, num_points=3)
        >>> "explained_variance_pc1" in result.scalars()
        True
    """

    pca: PCAResult
    landscape: LandscapeResult
    epochs: tuple[int, ...]
    snapshot_loss: torch.Tensor
    plane_loss: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)

    def scalars(self) -> dict[str, float]:
        """What the monitor logs: the explained variance of both axes, the largest residual off
        the plane, the largest gap between a snapshot's loss and its projection's, and the
        non-finite losses on the grid and at the snapshots."""
        gap = (self.plane_loss - self.snapshot_loss).abs()
        return {
            **self.pca.scalars(),
            "max_plane_loss_gap": float(gap[torch.isfinite(gap)].max()) if gap.isfinite().any() else math.nan,
            "num_nonfinite": float(
                (~torch.isfinite(self.landscape.loss)).sum() + (~torch.isfinite(self.snapshot_loss)).sum()
            ),
        }

    ARRAYS = {"snapshot_loss": "float[n]", "plane_loss": "float[n]"}
    __repr__ = short_repr
    _PCA_ARRAYS = ("explained_variance_ratio", "coords", "residuals", "singular_values")

    def to_dict(self) -> dict[str, Any]:
        arrays = {f"landscape/{k}": v for k, v in self.landscape.to_dict().items()}
        arrays.update({f"pca/{k}": getattr(self.pca, k).numpy() for k in self._PCA_ARRAYS})
        arrays.update(
            {
                "pca/centered": np.array(self.pca.centered),
                "epochs": np.array(self.epochs, dtype=np.int64),
                "snapshot_loss": self.snapshot_loss.numpy(),
                "plane_loss": self.plane_loss.numpy(),
                # the layout's own name (files before issue 25 have only the landscape's metadata)
                "metadata": np.array(
                    json.dumps({"format": "lightning_landscape.TrajectoryResult/1", "extra": self.extra})
                ),
            }
        )
        return arrays

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write every array (and the landscape's metadata) to an ``.npz`` file."""
        return save_arrays(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrajectoryResult:
        """Read a result written by :meth:`save` (errors:
        :class:`~lightning_landscape.core.base.results.ResultFileError`)."""
        where = os.fspath(path)
        return guarded_read(lambda: cls._from_arrays(load_arrays(path), where), where)

    @classmethod
    def _from_arrays(cls, arrays: dict[str, Any], where: str) -> TrajectoryResult:
        landscape = LandscapeResult.from_dict(
            {k.removeprefix("landscape/"): v for k, v in arrays.items() if k.startswith("landscape/")}, where
        )
        needed = [f"pca/{k}" for k in cls._PCA_ARRAYS] + [
            "pca/centered",
            "epochs",
            "snapshot_loss",
            "plane_loss",
        ]
        missing = [k for k in needed if k not in arrays]
        if missing:
            raise ResultFileError(f"trajectory result file {where!r} lacks the array(s) {missing}.")
        extra = {}
        if "metadata" in arrays:
            meta = read_metadata(arrays, where)
            if meta.get("format") != "lightning_landscape.TrajectoryResult/1":
                raise ResultFileError(
                    f"result file {where!r} holds a {str(meta.get('format'))[:80]!r}, not a trajectory."
                )
            extra = conform(meta.get("extra", {}), dict[str, Any], where, "extra")
        centered = file_tensor(arrays["pca/centered"], where, "pca/centered", "bool")
        if centered.ndim != 0:
            raise ResultFileError(f"result file {where!r}: 'pca/centered' must be one boolean.")
        pca = PCAResult(
            directions=landscape.directions,
            centered=bool(centered),
            **{k: file_tensor(arrays[f"pca/{k}"], where, f"pca/{k}", "float") for k in cls._PCA_ARRAYS},
        )
        check_arrays(PCAResult, {f.name: getattr(pca, f.name) for f in fields(pca)}, where, "pca/")
        epochs = file_tensor(arrays["epochs"], where, "epochs", "int")
        values = {k: file_tensor(arrays[k], where, k, "float") for k in ("snapshot_loss", "plane_loss")}
        check_arrays(cls, {**values, "epochs": epochs}, where)
        if epochs.shape != values["snapshot_loss"].shape or pca.coords.shape[0] != epochs.numel():
            raise ResultFileError(
                f"result file {where!r}: {epochs.numel()} epochs, {tuple(pca.coords.shape)} PCA "
                f"coordinates and {tuple(values['snapshot_loss'].shape)} snapshot losses do not describe "
                "the same snapshots."
            )
        return cls(pca=pca, landscape=landscape, epochs=tuple(int(e) for e in epochs), extra=extra, **values)


def _axis_coords(values: torch.Tensor, num_points: int, margin: float) -> torch.Tensor:
    low, high = float(values.min()), float(values.max())
    width = max(high - low, 1e-12, 0.05 * max(abs(low), abs(high)))
    return grid_coordinates((low - margin * width, high + margin * width), num_points)


def _checked_snapshots(model: nn.Module, snapshots: Any) -> list[dict[str, torch.Tensor]]:
    """At least three snapshots, each a dict name -> tensor, copied apart from the model's own."""
    if isinstance(snapshots, (Mapping, str)) or not all(isinstance(s, Mapping) for s in snapshots):
        raise TypeError("`snapshots` must be a sequence of dicts name -> tensor (one per point of the path).")
    snapshots = [apart_from(model, s) for s in snapshots]  # a live state_dict() among them stays put
    if len(snapshots) < 3:
        raise ValueError(
            f"`snapshots` must hold at least 3 weight snapshots for a plane, got {len(snapshots)}."
        )
    return snapshots


def _checked_epochs(epochs: Any, count: int) -> tuple[int, ...]:
    """One label per snapshot: the given integers >= 0, or 0, 1, ... by default."""
    if epochs is None:
        return tuple(range(count))
    message = f"`epochs` must be None or one integer >= 0 per snapshot ({count}), got {epochs!r}."
    if isinstance(epochs, (str, bytes, Mapping)) or not isinstance(epochs, Sequence):
        raise TypeError(message)
    if len(epochs) != count or not all(
        isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in epochs
    ):
        raise ValueError(message)
    return tuple(epochs)


def trajectory_landscape(
    model: nn.Module,
    batches: Iterable[Any],
    snapshots: Sequence[State],
    *,
    epochs: Sequence[int] | None = None,
    num_points: int = 21,
    margin: float = 0.2,
    center: bool = True,
    ignore_bias_and_norm: bool = False,
    loss_fn: LossSpec = None,
    num_samples: int | None = None,
    progress_bar: bool | ProgressFn = False,
    chunk_bytes: int = 16 * 2**20,
    params: str | Sequence[str] | None = None,
) -> TrajectoryResult:
    """PCA plane of ``snapshots`` around the model's current weights, with the loss over it.

    The reference θ_final is the current value of the model's trainable parameters. The grid covers
    the projected path plus ``margin`` (a fraction of its extent) on each side. The true loss at
    every snapshot and the loss at its projection are evaluated too. The model, its flags and every
    random stream are left exactly as they were.

    Args:
        model: the network at θ_final.
        batches: evaluation batches (moved to the model's device once).
        snapshots: the trajectory, n dicts name → tensor (any device or float dtype).
        epochs: a label per snapshot (completed epochs; default 0, 1, ...).
        num_points: grid points per axis of the plane.
        margin: extra room around the projected path, as a fraction of its extent.
        center: centre the differences before the PCA (the paper's code does).
        ignore_bias_and_norm: leave 1-D tensors out of the PCA.
        loss_fn: the loss: any form of :mod:`~lightning_landscape.core.base.losses`
            (default: the model's own ``training_step``, else the cross-entropy of ``(x, y)`` class logits).
        num_samples: read at most this many samples from ``batches``.
        progress_bar: show a progress bar (``True``) or call ``progress_bar(points_done)`` after each
            grid point.
        chunk_bytes: working memory of the PCA's chunks (see :func:`pca_directions`).
        params: the PCA space and the plane: only the trainable parameters matching these glob
            patterns (default all of them; snapshots need hold only those).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> weights = dict(net.named_parameters())
        >>> moved = lambda i: {n: p.detach() + 0.1 * i * torch.randn_like(p) for n, p in weights.items()}
        >>> path = [moved(i) for i in range(3)]
        >>> from lightning_landscape import trajectory_landscape
        >>> result = trajectory_landscape(net, data, path, num_points=3)
        >>> tuple(result.landscape.loss.shape), result.epochs
        ((3, 3), (0, 1, 2))
    """
    check_model(model)
    check_int("num_points", num_points, minimum=2)
    check_grid_size("num_points", num_points, 2)
    check_positive_float("margin", margin, maximum=100.0)
    check_bool("center", center)
    check_bool("ignore_bias_and_norm", ignore_bias_and_norm)
    check_progress("progress_bar", progress_bar)
    check_int("chunk_bytes", chunk_bytes, minimum=1)
    snapshots = _checked_snapshots(model, snapshots)
    epochs = _checked_epochs(epochs, len(snapshots))
    chosen = list(selected_parameters(model, params))
    device = module_device(model)
    loss_fn, cached = evaluation_inputs(model, batches, loss_fn, num_samples)
    progress = progress_reporter(progress_bar, num_points**2, "trajectory plane")
    with observing(model) as saved, progress as on_point:
        final = {n: saved.parameters[n] for n in chosen}
        pca = pca_directions(
            snapshots,
            final,
            k=2,
            center=center,
            ignore_bias_and_norm=ignore_bias_and_norm,
            device=device,
            chunk_bytes=chunk_bytes,
        )
        axes = [{n: t.to(final[n]) for n, t in d.items()} for d in pca.directions]
        coords = [_axis_coords(pca.coords[:, j], num_points, margin) for j in range(2)]
        loss, accuracy = scan_grid(model, cached, final, axes, coords, loss_fn, on_point)
        on_plane = linear_combination_writer(model, final, axes)
        points = [tuple(row) for row in pca.coords.tolist()]
        plane_loss, _ = evaluate_points(model, cached, points, on_plane, loss_fn)
        snapshot_loss, _ = evaluate_points(
            model, cached, [(i,) for i in range(len(snapshots))], _snapshot_writer(model, snapshots), loss_fn
        )
    landscape = LandscapeResult(
        coords=tuple(coords),
        loss=loss,
        accuracy=accuracy,
        directions=pca.directions,
        seed=None,
        normalization=None,
        ignore_bias_and_norm=ignore_bias_and_norm,
        bn_mode="eval",
        num_samples=total_samples(cached),
        loss_name=loss_name(loss_fn),
        extra={"versions": library_versions(), "kind": "pca_plane", "margin": margin},
    )
    return TrajectoryResult(
        pca=pca,
        landscape=landscape,
        epochs=epochs,
        snapshot_loss=snapshot_loss,
        plane_loss=plane_loss,
    )


def _snapshot_writer(model: nn.Module, snapshots: Sequence[State]):
    params = dict(model.named_parameters())

    def write(point: tuple[float, ...]) -> None:  # the point is (snapshot index,)
        snapshot = snapshots[int(point[0])]
        names = [n for n in snapshot if n in params]
        torch._foreach_copy_([params[n] for n in names], [snapshot[n].to(params[n].device) for n in names])

    return write
