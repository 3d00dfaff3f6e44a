"""Property-based fuzzing of the result loaders (issue 25): hypothesis takes an honest file of
main at d4892b6 (every result type) and breaks it one way: a field given a JSON value of a type
its annotation does not take, or a description that is no description; an array of another
dtype, or with one more dimension where its shape is fixed; metadata that is not our JSON; the
file cut short. Every such file must be refused with ``ResultFileError`` (counted as clean);
another exception, a load, or a hang is a failure. Outcomes are counted with the argument
fuzzer's (``tests/fuzz_outcomes.py``); ``LL_FUZZ_PROFILE=long`` draws 3,000 files.
"""

from __future__ import annotations

import json
import os
import typing

import numpy as np
import pytest
from fuzz_outcomes import outcome, record
from test_hostile_result_files import HONEST, OWN_LAYOUT, _accepts, _arrays, _field_descriptions, _type_name

from lightning_landscape.core.base.results import ResultFileError, load_result

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = {"ci": 150, "long": 3000}.get(os.environ.get("LL_FUZZ_PROFILE", "ci"), 150)
SPEC_KINDS = {"tensor", "dataclass", "dict", "list", "tuple", "value"}

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_NOT_A_DESCRIPTION = st.one_of(
    _SCALARS,
    st.lists(_JSON, max_size=3),
    st.dictionaries(st.text(max_size=8).filter(lambda k: k not in SPEC_KINDS), _JSON, max_size=3),
)
_BAD_DTYPES = [
    np.dtype("<U3"),
    np.dtype("S2"),
    np.complex64,
    np.longdouble,
    np.uint16,
    np.uint64,
    "datetime64[s]",
]


def _fixed_shape(name: str) -> bool:
    return not any(part in name for part in ("directions/", "eigenvectors/", "bends/", "arrays/"))


@st.composite
def broken_files(draw):
    """(description, arrays, key of the changed metadata or None) of one broken honest file."""
    path = draw(st.sampled_from(HONEST), label="honest file")
    arrays = _arrays(path)
    how = draw(
        st.sampled_from(["field", "description", "array_dtype", "array_shape", "metadata", "truncate"])
    )
    if how in ("field", "description"):
        key, meta, described = _field_descriptions(path)
        where, hint = draw(st.sampled_from(described), label="field")
        own = _type_name(path) in OWN_LAYOUT
        if how == "description" and not own:
            value = draw(_NOT_A_DESCRIPTION, label="description")
        else:
            value = draw(_JSON.filter(lambda v: not _accepts(hint, v) and not _takes_containers(hint, v)))
            value = value if own else {"value": value}
        node = meta
        for part in where[:-1]:
            node = node[part]
        node[where[-1]] = value
        arrays[key] = np.array(json.dumps(meta))
        return f"{os.path.basename(path)}: {'/'.join(where)} = {value!r:.80}", arrays, None
    if how == "metadata":
        key = "landscape/metadata" if _type_name(path) == "TrajectoryResult" else "metadata"
        text = draw(st.one_of(st.text(max_size=30), _JSON.map(json.dumps)).filter(_not_our_format))
        arrays[key] = np.array(text)
        return f"{os.path.basename(path)}: metadata = {text!r:.80}", arrays, None
    names = [n for n in arrays if not n.endswith("metadata")]
    if how == "array_shape":
        names = [n for n in names if _fixed_shape(n)]
    assume(names)  # a file of scalars alone has no array to break
    name = draw(st.sampled_from(names), label="array")
    if how == "array_dtype":
        dtype = draw(st.sampled_from(_BAD_DTYPES))
        arrays[name] = np.zeros(arrays[name].shape, dtype=dtype)
        return f"{os.path.basename(path)}: {name} as {np.dtype(dtype)}", arrays, None
    if how == "array_shape":
        arrays[name] = np.stack([arrays[name]] * draw(st.integers(1, 3)))
        return f"{os.path.basename(path)}: {name} of shape {arrays[name].shape}", arrays, None
    with open(path, "rb") as fh:
        content = fh.read()
    cut = draw(st.integers(min_value=0, max_value=len(content) - 1))
    return f"{os.path.basename(path)}: cut at byte {cut}", content[:cut], None


def _takes_containers(hint, value) -> bool:
    """Whether ``hint`` could take the JSON container ``value`` (a dict for ``dict[...]`` or ``Any``)."""
    if hint is typing.Any:
        return True
    options = (
        typing.get_args(hint)
        if typing.get_origin(hint) in (typing.Union, __import__("types").UnionType)
        else (hint,)
    )
    origins = {typing.get_origin(o) or o for o in options}
    return (isinstance(value, dict) and dict in origins) or (
        isinstance(value, list) and origins & {list, tuple}
    )


def _not_our_format(text: str) -> bool:
    try:
        meta = json.loads(text)
    except ValueError:
        return True
    return not (isinstance(meta, dict) and str(meta.get("format", "")).startswith("lightning_landscape."))


@given(case=broken_files())
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_broken_file_is_refused_with_our_error(case, tmp_path_factory):
    what, arrays, _ = case
    path = tmp_path_factory.mktemp("broken") / "result.npz"
    if isinstance(arrays, bytes):
        path.write_bytes(arrays)
    else:
        np.savez(path, **arrays)
    result = record(
        "result files", outcome(lambda: load_result(path), lambda e: isinstance(e, ResultFileError))
    )
    assert result[0] == "clean", f"{what}: {result}"
