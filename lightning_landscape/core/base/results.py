"""Frozen result dataclasses: CPU tensors plus the metadata that reproduces them.

Results are saved as ``.npz`` files (plain numpy arrays plus one JSON string of metadata, readable
without this package and loaded without pickle) so that figures can be redrawn later.

Reading a file never runs code and builds nothing but our result types:

- the archive is read with ``allow_pickle=False``; an array must be a plain number or boolean
  array (strings, objects, complex numbers and other dtypes are refused);
- a result type, nested ones included, is named in the file by its registered format name
  (``lightning_landscape.SLQNodes``), looked up in :data:`RESULT_TYPES`, never imported from a
  module path found in the file; a name that is not registered is refused;
- every field is checked against the dataclass's annotation (``int``, ``float``, ``str``,
  ``bool``, tensors, containers of them, nested result types), and every tensor's kind and shape
  against the type's declared ``ARRAYS`` (``"float[n,k]"``);
- anything else is answered with one :class:`ResultFileError` that names the file and the field.
"""

from __future__ import annotations

import json
import math
import os
import re
import types
import typing
import zipfile
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any, ClassVar, Literal, TypeVar, Union, cast

import numpy as np
import torch

__all__ = [
    "guarded_read",
    "LandscapeResult",
    "library_versions",
    "load_arrays",
    "load_result",
    "register_result_type",
    "result_format",
    "RESULT_TYPES",
    "ResultFile",
    "ResultFileError",
    "save_arrays",
    "SharpnessRecord",
    "short_repr",
]

_FORMAT_NAME = "lightning_landscape.LandscapeResult"
_FORMAT_VERSION = 1
_FORMAT = f"{_FORMAT_NAME}/{_FORMAT_VERSION}"
_ARRAY_FIELDS = ("coords", "loss", "accuracy", "directions", "computed")


class ResultFileError(ValueError):
    """A result file that cannot be read: not an ``.npz`` archive, truncated, another program's,
    another result type's, a newer format version, missing or wrongly typed fields or arrays, or
    naming a type that is not one of our result types.

    Example:
        >>> import os, tempfile
        >>> from lightning_landscape import LandscapeResult
        >>> path = os.path.join(tempfile.mkdtemp(), "not_ours.npz")
        >>> _ = open(path, "w").write("plain text")
        >>> try:
        ...     LandscapeResult.load(path)
        ... except ResultFileError as error:
        ...     print(type(error).__name__)
        ResultFileError
    """


# ---------------------------------------------------------------------------------- the registry
RESULT_TYPES: dict[str, type] = {}
"""Every result type a file may hold, by its stable format name (``lightning_landscape.<Type>``).

The only types a file can make :func:`load_result` or a nested field build; a file names them by
this name, never by a module path, so files survive a module's move."""

_PREFIX = "lightning_landscape."


def register_result_type(kind: type) -> type:
    """Add the dataclass ``kind`` to :data:`RESULT_TYPES` under ``lightning_landscape.<its name>``
    (a class decorator; :class:`ResultFile` subclasses of this package are registered by it).

    Raises:
        TypeError: ``kind`` is not a dataclass of this package, or another type has its name.
    """
    if not kind.__module__.startswith(_PREFIX):
        raise TypeError(f"only lightning_landscape's own types are result types, not {kind.__qualname__}.")
    name = _PREFIX + kind.__name__
    if RESULT_TYPES.setdefault(name, kind) is not kind:
        raise TypeError(f"two result types are called {name!r}: {RESULT_TYPES[name]} and {kind}.")
    return kind


def result_type(name: Any, where: str = "") -> type:
    """The registered result type called ``name`` (a format name, or a former writer's
    ``module:Type``, of which only the type's name is used); :class:`ResultFileError` otherwise."""
    # every result type has registered: importing this module ran ``lightning_landscape.core``'s
    # ``__init__`` first, which imports every room
    if isinstance(name, str) and ":" in name:  # written before issue 25: 'lightning_landscape.core.x:Type'
        module, _, qualname = name.partition(":")
        name = _PREFIX + qualname if module.startswith(_PREFIX) else name
    found = RESULT_TYPES.get(name) if isinstance(name, str) else None
    if found is None:
        known = ", ".join(sorted(n.removeprefix(_PREFIX) for n in RESULT_TYPES))
        raise ResultFileError(
            f"result file{_at(where)} names the type {str(name)[:80]!r}, which is not one of "
            f"lightning_landscape's result types ({known})."
        )
    return found


def short_repr(result: Any) -> str:
    """``Type(field=..., ...)`` with every tensor as its shape and dtype (a number where it holds
    one) and every container of tensors summarized: a result's repr stays a line or two however
    large its arrays (a landscape's directions hold a copy of the model)."""
    parts = [f"{f.name}={_summary(getattr(result, f.name))}" for f in fields(result)]
    return f"{type(result).__name__}({', '.join(parts)})"


def _summary(value: Any, depth: int = 0) -> str:
    if isinstance(value, torch.Tensor):
        if value.numel() == 1:
            return f"tensor({value.item():.6g})"
        return f"tensor(shape={tuple(value.shape)}, dtype={str(value.dtype).removeprefix('torch.')})"
    if is_dataclass(value) and not isinstance(value, type):
        return type(value).__name__ + "(...)" if depth else short_repr(value)
    if isinstance(value, dict):
        if value and all(isinstance(v, torch.Tensor) for v in value.values()):
            return f"{{{len(value)} tensors}}"
        shown = [f"{k!r}: {_summary(v, depth + 1)}" for k, v in list(value.items())[:6]]
        return "{" + ", ".join(shown) + (", ..." if len(value) > 6 else "") + "}"
    if isinstance(value, (list, tuple)):
        if len(value) > 6 or any(isinstance(v, (dict, torch.Tensor)) for v in value):
            return f"[{len(value)} {'items' if not value else type(value[0]).__name__ + 's'}]"
        return repr(value)
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _at(where: str) -> str:
    return f" {where!r}" if where else ""


# ---------------------------------------------------------------------------------- files
def library_versions() -> dict[str, str]:
    """Versions of the libraries that produced a result."""
    from ..._version import __version__

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
        FileNotFoundError: there is no file at ``path``.
        ResultFileError: the file is not a readable ``.npz`` archive of plain arrays (a single
            ``.npy`` array, truncated, another format, or holding pickled objects).
    """
    where = os.fspath(path)
    try:
        data = np.load(where, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise _unreadable(where, exc) from exc
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ResultFileError(
            f"cannot read result file {where!r}: it is a single .npy array, not an .npz archive of a "
            "lightning_landscape result."
        )
    try:
        with data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, RuntimeError) as exc:
        raise _unreadable(where, exc) from exc
    for name, value in arrays.items():
        if not isinstance(value, np.ndarray):  # numpy hands a member that is no .npy back as bytes
            raise ResultFileError(
                f"cannot read result file {where!r}: its member {name!r} is not a numpy array."
            )
    return arrays


def _unreadable(where: str, exc: BaseException) -> ResultFileError:
    return ResultFileError(
        f"cannot read result file {where!r}: not a readable .npz archive of plain arrays "
        f"(truncated, another format, or pickled objects): {type(exc).__name__}: {str(exc)[:200]}"
    )


def read_metadata(arrays: dict[str, Any], path: str = "", key: str = "metadata") -> dict[str, Any]:
    """The JSON metadata object of a result file's arrays; :class:`ResultFileError` without one."""
    where = _at(path)
    if key not in arrays:
        raise ResultFileError(
            f"result file{where} has no lightning_landscape metadata (another program's .npz?)."
        )
    text = arrays[key]
    if not isinstance(text, np.ndarray) or text.dtype.kind != "U" or text.ndim != 0:
        raise ResultFileError(f"result file{where}: its metadata is not one JSON string.")
    try:
        meta = json.loads(str(text))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, a huge integer, deep nesting
        raise ResultFileError(
            f"result file{where}: its metadata is not readable JSON ({str(exc)[:200]})."
        ) from exc
    if not isinstance(meta, dict):
        raise ResultFileError(f"result file{where}: its metadata is not a JSON object.")
    return meta


def check_format(meta: dict[str, Any], name: str, version: int, path: str = "") -> None:
    """Refuse metadata of another result type, another program or a newer format version."""
    where = _at(path)
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


# ---------------------------------------------------------------------------------- what a file holds
TENSOR_DTYPES: dict[str, torch.dtype] = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
"""The tensor dtypes a result file may hold, by the name written in it."""

_NUMPY_KINDS = {"float": "f", "int": "iu", "bool": "b", "number": "fiub"}
_NUMPY_DTYPES = {np.dtype(t) for t in ("float16", "float32", "float64", "int8", "int16", "int32", "int64")}
_NUMPY_DTYPES |= {np.dtype("uint8"), np.dtype("bool")}


def file_tensor(array: Any, where: str, at: str, kind: str = "number") -> torch.Tensor:
    """The array ``at`` of a result file as a CPU tensor (a copy), if it is a plain array of
    ``kind`` (``"float"``, ``"int"``, ``"bool"`` or ``"number"``: any of them)."""
    if not isinstance(array, np.ndarray) or array.dtype not in _NUMPY_DTYPES:
        found = array.dtype if isinstance(array, np.ndarray) else type(array).__name__
        raise ResultFileError(f"result file{_at(where)}: array {at!r} holds {found}, not plain numbers.")
    if array.dtype.kind not in _NUMPY_KINDS[kind]:
        raise ResultFileError(
            f"result file{_at(where)}: array {at!r} holds {array.dtype}, not {kind} values."
        )
    return torch.from_numpy(np.array(array))


def _describe(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "").replace("torch.", "")


def _field_hints(kind: type) -> dict[str, Any]:
    hints = _HINTS.get(kind)
    if hints is None:
        hints = _HINTS[kind] = typing.get_type_hints(kind)
    return hints


_HINTS: dict[type, dict[str, Any]] = {}


def conform(value: Any, hint: Any, where: str, at: str) -> Any:
    """``value`` as the annotation ``hint`` asks (an int where a float is wanted becomes a float, a
    list where a tuple is wanted a tuple); :class:`ResultFileError` naming ``at`` otherwise.

    >>> conform(3, float | None, "", "value")
    3.0
    >>> conform("many", int, "r.npz", "num_samples")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lightning_landscape.core.base.results.ResultFileError: ... 'num_samples' must be int, found 'many' (str).
    """
    try:
        return _conform(value, hint)
    except _Mismatch:
        shown = repr(value) if not isinstance(value, torch.Tensor) else f"a {value.dtype} tensor"
        raise ResultFileError(
            f"result file{_at(where)}: {at!r} must be {_describe(hint)}, found {shown[:80]} "
            f"({type(value).__name__})."
        ) from None


class _Mismatch(Exception):
    pass


def _conform(value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if hint is None or hint is type(None):
        if value is None:
            return None
        raise _Mismatch
    if origin in (Union, types.UnionType):
        for option in args:
            try:
                return _conform(value, option)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise _Mismatch
    if isinstance(hint, TypeVar):
        if isinstance(value, tuple(RESULT_TYPES.values())):
            return value
        raise _Mismatch
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if hint in (int, bool, str, torch.Tensor):
        if isinstance(value, hint) and (hint is bool or not isinstance(value, bool)):
            return value
        raise _Mismatch
    if origin in (dict, Mapping):
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise _Mismatch
        return {k: _conform(v, args[1]) for k, v in value.items()} if args else dict(value)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        return [_conform(v, args[0]) for v in value] if args else list(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_conform(v, args[0]) for v in value)
        if len(value) != len(args):
            raise _Mismatch
        return tuple(_conform(v, a) for v, a in zip(value, args))
    if isinstance(hint, type) and is_dataclass(hint):
        if isinstance(value, hint):
            return value
        raise _Mismatch
    raise TypeError(f"a result field is annotated {hint!r}, which result files cannot check.")


_SPEC = re.compile(r"^(float|int|bool|number)\[([^\]]*)\]$")


def check_arrays(kind: type, values: Mapping[str, Any], where: str, at: str = "") -> None:
    """Check every tensor of ``values`` (field → value) against ``kind.ARRAYS``: field →
    ``"float[n,k]"`` (a kind, then the shape: a name binds a size shared by every field that
    uses it, a number is that size, ``_`` any size, ``*`` any shape), or a tuple of them for a
    tuple field. A spec applies to each tensor of a list, tuple or dict field."""
    sizes: dict[str, int] = {}
    for name, spec in getattr(kind, "ARRAYS", {}).items():
        _check_spec(values.get(name), spec, sizes, where, f"{at}{name}")


def _check_spec(value: Any, spec: Any, sizes: dict[str, int], where: str, at: str) -> None:
    if value is None:
        return
    if isinstance(spec, tuple):
        if not isinstance(value, (list, tuple)) or len(value) != len(spec):
            raise ResultFileError(f"result file{_at(where)}: {at!r} must hold {len(spec)} arrays.")
        for i, (v, s) in enumerate(zip(value, spec)):
            _check_spec(v, s, sizes, where, f"{at}/{i}")
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_spec(v, spec, sizes, where, f"{at}/{i}")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            _check_spec(v, spec, sizes, where, f"{at}/{k}")
        return
    matched = _SPEC.match(spec)
    assert matched is not None, spec
    kind, dims = matched.group(1), [d.strip() for d in matched.group(2).split(",") if d.strip()]
    dtype_ok = {
        "float": value.is_floating_point(),
        "int": not value.is_floating_point() and value.dtype != torch.bool,
        "bool": value.dtype == torch.bool,
        "number": True,
    }[kind]
    if not dtype_ok:
        raise ResultFileError(f"result file{_at(where)}: {at!r} holds {value.dtype}, not {kind} values.")
    if dims == ["*"]:
        return
    shape = tuple(value.shape)
    fits = len(shape) == len(dims)
    for size, dim in zip(shape, dims) if fits else ():
        if dim.isdigit():
            fits = fits and size == int(dim)
        elif dim != "_":
            fits = fits and sizes.setdefault(dim, size) == size
    if not fits:
        expected = ", ".join(str(sizes.get(d, d)) for d in dims)
        raise ResultFileError(
            f"result file{_at(where)}: {at!r} has shape {shape}, which does not fit ({expected}) "
            "of the other arrays."
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

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import compute_landscape
        >>> result = compute_landscape(net, data, dims=1, num_points=5)
        >>> result.center_index, result.dims, sorted(result.scalars())[:2]
        ((2,), 1, ['center_accuracy', 'center_loss'])
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

    __repr__ = short_repr

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
        ``extra["unknown_fields"]``; a missing or wrongly typed field, a missing array, an array
        that is not of plain numbers or a shape that does not fit raises :class:`ResultFileError`.
        """
        where = _at(path)
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
        names = conform(meta.pop("direction_names"), list[list[str]], path, "direction_names")
        if len(names) not in (1, 2):
            raise ResultFileError(
                f"result file{where}: 'direction_names' must list 1 or 2 axes, found {len(names)}."
            )
        hints = _field_hints(cls)
        meta = {k: conform(v, hints[k], path, k) for k, v in meta.items()}

        def array(key: str, kind: str) -> torch.Tensor:
            if key not in arrays:
                raise ResultFileError(f"result file{where} lacks the array {key!r}.")
            return file_tensor(arrays[key], path, key, kind)

        coords = tuple(array(f"coords/{a}", "float") for a in range(len(names)))
        directions = tuple(
            {n: array(f"directions/{a}/{n}", "float") for n in axis_names}
            for a, axis_names in enumerate(names)
        )
        loss = array("loss", "float")
        accuracy = array("accuracy", "float") if "accuracy" in arrays else None
        computed = array("computed", "bool") if "computed" in arrays else None
        if any(c.ndim != 1 for c in coords):
            raise ResultFileError(f"result file{where}: every 'coords' array must be one-dimensional.")
        shape = tuple(len(c) for c in coords)
        for label, value in (("loss", loss), ("accuracy", accuracy), ("computed", computed)):
            if value is not None and tuple(value.shape) != shape:
                raise ResultFileError(
                    f"result file{where}: {label} of shape {tuple(value.shape)} does not fit the "
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
        return guarded_read(lambda: cls.from_dict(load_arrays(path), os.fspath(path)), os.fspath(path))

    def __eq__(self, other: object) -> bool:
        """Exact equality of every array (NaN equal to NaN) and every metadata field."""
        if not isinstance(other, LandscapeResult):
            return NotImplemented
        a, b = self.to_dict(), other.to_dict()
        if a.keys() != b.keys():
            return False
        return all(np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f") for k in a)

    __hash__ = None  # type: ignore[assignment]  # equal by value and mutable tensors inside: unhashable


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

    __repr__ = short_repr

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
        where = os.fspath(path)
        return guarded_read(lambda: cls._from_arrays(load_arrays(path), where), where)

    @classmethod
    def _from_arrays(cls, arrays: dict[str, Any], where: str) -> SharpnessRecord:
        meta = read_metadata(arrays, where)
        check_format(meta, _SHARPNESS_FORMAT_NAME, _SHARPNESS_FORMAT_VERSION, where)
        missing = sorted({"values", "settings"} - set(meta))
        if missing:
            raise ResultFileError(f"result file {where!r} lacks the field(s) {missing}.")
        hints = _field_hints(cls)
        found = {
            k: conform(meta.get(k, {} if k == "extra" else None), hints[k], where, k)
            for k in hints
            if k != "arrays"
        }
        for key in (k for k in arrays if k.startswith("values/")):  # the values again, for numpy readers
            if file_tensor(arrays[key], where, key, "float").ndim != 0:
                raise ResultFileError(f"result file {where!r}: {key!r} must be one number.")
        found["arrays"] = {
            k.removeprefix("arrays/"): file_tensor(v, where, k)
            for k, v in arrays.items()
            if k.startswith("arrays/")
        }
        return cls(**found)


def result_format(path: str | os.PathLike[str]) -> str:
    """The format name of a result file (``"lightning_landscape.LandscapeResult"``, ...)."""
    arrays = load_arrays(path)
    if "metadata" not in arrays and "landscape/metadata" in arrays:  # a TrajectoryResult's layout
        return _PREFIX + "TrajectoryResult"
    found = read_metadata(arrays, os.fspath(path)).get("format", "")
    return str(found).rpartition("/")[0]


def load_result(path: str | os.PathLike[str]) -> Any:
    """Load any result file, as the registered type its format name gives.

    Example:
        >>> from lightning_landscape.core.linalg.spectrum import TraceEstimate
        >>> import tempfile, os
        >>> path = TraceEstimate(2.5, 0.1, 40, "hutch++").save(os.path.join(tempfile.mkdtemp(), "t.npz"))
        >>> load_result(path)
        TraceEstimate(estimate=2.5, stderr=0.1, num_matvecs=40, method='hutch++')
    """
    kind: Any = result_type(result_format(path), os.fspath(path))  # a registered type: each has load
    return kind.load(path)


def guarded_read(read: Any, where: str) -> Any:
    """``read()``, with what a hostile file can still provoke inside numpy or a constructor
    (nesting deeper than Python recurses, a value our types refuse) answered as
    :class:`ResultFileError`."""
    try:
        return read()
    except (ResultFileError, FileNotFoundError):
        raise
    except (RecursionError, ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise ResultFileError(
            f"result file {where!r} cannot be read: {type(exc).__name__}: {str(exc)[:200]}"
        ) from exc


# ---------------------------------------------------------------------------------- the protocol
_SPEC_KINDS = ("tensor", "dataclass", "dict", "list", "tuple", "value")


def _encode(value: Any, key: str, arrays: dict[str, Any]) -> dict[str, Any]:
    """A JSON description of ``value``; its tensors go into ``arrays`` under names from ``key``."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        name = str(tensor.dtype).removeprefix("torch.")
        if name not in TENSOR_DTYPES:
            raise TypeError(f"cannot save a {tensor.dtype} tensor inside a result ({key}).")
        arrays[key] = (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
        return {"tensor": key, "dtype": name}
    if is_dataclass(value) and not isinstance(value, type):
        kind = type(value)
        name = _PREFIX + kind.__name__
        if RESULT_TYPES.get(name) is not kind:
            raise TypeError(
                f"cannot save a {kind.__name__} inside a result: not a lightning_landscape result type."
            )
        return {
            "dataclass": name,
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


def _decode(spec: Any, arrays: dict[str, Any], where: str, at: str) -> Any:
    """Inverse of :func:`_encode`: plain values, containers, tensors of :data:`TENSOR_DTYPES` and
    registered result types only, each checked (:class:`ResultFileError` naming ``at``)."""
    kinds = [k for k in _SPEC_KINDS if isinstance(spec, dict) and k in spec]
    if len(kinds) != 1:
        raise ResultFileError(
            f"result file{_at(where)}: {at!r} is not a field description ({str(spec)[:80]})."
        )
    kind, content = kinds[0], spec[kinds[0]]
    if kind == "tensor":
        dtype = spec.get("dtype", "float64")
        if not isinstance(content, str) or content not in arrays:
            raise ResultFileError(f"result file{_at(where)} lacks the array {str(content)[:80]!r} ({at}).")
        if dtype not in TENSOR_DTYPES:
            raise ResultFileError(
                f"result file{_at(where)}: {at!r} names the dtype {str(dtype)[:40]!r}; "
                f"allowed: {sorted(TENSOR_DTYPES)}."
            )
        family = "bool" if dtype == "bool" else "int" if "int" in dtype else "float"
        return file_tensor(arrays[content], where, content, family).to(TENSOR_DTYPES[dtype])
    if kind == "dataclass":
        return build_result(result_type(content, where), spec.get("fields"), arrays, where, at)
    if kind == "dict":
        if not isinstance(content, dict):
            raise ResultFileError(f"result file{_at(where)}: {at!r} is not a JSON object.")
        return {k: _decode(v, arrays, where, f"{at}/{k}") for k, v in content.items()}
    if kind in ("list", "tuple"):
        if not isinstance(content, list):
            raise ResultFileError(f"result file{_at(where)}: {at!r} is not a JSON list.")
        items = [_decode(v, arrays, where, f"{at}/{i}") for i, v in enumerate(content)]
        return items if kind == "list" else tuple(items)
    if content is not None and not isinstance(content, (bool, int, float, str)):
        raise ResultFileError(f"result file{_at(where)}: {at!r} is not a plain value ({str(content)[:80]}).")
    return content


def build_result(kind: type, described: Any, arrays: dict[str, Any], where: str, at: str = "fields") -> Any:
    """The result type ``kind`` from its fields' descriptions, each decoded and checked against its
    annotation, and its tensors against ``kind.ARRAYS`` (see :func:`check_arrays`)."""
    if not isinstance(described, dict):
        raise ResultFileError(f"result file{_at(where)}: {at!r} holds no field descriptions.")
    declared = fields(kind)
    missing = sorted(
        f.name
        for f in declared
        if f.name not in described and f.default is MISSING and f.default_factory is MISSING
    )
    if missing:
        raise ResultFileError(f"result file{_at(where)} lacks the field(s) {missing}.")
    hints = _field_hints(kind)
    values = {
        f.name: conform(
            _decode(described[f.name], arrays, where, f"{at}/{f.name}"), hints[f.name], where, f.name
        )
        for f in declared
        if f.name in described
    }
    check_arrays(kind, values, where)
    return kind(**values)


class ResultFile:
    """``save``/``load``/``scalars`` for a frozen result dataclass (mixed in by every result type,
    which is then registered in :data:`RESULT_TYPES`).

    A file is an ``.npz`` archive: every tensor of the result as an array, and one JSON string of
    metadata (``format`` ``lightning_landscape.<Type>/<version>``, then each field: its value, or
    where its tensors are). Loading reads no pickle, builds only registered result types and
    checks every field (see the module docstring).

    Example:
        >>> from lightning_landscape.core.linalg.spectrum import TraceEstimate
        >>> import tempfile, os
        >>> path = TraceEstimate(2.5, 0.1, 40, "hutch++").save(os.path.join(tempfile.mkdtemp(), "t.npz"))
        >>> TraceEstimate.load(path).scalars()
        {'estimate': 2.5, 'stderr': 0.1, 'num_matvecs': 40.0}
    """

    FORMAT_VERSION: ClassVar[int] = 2
    """Version 2 names nested result types by their format name; version 1 files (a module path)
    are still read."""

    ARRAYS: ClassVar[dict[str, Any]] = {}
    """Field → the kind and shape of its tensors (see :func:`check_arrays`)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__.startswith(_PREFIX):
            register_result_type(cls)
        if "__repr__" not in vars(cls):  # @dataclass keeps a __repr__ the class has
            cls.__repr__ = short_repr  # type: ignore[method-assign]  # every result type's short repr

    @classmethod
    def format_name(cls) -> str:
        return _PREFIX + cls.__name__

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the result to ``path`` (an ``.npz`` file; written whole, then renamed)."""
        arrays: dict[str, Any] = {}
        described = {
            f.name: _encode(getattr(self, f.name), f"fields/{f.name}", arrays)
            for f in fields(cast(Any, self))  # a ResultFile is a dataclass (its subclasses are)
        }
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

        def read():
            arrays = load_arrays(path)
            meta = read_metadata(arrays, where)
            check_format(meta, cls.format_name(), cls.FORMAT_VERSION, where)
            return build_result(cls, meta.get("fields"), arrays, where)

        return guarded_read(read, where)

    def scalars(self) -> dict[str, float]:
        """The result's numbers by field name (what a monitor logs): every field annotated as a
        number (``int``, ``float``, or either or ``None``; ``None`` logged as NaN). The keys depend
        on the type only, never on the values; tensors are left to a type's own ``scalars``."""
        hints = _field_hints(type(self))
        return {
            f.name: math.nan if getattr(self, f.name) is None else float(getattr(self, f.name))
            for f in fields(cast(Any, self))  # as in save(): every ResultFile subclass is a dataclass
            if _is_number(hints[f.name])
        }


def _is_number(hint: Any) -> bool:
    """Whether a field annotated ``hint`` holds a number (``bool`` is not one), or ``None``."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return bool(options) and all(_is_number(a) for a in options)
    return hint in (int, float)


register_result_type(LandscapeResult)
register_result_type(SharpnessRecord)
