"""Result files are data, never code (issue 25, item 1).

Every honest file written by main at d4892b6 (``result_files/main-d4892b6``, one per result type,
the monitors' own among them) still loads. From each, hostile files are made: functions and
classes of this package (and of others) named where a type is described, every field given a
value of the wrong type, every array replaced by strings, complex numbers or another shape, and
whole files that are a single ``.npy``, a pickle, an archive holding a pickled object, or metadata
nested deeper than Python recurses. Each must be answered with ``ResultFileError``, build nothing,
run nothing (the injected calls would create a marker file or folder) and create no file anywhere.
"""

from __future__ import annotations

import copy
import glob
import io
import json
import math
import os
import pickle
import typing
import zipfile

import numpy as np
import pytest

from lightning_landscape.core.base.results import RESULT_TYPES, ResultFileError, load_result, result_format

FOLDERS = ("main-d4892b6", "main-a36e09c")  # before issue 25 (format 1); before issue 28's moves (format 2)
HONEST = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "result_files", FOLDERS[0], "*.npz")))
OWN_LAYOUT = ("LandscapeResult", "SharpnessRecord", "TrajectoryResult")


def _arrays(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _type_name(path) -> str:
    return result_format(path).removeprefix("lightning_landscape.")


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_result_type_has_an_honest_file_from_main_and_it_loads(folder):
    loaded = {}
    for path in sorted(glob.glob(os.path.join(os.path.dirname(__file__), "result_files", folder, "*.npz"))):
        result = load_result(path)
        assert type(result).__name__ == _type_name(path)
        assert type(result).load(path).__class__ is type(result)
        loaded[type(result).__name__] = result
    nested_only = {"SLQNodes"}  # found inside a SpectralDensity
    added_since = {"SharpnessReport"}  # issue 28: the typed report that replaced SharpnessRecord's arrays
    assert {n.removeprefix("lightning_landscape.") for n in RESULT_TYPES} - nested_only - added_since == set(
        loaded
    )
    assert loaded["SpectralDensity"].quadrature.nodes.shape == (2, 5)
    assert loaded["Blockwise"].results["0"].eigenvalues.numel() == 1


def test_a_file_written_before_the_core_moved_saves_again_as_it_was(tmp_path):
    """Files name their type by format name, never by module path: a file of main at a36e09c (the
    core in one folder) loads and saves again with the same format name, arrays and settings."""
    for path in sorted(
        glob.glob(os.path.join(os.path.dirname(__file__), "result_files", FOLDERS[1], "*.npz"))
    ):
        before = _arrays(path)
        again = _arrays(load_result(path).save(str(tmp_path / os.path.basename(path))))
        assert sorted(before) == sorted(again), path
        for key in before:
            if key == "metadata":
                old, new = json.loads(str(before[key])), json.loads(str(again[key]))
                for meta in (old, new):
                    meta.pop("versions", None)
                    meta.get("extra", {}).pop("versions", None)
                assert old == new, path
            else:
                np.testing.assert_array_equal(before[key], again[key], err_msg=f"{path}: {key}")


# ---------------------------------------------------------------------------------- the mutations
def _markers(folder) -> dict[str, str]:
    return {"file": os.path.join(folder, "MARKER_FILE.npz"), "dir": os.path.join(folder, "MARKER_DIR")}


def _code_specs(markers):
    """Descriptions that would run code if a loader built what a file names."""
    instantiate = {
        "dict": {
            "class_path": {"value": "os.mkdir"},
            "init_args": {"dict": {"path": {"value": markers["dir"]}}},
        }
    }
    save = {"path": {"value": markers["file"]}, "arrays": {"dict": {}}}
    return [
        {
            "dataclass": "lightning_landscape.cli:_instantiate",
            "fields": {"section": instantiate, "class_path": {"value": None}, "what": {"value": "model"}},
        },
        {"dataclass": "lightning_landscape.core.base.results:save_arrays", "fields": save},
        {"dataclass": "lightning_landscape.save_arrays", "fields": save},
        {"dataclass": "lightning_landscape.core.base.results.save_arrays", "fields": save},
        {"dataclass": "os:mkdir", "fields": {"path": {"value": markers["dir"]}}},
        {"dataclass": "lightning_landscape.core.base.results:ResultFileError", "fields": {}},
        {"dataclass": "lightning_landscape.LossLandscapeMonitor", "fields": {}},
        {"dataclass": ["lightning_landscape.SLQNodes"], "fields": {}},
    ]


def _write(folder, arrays, meta=None, key="metadata"):
    arrays = dict(arrays)
    if meta is not None:
        arrays[key] = np.array(json.dumps(meta))
    path = os.path.join(folder, "hostile.npz")
    np.savez(path, **arrays)
    return path


def _field_descriptions(path):
    """(metadata key, json path to a field, the field's type hint) for the file's top-level fields."""
    name = _type_name(path)
    kind = RESULT_TYPES[f"lightning_landscape.{name}"]
    hints = typing.get_type_hints(kind)
    key = "landscape/metadata" if name == "TrajectoryResult" else "metadata"
    meta = json.loads(str(_arrays(path)[key]))
    if name in OWN_LAYOUT:
        if name == "TrajectoryResult":
            hints = typing.get_type_hints(RESULT_TYPES["lightning_landscape.LandscapeResult"])
        return key, meta, [((f,), hints[f]) for f in meta if f in hints]
    return key, meta, [(("fields", f), hints[f]) for f in meta["fields"]]


def _replaced(meta, where, value):
    changed = copy.deepcopy(meta)
    node = changed
    for part in where[:-1]:
        node = node[part]
    node[where[-1]] = value
    return changed


def _accepts(hint, value) -> bool:
    """Whether ``hint`` admits a JSON ``value`` (a float admits NaN)."""
    options = (
        typing.get_args(hint)
        if typing.get_origin(hint) in (typing.Union, __import__("types").UnionType)
        else (hint,)
    )
    return any(
        o is type(value) or (o is float and isinstance(value, (int, float)) and not isinstance(value, bool))
        for o in options
    )


def _wrong_values(path):
    """(label, metadata key, metadata) for every field given each value of a wrong type."""
    key, meta, described = _field_descriptions(path)
    own = _type_name(path) in OWN_LAYOUT
    for where, hint in described:
        for bad in ("many", [1, 2], math.nan, {"x": 1}, True, None, 10**30):
            if _accepts(hint, bad) or (
                isinstance(bad, int) and not isinstance(bad, bool) and _accepts(hint, 1)
            ):
                continue
            if hint is typing.Any or typing.get_origin(hint) is dict and isinstance(bad, dict):
                continue
            value = (
                bad
                if own
                else {"value": bad}
                if not isinstance(bad, (list, dict))
                else (
                    {"list": [{"value": x} for x in bad]}
                    if isinstance(bad, list)
                    else {"dict": {"x": {"value": 1}}}
                )
            )
            yield f"{'/'.join(where)}={bad!r}", key, _replaced(meta, where, value)


def _code_injections(path, markers):
    key, meta, described = _field_descriptions(path)
    for where, hint in described:
        if _type_name(path) in OWN_LAYOUT and typing.get_origin(hint) is dict:
            continue  # free-form JSON there (extra, settings): see the test of plain data below
        for spec in _code_specs(markers):
            yield f"{'/'.join(where)}<-{spec['dataclass']}", key, _replaced(meta, where, spec)
    for where in _nested_types(meta):  # nested types too: a Blockwise's results, a density's nodes
        for spec in _code_specs(markers):
            yield f"{'/'.join(map(str, where))}<-{spec['dataclass']}", key, _replaced(meta, where, spec)


def _nested_types(node, where=()):
    """The JSON paths of every nested result type described in ``node``."""
    if isinstance(node, dict):
        if "dataclass" in node:
            yield where
        for k, v in node.items():
            yield from _nested_types(v, (*where, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _nested_types(v, (*where, i))


def _array_changes(path):
    arrays = _arrays(path)
    for name, array in arrays.items():
        if name.endswith("metadata"):
            continue
        yield f"{name}: strings", name, np.full(array.shape, "x")
        yield f"{name}: complex", name, array.astype(np.complex128)
        yield f"{name}: float128", name, array.astype(np.longdouble)
        if name.startswith("arrays/"):
            continue  # a sharpness record's by-products are numbers of any kind (floats, counts, flags)
        if array.dtype.kind == "f":
            yield f"{name}: ints for floats", name, np.zeros(array.shape, dtype=np.int64)
        else:
            yield f"{name}: floats for {array.dtype}", name, np.full(array.shape, 0.5)


def _unconstrained(path, array_name) -> bool:
    """Arrays of any shape: directions, eigenvectors and bends take the parameters' shapes."""
    return any(part in array_name for part in ("directions/", "eigenvectors/", "bends/", "arrays/"))


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A folder to write hostile files in, the markers their code would create, and a check that
    nothing was created anywhere (here, in the working directory, or by the injected calls)."""
    monkeypatch.chdir(tmp_path)
    before = set(os.listdir(tmp_path))

    def nothing_created(written):
        now = set(os.listdir(tmp_path)) - {os.path.basename(written)}
        assert now == before - {os.path.basename(written)}, now - before
        assert not any(os.path.exists(m) for m in _markers(tmp_path).values())

    return tmp_path, nothing_created


def _refused(path, label):
    try:
        result = load_result(path)
    except ResultFileError:
        return
    except Exception as exc:  # noqa: BLE001 - the point: nothing but our error
        pytest.fail(f"{label}: {type(exc).__name__}: {exc}")
    pytest.fail(f"{label}: loaded as {type(result).__name__}")


@pytest.mark.parametrize("honest", HONEST, ids=os.path.basename)
def test_types_named_in_a_file_are_never_imported_or_called(honest, sandbox):
    folder, nothing_created = sandbox
    arrays = _arrays(honest)
    cases = list(_code_injections(honest, _markers(folder)))
    assert cases
    for label, key, meta in cases:
        path = _write(folder, arrays, meta, key)
        _refused(path, label)
        with pytest.raises(ResultFileError):
            RESULT_TYPES[f"lightning_landscape.{_type_name(honest)}"].load(path)
        nothing_created(path)


@pytest.mark.parametrize("name", ["LandscapeResult", "SharpnessRecord"])
def test_free_form_metadata_that_names_a_type_stays_plain_data(name, sandbox):
    """``extra`` and ``settings`` hold any JSON: a type description there is kept as the dict it
    is, never built."""
    folder, nothing_created = sandbox
    honest = next(p for p in HONEST if p.endswith(f"/{name}.npz"))
    arrays = _arrays(honest)
    meta = json.loads(str(arrays["metadata"]))
    for spec in _code_specs(_markers(folder)):
        path = _write(folder, arrays, {**meta, "extra": {"payload": spec}})
        assert load_result(path).extra["payload"] == spec
        nothing_created(path)


@pytest.mark.parametrize("honest", HONEST, ids=os.path.basename)
def test_wrongly_typed_fields_are_refused(honest, sandbox):
    folder, nothing_created = sandbox
    arrays = _arrays(honest)
    cases = list(_wrong_values(honest))
    assert len(cases) >= 3
    for label, key, meta in cases:
        path = _write(folder, arrays, meta, key)
        _refused(path, label)
        nothing_created(path)


@pytest.mark.parametrize("honest", HONEST, ids=os.path.basename)
def test_arrays_of_other_dtypes_or_shapes_are_refused(honest, sandbox):
    folder, nothing_created = sandbox
    arrays = _arrays(honest)
    for label, name, replacement in _array_changes(honest):
        path = _write(folder, {**arrays, name: replacement})
        _refused(path, label)
        nothing_created(path)
    for name, array in arrays.items():
        if name.endswith("metadata"):
            continue
        path = _write(folder, {**arrays, name: np.stack([array, array])})
        try:
            load_result(path)
        except ResultFileError:
            continue
        assert _unconstrained(honest, name), f"{name}: another shape was accepted"


def _pickled_object_bytes(marker_dir) -> bytes:
    class Payload:
        def __reduce__(self):
            return os.mkdir, (marker_dir,)

    return pickle.dumps(Payload())


@pytest.mark.parametrize(
    "make",
    [
        "npy",
        "pickle",
        "object_array",
        "pickle_member",
        "not_zip",
        "truncated",
        "empty",
        "metadata_array",
        "metadata_list",
        "deep_json",
        "huge_int",
        "directory",
    ],
)
def test_whole_files_that_are_not_results_are_refused(make, sandbox):
    folder, nothing_created = sandbox
    markers = _markers(folder)
    path = os.path.join(folder, "hostile.npz")
    honest = next(p for p in HONEST if p.endswith("TraceEstimate.npz"))
    arrays = _arrays(honest)
    if make == "npy":
        with open(path, "wb") as fh:
            np.save(fh, np.zeros(3))
    elif make == "pickle":
        with open(path, "wb") as fh:
            fh.write(_pickled_object_bytes(markers["dir"]))
    elif make == "object_array":
        np.savez(path, metadata=arrays["metadata"], x=np.array([_Loud(markers["dir"])], dtype=object))
    elif make == "pickle_member":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("metadata.npy", _npy_bytes(arrays["metadata"]))
            zf.writestr("fields.npy", _pickled_object_bytes(markers["dir"]))
    elif make == "not_zip":
        with open(path, "w") as fh:
            fh.write("format: lightning_landscape.TraceEstimate/2\n")
    elif make == "truncated":
        with open(honest, "rb") as fh, open(path, "wb") as out:
            out.write(fh.read()[:300])
    elif make == "empty":
        open(path, "wb").close()
    elif make == "metadata_array":
        np.savez(path, metadata=np.zeros(3))
    elif make == "metadata_list":
        np.savez(path, metadata=np.array(json.dumps([1, 2])))
    elif make == "deep_json":
        np.savez(
            path,
            metadata=np.array(
                '{"format": "lightning_landscape.TraceEstimate/2", "fields": '
                + "[" * 100_000
                + "]" * 100_000
                + "}"
            ),
        )
    elif make == "huge_int":
        np.savez(
            path,
            metadata=np.array('{"format": "lightning_landscape.TraceEstimate/2", "x": ' + "9" * 5000 + "}"),
        )
    elif make == "directory":
        os.mkdir(path)
    with pytest.raises(ResultFileError):
        load_result(path)
    for kind in RESULT_TYPES.values():
        if hasattr(kind, "load"):
            with pytest.raises(ResultFileError):
                kind.load(path)
    assert not os.path.exists(markers["dir"])
    if make != "directory":
        nothing_created(path)


def test_a_deeply_nested_field_is_refused_not_a_recursion_error(sandbox):
    folder, nothing_created = sandbox
    honest = next(p for p in HONEST if p.endswith("SharpnessResult.npz"))
    arrays = _arrays(honest)
    meta = json.loads(str(arrays["metadata"]))
    # json.dumps itself would recurse too deep: the nesting is written by hand
    text = json.dumps({**meta, "fields": {**meta["fields"], "extra": "__NESTED__"}}).replace(
        '"__NESTED__"', '{"dict": {"x": ' * 5000 + '{"value": 1.0}' + "}}" * 5000
    )
    path = os.path.join(folder, "hostile.npz")
    np.savez(path, **{**arrays, "metadata": np.array(text)})
    with pytest.raises(ResultFileError):
        load_result(path)
    nothing_created(path)


class _Loud:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()
