"""Frozen result dataclasses: CPU tensors plus the metadata that reproduces them.

Results are saved as ``.npz`` files (plain numpy arrays plus one JSON string of metadata, readable
without this package and loaded without pickle) so that figures can be redrawn later.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import numpy as np
import torch

__all__ = [
    "ResultFile",
    "LandscapeResult",
    "ResultFileError",
    "SharpnessRecord",
    "library_versions",
    "load_arrays",
    "result_format",
    "save_arrays",
]

_FORMAT_NAME = "lightning_landscape.LandscapeResult"
_FORMAT_VERSION = 1
_FORMAT = f"{_FORMAT_NAME}/{_FORMAT_VERSION}"
_ARRAY_FIELDS = ("coords", "loss", "accuracy", "directions", "computed")


class ResultFileError(ValueError):
    """A result file that cannot be read: not an ``.npz`` archive, truncated, another program's,
    another result type's, a newer format version, or missing fields or arrays."""


def library_versions() -> dict[str, str]:
    """Versions of the libraries that produced a result."""
    from .._version import __version__

    return {"lightning_landscape": __version__, "torch": torch.__version__, "numpy": np.__version__}


def save_arrays(path: str | os.PathLike[str], arrays: dict[str, Any]) -> str:
    """Write named arrays to an uncompressed ``.npz`` file, creating parent folders.

    The file is written under a temporary name beside ``path`` and renamed onto it, so ``path``
    holds either its former content or the new one, whole, even if the writer is killed.
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = f"{path}.{os.getpid()}.tmp"  # written whole, then renamed: a reader never sees half a file
    try:
        with open(partial, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path


def load_arrays(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` file, without pickle.

    Raises:
        ResultFileError: the file is not a readable ``.npz`` archive of plain arrays (truncated,
            another format, or holding pickled objects).
    """
    import zipfile

    try:
        with np.load(os.fspath(path), allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise ValueError("a single .npy array, not an .npz archive")
            return {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ResultFileError(
            f"cannot read result file {os.fspath(path)!r}: not a readable .npz archive of plain arrays "
            f"(truncated, another format, or pickled objects): {type(exc).__name__}: {exc}"
        ) from exc


def read_metadata(arrays: dict[str, Any], path: str = "") -> dict[str, Any]:
    """The JSON metadata object of a result file's arrays; :class:`ResultFileError` without one."""
    where = f" {path!r}" if path else ""
    if "metadata" not in arrays:
        raise ResultFileError(
            f"result file{where} has no lightning_landscape metadata (another program's .npz?)."
        )
    try:
        meta = json.loads(str(arrays["metadata"]))
    except json.JSONDecodeError as exc:
        raise ResultFileError(f"result file{where}: its metadata is not JSON ({exc}).") from exc
    if not isinstance(meta, dict):
        raise ResultFileError(f"result file{where}: its metadata is not a JSON object.")
    return meta


def check_format(meta: dict[str, Any], name: str, version: int, path: str = "") -> None:
    """Refuse metadata of another result type, another program or a newer format version."""
    where = f" {path!r}" if path else ""
    found = meta.get("format")
    if not isinstance(found, str) or "/" not in found:
        raise ResultFileError(f"result file{where} has no lightning_landscape format name (found {found!r}).")
    found_name, _, found_version = found.rpartition("/")
    if found_name != name:
        raise ResultFileError(f"result file{where} holds a {found_name!r}, not a {name!r}.")
    if not found_version.isdigit() or int(found_version) > version:
        raise ResultFileError(
            f"result file{where} has format version {found_version!r}; this lightning_landscape reads "
            f"{name} up to version {version}: upgrade it."
        )


@dataclass(frozen=True, eq=False)
class LandscapeResult:
    """A 1D or 2D loss landscape around a reference point θ₀.

    ``loss[i]`` (1D) or ``loss[i, j]`` (2D) is the loss at ``θ₀ + coords[0][i]·d₀ (+ coords[1][j]·d₁)``
    where ``d₀, d₁`` are ``directions``; for 2D, the first axis of ``loss`` runs along ``d₀`` (x) and
    the second along ``d₁`` (y). Non-finite values (a diverging point) are kept as they are.

    Attributes:
        coords: one 1-D float64 tensor of coefficients per axis.
        loss: per-sample mean loss, float64, shape ``(n,)`` or ``(n, n)``.
        accuracy: fraction of correct predictions, same shape as ``loss`` (NaN where the loss is
            NaN), or ``None`` when the loss is not a classification cross-entropy.
        directions: one dict name → CPU tensor per axis, after normalization (as used), for every
            parameter with ``requires_grad=True``; those held fixed (biases and norm layers with
            ``ignore_bias_and_norm``) have zero entries, frozen parameters are absent.
        seed: seed of the random directions, or ``None`` when directions were given.
        normalization: ``"filter"``, ``"layer"`` or ``None``.
        ignore_bias_and_norm: whether 1-D parameters (biases, norm-layer affine) were held fixed.
        bn_mode: how normalization layers were evaluated (``"eval"``: running statistics).
        num_samples: number of samples in the evaluation subset.
        loss_name: ``"cross_entropy"`` or the name of the user's ``loss_fn``.
        epoch: training epoch at which the landscape was taken, when known.
        global_step: training step at which the landscape was taken, when known.
        extra: free-form JSON-serializable metadata (e.g. library versions, direction cosine).
        computed: for a partial result (a chunked run not finished yet), a bool tensor shaped like
            ``loss`` that is True where the point was evaluated (``loss`` is NaN elsewhere);
            ``None`` for a complete result.
    """

    coords: tuple[torch.Tensor, ...]
    loss: torch.Tensor
    accuracy: torch.Tensor | None
    directions: tuple[dict[str, torch.Tensor], ...]
    seed: int | None
    normalization: str | None
    ignore_bias_and_norm: bool
    bn_mode: str
    num_samples: int
    loss_name: str = "cross_entropy"
    epoch: int | None = None
    global_step: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    computed: torch.Tensor | None = None

    @property
    def is_complete(self) -> bool:
        """Whether every grid point was evaluated (``computed`` is ``None`` or all True)."""
        return self.computed is None or bool(self.computed.all())

    @property
    def dims(self) -> int:
        """1 or 2."""
        return len(self.coords)

    @property
    def center_index(self) -> tuple[int, ...]:
        """Grid index of the point closest to θ₀ (the exact centre on a symmetric odd grid)."""
        return tuple(int(c.abs().argmin()) for c in self.coords)

    @property
    def center_loss(self) -> float:
        """Loss at the grid point closest to θ₀."""
        return float(self.loss[self.center_index])

    @property
    def center_accuracy(self) -> float | None:
        """Accuracy at the grid point closest to θ₀, if recorded."""
        return None if self.accuracy is None else float(self.accuracy[self.center_index])

    @property
    def num_nonfinite(self) -> int:
        """Number of grid points whose loss is NaN or infinite."""
        return int((~torch.isfinite(self.loss)).sum())

    @property
    def max_loss_rise(self) -> float:
        """Largest finite loss on the grid minus the centre loss (NaN if no point is finite)."""
        finite = self.loss[torch.isfinite(self.loss)]
        if finite.numel() == 0:
            return math.nan
        return float(finite.max()) - self.center_loss

    def scalars(self) -> dict[str, float]:
        """What a monitor logs: ``center_loss``, ``max_loss_rise``, ``num_nonfinite`` and, when
        recorded, ``center_accuracy``."""
        found = {
            "center_loss": self.center_loss,
            "max_loss_rise": self.max_loss_rise,
            "num_nonfinite": float(self.num_nonfinite),
        }
        if self.center_accuracy is not None:
            found["center_accuracy"] = self.center_accuracy
        return found

    # ------------------------------------------------------------------ (de)serialization
    def to_dict(self) -> dict[str, Any]:
        """Arrays and metadata as a flat dict of numpy arrays (the ``.npz`` layout)."""
        arrays: dict[str, Any] = {"loss": self.loss.numpy()}
        if self.accuracy is not None:
            arrays["accuracy"] = self.accuracy.numpy()
        if self.computed is not None:
            arrays["computed"] = self.computed.numpy()
        for axis, (c, d) in enumerate(zip(self.coords, self.directions)):
            arrays[f"coords/{axis}"] = c.numpy()
            for name, t in d.items():
                numpy_ok = t.dtype in (torch.float16, torch.float32, torch.float64)
                arrays[f"directions/{axis}/{name}"] = (t if numpy_ok else t.float()).numpy()
        meta = {
            "format": _FORMAT,
            "direction_names": [list(d) for d in self.directions],
        }
        for f in fields(self):
            if f.name not in _ARRAY_FIELDS:
                meta[f.name] = getattr(self, f.name)
        arrays["metadata"] = np.array(json.dumps(meta))
        return arrays

    @classmethod
    def from_dict(cls, arrays: dict[str, Any], path: str = "") -> LandscapeResult:
        """Inverse of :meth:`to_dict`.

        Metadata fields this version does not know (a newer writer's) are kept under
        ``extra["unknown_fields"]``; a missing field, a missing array or a shape that does not fit
        raises :class:`ResultFileError`.
        """
        where = f" {path!r}" if path else ""
        meta = read_metadata(arrays, path)
        check_format(meta, _FORMAT_NAME, _FORMAT_VERSION, path)
        meta.pop("format")
        known = {f.name for f in fields(cls)} - set(_ARRAY_FIELDS)
        unknown = {k: meta.pop(k) for k in list(meta) if k not in known and k != "direction_names"}
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        missing = sorted((required & known) - set(meta)) + (
            [] if "direction_names" in meta else ["direction_names"]
        )
        if missing:
            raise ResultFileError(f"result file{where} lacks the field(s) {missing}.")
        names = meta.pop("direction_names")
        try:
            coords = tuple(torch.from_numpy(np.asarray(arrays[f"coords/{a}"])) for a in range(len(names)))
            directions = tuple(
                {n: torch.from_numpy(np.array(arrays[f"directions/{a}/{n}"])) for n in axis_names}
                for a, axis_names in enumerate(names)
            )
            loss = torch.from_numpy(np.array(arrays["loss"]))
        except KeyError as exc:
            raise ResultFileError(f"result file{where} lacks the array {exc.args[0]!r}.") from exc
        accuracy, computed = (arrays.get(k) for k in ("accuracy", "computed"))
        accuracy = None if accuracy is None else torch.from_numpy(np.array(accuracy))
        computed = None if computed is None else torch.from_numpy(np.array(computed, dtype=bool))
        shape = tuple(len(c) for c in coords)
        for label, array in (("loss", loss), ("accuracy", accuracy), ("computed", computed)):
            if array is not None and tuple(array.shape) != shape:
                raise ResultFileError(
                    f"result file{where}: {label} of shape {tuple(array.shape)} does not fit the "
                    f"coordinates {shape}."
                )
        if unknown:
            meta["extra"] = {**meta.get("extra", {}), "unknown_fields": unknown}
        return cls(
            coords=coords, loss=loss, accuracy=accuracy, directions=directions, computed=computed, **meta
        )

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the result to ``path`` (an ``.npz`` file; parent folders are created)."""
        return save_arrays(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LandscapeResult:
        """Read a result written by :meth:`save` (errors: :class:`ResultFileError`)."""
        return cls.from_dict(load_arrays(path), os.fspath(path))

    def __eq__(self, other: object) -> bool:
        """Exact equality of every array (NaN equal to NaN) and every metadata field."""
        if not isinstance(other, LandscapeResult):
            return NotImplemented
        a, b = self.to_dict(), other.to_dict()
        if a.keys() != b.keys():
            return False
        return all(np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f") for k in a)

    __hash__ = None  # type: ignore[assignment]


_SHARPNESS_FORMAT_NAME = "lightning_landscape.SharpnessRecord"
_SHARPNESS_FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class SharpnessRecord:
    """What one :class:`~lightning_landscape.SharpnessMonitor` run measured, self-describing.

    Attributes:
        values: measure name → value (``top_eigenvalue``, ``trace``, ``trace_stderr``, ``keskar``,
            ``center_loss``, ...).
        arrays: the by-products that figures are drawn from, by name: ``density/nodes`` and
            ``density/weights`` (SLQ), ``ratio_map/coords/0|1``, ``ratio_map/lambda_max|min``,
            ``basin/radii`` and ``basin/crossed``.
        settings: what reproduces it: measures, their options, seed, number of samples, loss, and
            per figure its own settings (``density``: probes, steps, dimension; ``basin``: details).
        epoch: training epoch, when known.
        global_step: training step, when known.
        extra: free-form metadata (library versions).

    Example:
        >>> record = SharpnessRecord({"keskar": 0.5}, {}, {"seed": 0}, epoch=3, global_step=30)
        >>> import tempfile, os
        >>> path = record.save(os.path.join(tempfile.mkdtemp(), "s.npz"))
        >>> SharpnessRecord.load(path).values
        {'keskar': 0.5}
    """

    values: dict[str, float]
    arrays: dict[str, torch.Tensor]
    settings: dict[str, Any]
    epoch: int | None = None
    global_step: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def scalars(self) -> dict[str, float]:
        """Every measured value by name (what the monitor logs)."""
        return {k: float(v) for k, v in self.values.items()}

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the record to ``path`` (an ``.npz`` file: arrays plus one JSON metadata string)."""
        meta = {
            "format": f"{_SHARPNESS_FORMAT_NAME}/{_SHARPNESS_FORMAT_VERSION}",
            "values": {k: float(v) for k, v in self.values.items()},
            "settings": self.settings,
            "epoch": self.epoch,
            "global_step": self.global_step,
            "extra": {"versions": library_versions(), **self.extra},
        }
        arrays = {f"arrays/{k}": torch.as_tensor(v).numpy() for k, v in self.arrays.items()}
        arrays.update({f"values/{k}": np.array(float(v)) for k, v in self.values.items()})
        arrays["metadata"] = np.array(json.dumps(meta, default=str))
        return save_arrays(path, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SharpnessRecord:
        """Read a record written by :meth:`save` (errors: :class:`ResultFileError`)."""
        arrays = load_arrays(path)
        where = os.fspath(path)
        meta = read_metadata(arrays, where)
        check_format(meta, _SHARPNESS_FORMAT_NAME, _SHARPNESS_FORMAT_VERSION, where)
        missing = sorted({"values", "settings"} - set(meta))
        if missing:
            raise ResultFileError(f"result file {where!r} lacks the field(s) {missing}.")
        return cls(
            values={k: float(v) for k, v in meta["values"].items()},
            arrays={
                k.removeprefix("arrays/"): torch.from_numpy(v)
                for k, v in arrays.items()
                if k.startswith("arrays/")
            },
            settings=meta["settings"],
            epoch=meta.get("epoch"),
            global_step=meta.get("global_step"),
            extra=meta.get("extra", {}),
        )


def result_format(path: str | os.PathLike[str]) -> str:
    """The format name of a result file (``"lightning_landscape.LandscapeResult"``, ...)."""
    found = read_metadata(load_arrays(path), os.fspath(path)).get("format", "")
    return str(found).rpartition("/")[0]


# ---------------------------------------------------------------------------------- the protocol
def _encode(value: Any, key: str, arrays: dict[str, Any]) -> dict[str, Any]:
    """A JSON description of ``value``; its tensors go into ``arrays`` under names from ``key``."""
    import dataclasses

    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        numpy_ok = tensor.dtype not in (torch.bfloat16,) and not tensor.is_complex()
        arrays[key] = (tensor if numpy_ok else tensor.float()).numpy()
        return {"tensor": key, "dtype": str(tensor.dtype).removeprefix("torch.")}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        kind = type(value)
        if not kind.__module__.startswith("lightning_landscape."):
            raise TypeError(f"cannot save a {kind.__name__} inside a result: not a lightning_landscape type.")
        return {
            "dataclass": f"{kind.__module__}:{kind.__qualname__}",
            "fields": {
                f.name: _encode(getattr(value, f.name), f"{key}/{f.name}", arrays) for f in fields(value)
            },
        }
    if isinstance(value, dict):
        return {"dict": {str(k): _encode(v, f"{key}/{k}", arrays) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        items = [_encode(v, f"{key}/{i}", arrays) for i, v in enumerate(value)]
        return {"tuple" if isinstance(value, tuple) else "list": items}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}
    raise TypeError(f"cannot save a {type(value).__name__} inside a result ({key}).")


def _decode(spec: dict[str, Any], arrays: dict[str, Any], where: str) -> Any:
    """Inverse of :func:`_encode` (types are looked up in this package only)."""
    import importlib

    if "tensor" in spec:
        if spec["tensor"] not in arrays:
            raise ResultFileError(f"result file {where!r} lacks the array {spec['tensor']!r}.")
        tensor = torch.from_numpy(np.array(arrays[spec["tensor"]]))
        return tensor.to(getattr(torch, spec.get("dtype", "float64")))
    if "dataclass" in spec:
        module, _, name = spec["dataclass"].partition(":")
        if not module.startswith("lightning_landscape."):
            raise ResultFileError(
                f"result file {where!r} names a type outside lightning_landscape: {module}."
            )
        kind = getattr(importlib.import_module(module), name)
        return kind(**{k: _decode(v, arrays, where) for k, v in spec["fields"].items()})
    if "dict" in spec:
        return {k: _decode(v, arrays, where) for k, v in spec["dict"].items()}
    if "list" in spec:
        return [_decode(v, arrays, where) for v in spec["list"]]
    if "tuple" in spec:
        return tuple(_decode(v, arrays, where) for v in spec["tuple"])
    return spec.get("value")


class ResultFile:
    """``save``/``load``/``scalars`` for a frozen result dataclass (mixed in by every result type).

    A file is an ``.npz`` archive: every tensor of the result as an array, and one JSON string of
    metadata (``format`` ``lightning_landscape.<Type>/<version>``, then each field: its value, or
    where its tensors are). Loading reads no pickle and builds only this package's types.

    Example:
        >>> from lightning_landscape.core.spectrum import TraceEstimate
        >>> import tempfile, os
        >>> path = TraceEstimate(2.5, 0.1, 40, "hutch++").save(os.path.join(tempfile.mkdtemp(), "t.npz"))
        >>> TraceEstimate.load(path).scalars()
        {'estimate': 2.5, 'stderr': 0.1, 'num_matvecs': 40.0}
    """

    FORMAT_VERSION = 1

    @classmethod
    def format_name(cls) -> str:
        return f"lightning_landscape.{cls.__name__}"

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the result to ``path`` (an ``.npz`` file; written whole, then renamed)."""
        arrays: dict[str, Any] = {}
        described = {f.name: _encode(getattr(self, f.name), f"fields/{f.name}", arrays) for f in fields(self)}
        meta = {
            "format": f"{self.format_name()}/{self.FORMAT_VERSION}",
            "fields": described,
            "versions": library_versions(),
        }
        arrays["metadata"] = np.array(json.dumps(meta))
        return save_arrays(path, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]):
        """Read a result written by :meth:`save` (errors: :class:`ResultFileError`)."""
        where = os.fspath(path)
        arrays = load_arrays(path)
        meta = read_metadata(arrays, where)
        check_format(meta, cls.format_name(), cls.FORMAT_VERSION, where)
        described = meta.get("fields", {})
        missing = sorted(
            f.name
            for f in fields(cls)
            if f.name not in described and f.default is MISSING and f.default_factory is MISSING
        )
        if missing:
            raise ResultFileError(f"result file {where!r} lacks the field(s) {missing}.")
        known = {f.name for f in fields(cls)}
        return cls(**{k: _decode(v, arrays, where) for k, v in described.items() if k in known})

    def scalars(self) -> dict[str, float]:
        """The result's numbers by field name (what a monitor logs): every int or float field
        and every one-element tensor; booleans, strings and larger tensors are left out."""
        found = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.dtype == torch.bool:
                found[f.name] = float(value)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                found[f.name] = float(value)
        return found
