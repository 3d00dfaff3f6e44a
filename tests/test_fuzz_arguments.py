"""Property-based fuzzing of every public constructor and function's arguments (issues 14, 25).

For each public callable and each of its arguments, hypothesis draws an *invalid* value (wrong
type, negative, zero, NaN/inf, empty, unknown names, mismatched shapes, directions with NaN or
complex entries or parallel to each other, counts whose arrays cannot fit in memory, a former
argument name with a bad value...) and calls it on a tiny model with every other argument valid.
The call must raise ``ValueError``/``TypeError`` whose message names the argument (the name the
caller wrote, for a renamed one); accepting the value silently, another exception, or running
past the time limit are failures. The model, its ``.grad`` and every random stream must be
untouched either way. Every example's outcome is counted (``tests/fuzz_outcomes.py``) and printed
at the end of the run.

The suite runs a fixed, derandomized profile (``LL_FUZZ_PROFILE=ci``, the default: a few hundred
examples for each argument, about a minute). The long profile draws 60 for each, over 13,000:

    LL_FUZZ_PROFILE=long LL_FUZZ_REPORT=fuzz.json python -m pytest tests/test_fuzz_arguments.py \\
        tests/core/test_fuzz_result_files.py -p no:cacheprovider
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from fuzz_outcomes import outcome, record
from problems import GlobalRNG, assert_same_state, mlp, snapshot, vector_batches

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import lightning_landscape as ll  # noqa: E402
from lightning_landscape.core.measures.noise import gradient_noise_scale  # noqa: E402
from lightning_landscape.data.randomization import RandomizedDataset  # noqa: E402

settings.register_profile(
    "ci", max_examples=300, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.register_profile("long", max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
PROFILE = os.environ.get("LL_FUZZ_PROFILE", "ci")
settings.load_profile(PROFILE)
PER_CASE = {"ci": 4, "long": 60}.get(PROFILE, 4)
"""Examples drawn for each (callable, argument) pair: every pair is tried, in every profile."""

NAN, INF = math.nan, math.inf
MODEL_NAMES = ["0.weight", "0.bias", "2.weight", "2.bias"]
_NOT_NUMBERS = st.one_of(st.text(max_size=6), st.booleans(), st.lists(st.integers(), max_size=2), st.none())
_NOT_NUMBERS_OR_NONE = st.one_of(st.text(max_size=6), st.booleans(), st.lists(st.integers(), max_size=2))
_ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)

# every value some choice argument of the package takes (a drawn "choice" is none of them)
KNOWN_CHOICES = {
    "filter", "layer", "bf16", "fp16", "hutchinson", "hutch++", "exact", "exact_ggn", "largest",
    "smallest", "both", "keskar", "adaptive_worst", "average", "filter_normalized_eigenvalue",
    "basin_volume", "slq", "hessian", "ggn", "nngp_ep", "monte_carlo", "float32", "float16", "train",
    "val", "random", "hessian_extremes", "bezier", "polychain", "labels", "shuffled_pixels",
    "random_pixels", "gaussian", "top_eigenvalue", "trace", "auto",
}  # fmt: skip


def _valid_span(value, largest: float = 3.4e38) -> bool:
    """The rule of ``check_span`` and ``check_span_fits`` (float32 models), restated."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return False
    pair = tuple(value)
    real = [isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair]
    if len(pair) != 2 or not all(real) or not all(math.isfinite(v) for v in pair):
        return False
    return pair[0] < pair[1] and math.isfinite(pair[1] - pair[0]) and max(map(abs, pair)) <= largest


def _valid_params(value) -> bool:
    """Glob patterns each matching a trainable parameter of the model (``None``: all of them)."""
    from fnmatch import fnmatchcase

    if value is None:
        return True
    patterns = [value] if isinstance(value, str) else value
    if not isinstance(patterns, (list, tuple)) or not patterns:
        return False
    return all(isinstance(p, str) and p and any(fnmatchcase(n, p) for n in MODEL_NAMES) for p in patterns)


def _valid_tag(value) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= 100
        and value.isprintable()
        and not any(c in value for c in "/\\ ")
    )


def _callable_or_bool(value) -> bool:
    return callable(value) or isinstance(value, bool)


BAD = {
    # counts of work: never a large valid count (that is slow, not wrong)
    "count": st.one_of(st.integers(max_value=0), _ANY_FLOAT, _NOT_NUMBERS),
    "optional_count": st.one_of(st.integers(max_value=0), _ANY_FLOAT, st.text(max_size=6), st.booleans()),
    "count_of_two": st.one_of(st.integers(max_value=1), _ANY_FLOAT, _NOT_NUMBERS),  # a variance needs two
    "optional_count_of_two": st.one_of(st.integers(max_value=1), _ANY_FLOAT, _NOT_NUMBERS_OR_NONE),
    "seed": st.one_of(st.integers(max_value=-1), st.integers(min_value=2**63), _ANY_FLOAT, _NOT_NUMBERS),
    "positive": st.one_of(
        st.floats(max_value=0.0),
        st.sampled_from([NAN, INF, -INF]),
        st.integers(min_value=10**301),
        st.integers(max_value=0),
        _NOT_NUMBERS,
    ),
    "optional_positive": st.one_of(
        st.floats(max_value=0.0),
        st.sampled_from([NAN, INF, -INF]),
        st.integers(max_value=0),
        _NOT_NUMBERS_OR_NONE,
    ),
    "count_from_zero": st.one_of(st.integers(max_value=-1), _ANY_FLOAT, _NOT_NUMBERS),
    "choice": st.one_of(
        st.text(max_size=8).filter(lambda s: s not in KNOWN_CHOICES),
        st.integers().filter(lambda i: i not in (1, 2)),
        st.floats(allow_nan=True).filter(lambda f: f not in (1.0, 2.0, INF)),
        st.booleans(),
    ),
    "bool": st.one_of(st.integers(), st.text(max_size=4), st.none(), _ANY_FLOAT),
    "progress": st.one_of(st.integers(), st.text(max_size=4), st.none(), _ANY_FLOAT).filter(
        lambda v: not _callable_or_bool(v)
    ),
    "callable": st.one_of(
        st.integers(), st.text(max_size=4), _ANY_FLOAT, st.lists(st.integers(), max_size=2)
    ),
    "span": st.one_of(
        st.tuples(_ANY_FLOAT, _ANY_FLOAT),
        st.lists(_ANY_FLOAT, max_size=3),
        st.text(max_size=4),
        st.integers(),
        st.none(),
        st.just((-1e308, 1e308)),
        st.just((-1e39, 1.0)),
    ).filter(lambda v: not _valid_span(v)),
    # a monitor does not know the model's dtype yet (a span beyond float32 is refused at setup)
    "monitor_span": st.one_of(
        st.tuples(_ANY_FLOAT, _ANY_FLOAT), st.lists(_ANY_FLOAT, max_size=3), st.text(max_size=4), st.none()
    ).filter(lambda v: not _valid_span(v) and not (_valid_span(v, largest=1.8e308))),
    "params": st.one_of(
        st.lists(st.sampled_from([*MODEL_NAMES, "nope", ""]), max_size=4),
        st.text(max_size=8),
        st.integers(),
        st.lists(st.integers(), max_size=2),
    ).filter(lambda v: not _valid_params(v)),
    "loss_fn": st.one_of(st.integers(), st.text(max_size=8), st.lists(st.integers(), max_size=2), _ANY_FLOAT),
    "tag": st.one_of(st.text(max_size=120), st.integers(), st.just("x" * 300)).filter(
        lambda v: not _valid_tag(v)
    ),
    "fraction": st.one_of(
        st.floats(allow_nan=True).filter(lambda f: not 0.0 <= f <= 1.0),
        st.integers().filter(lambda i: i not in (0, 1)),
        _NOT_NUMBERS,
    ),
    "step": st.one_of(st.integers(max_value=-1), _ANY_FLOAT, _NOT_NUMBERS_OR_NONE),  # epoch, global_step
    "epochs": st.one_of(
        st.text(min_size=1, max_size=6),
        st.lists(st.integers(min_value=0, max_value=5), min_size=0, max_size=6).filter(lambda v: len(v) != 3),
        st.lists(
            st.one_of(st.integers(max_value=-1), _ANY_FLOAT, st.text(max_size=2)), min_size=3, max_size=3
        ),
        st.integers(),
        st.dictionaries(st.integers(0, 2), st.integers(0, 2), min_size=3, max_size=3),
    ),
    "measure_kwargs": st.one_of(
        st.integers(),
        st.text(max_size=4),
        st.lists(st.integers(), min_size=1, max_size=2),
        st.dictionaries(st.sampled_from(["top_eigenvalue", "trace"]), st.integers(), min_size=1, max_size=2),
        st.dictionaries(
            st.text(max_size=5).filter(lambda s: s not in KNOWN_CHOICES), st.just({}), min_size=1
        ),
    ),
    # counts whose arrays could never fit in memory (refused, naming the count, before any work)
    "huge_grid_axis": st.integers(min_value=10**6, max_value=10**15),  # points per axis of a 2D grid
    "huge_line": st.integers(min_value=10**11, max_value=10**16),  # points of a 1D path
    "huge_probes": st.integers(min_value=10**13, max_value=10**16),  # quadrature probes
    "directions": st.sampled_from(
        [
            "nan",
            "inf",
            "complex",
            "bool",
            "shape",
            "unknown",
            "parallel",
            "zero",
            "list",
            "dict",
            "count",
            "word",
        ]
    ),
}


EDGES = {
    "count": [0, -1, 1.5, NAN, INF, "3", True, None, [2]],
    "optional_count": [0, -1, 2.0, NAN, "3", False],
    "count_of_two": [1, 0, 2.0, None],
    "optional_count_of_two": [1, 0, 2.0],
    "count_from_zero": [-1, 0.5, NAN, "0", None],
    "seed": [-1, 2**63, 2**64, 1.0, NAN, "0", True, None],
    "positive": [0, 0.0, -1.0, NAN, INF, -INF, 10**400, "1", True, None],
    "optional_positive": [0, -1.0, NAN, INF, "1", True],
    "choice": ["", "nope", 0, 3, 1.5, NAN, True],
    "bool": [0, 1, "True", None, 1.0],
    "progress": [0, 1, "yes", None, 1.0],
    "callable": [0, "print", 1.0, [1]],
    "span": [
        (-1e39, 1.0), (1.0, -1.0), (0.0, 0.0), (NAN, 1.0), (-INF, 1.0), (-1e308, 1e308), (1.0,), "ab", None, 3
    ],
    "monitor_span": [(1.0, -1.0), (NAN, 1.0), (-1e308, 1e308), "ab", None],
    "params": [[], ["nope"], "nope*", 3, [""], ["0.weight", 3]],
    "loss_fn": [0, "not a function", [1], 1.5],
    "tag": ["", "a/b", "a b", "a\\b", "x" * 101, 3, "tab\t"],
    "step": [-1, 1.5, NAN, "1", True, [1]],
    "epochs": ["abc", "abcd", [0, 1], [0, 1, -1], [0, 1, 2.0], [0, 1, "2"], {0: 0, 1: 1, 2: 2}, 3],
    "measure_kwargs": [0, "trace", [1], {"trace": 3}, {"nope": {}}],
    "fraction": [-0.1, 1.5, NAN, INF, "0.5", None],
    "huge_grid_axis": [10**6, 2**31, 10**15],
    "huge_line": [10**11, 2**40, 10**16],
    "huge_probes": [10**13, 2**50],
    "directions": [
        "nan", "inf", "complex", "bool", "shape", "unknown", "parallel", "zero", "list", "dict", "count",
        "word",
    ],
}  # fmt: skip
"""Canonical invalid values of every kind: every one is tried on every argument of its kind."""


def _directions(kind: str, model):
    """Two directions for ``model``, made invalid as ``kind`` says."""
    g = torch.Generator().manual_seed(5)
    good = [{n: torch.randn(p.shape, generator=g) for n, p in model.named_parameters()} for _ in range(2)]
    first = dict(good[0])
    if kind == "nan":
        first["0.weight"] = first["0.weight"].clone().index_fill_(1, torch.tensor([0]), NAN)
    elif kind == "inf":
        first["2.bias"] = torch.tensor([0.0, -INF, 1.0])
    elif kind == "complex":
        first["0.weight"] = first["0.weight"].to(torch.complex64)
    elif kind == "bool":
        first["0.weight"] = first["0.weight"] > 0
    elif kind == "shape":
        first["0.weight"] = first["0.weight"].T
    elif kind == "unknown":
        first["3.weight"] = torch.ones(2)
    elif kind == "parallel":
        return [first, {n: -2.5 * t for n, t in first.items()}]
    elif kind == "zero":
        return [{n: torch.zeros_like(t) for n, t in first.items()}, good[1]]
    elif kind == "list":
        first["0.weight"] = first["0.weight"].tolist()
    elif kind == "dict":
        return first
    elif kind == "count":
        return [first, good[1], good[1]]
    elif kind == "word":
        return "sideways"
    return [first, good[1]]


OTHER_STATE = mlp(seed=1).state_dict()  # built here: mlp() reseeds torch


def _model_call(function, **fixed):
    """``call(model, batches, **kwargs)`` for a core function taking a model and batches."""
    return lambda model, batches, **kwargs: function(model, batches, **{**fixed, **kwargs})


def _snapshots(model, n=3):
    return [
        {k: p.detach() + 0.01 * i * (j + 1) for j, (k, p) in enumerate(model.named_parameters())}
        for i in range(n)
    ]


def _directions_call(model, batches, **kwargs):
    if "directions" in kwargs:
        kwargs["directions"] = _directions(kwargs["directions"], model)
    return ll.compute_landscape(model, batches, **{"num_points": 3, **kwargs})


FUNCTIONS = {
    "compute_landscape": (
        _directions_call,
        {
            "dims": "choice",
            "num_points": "count",
            "span": "span",
            "normalization": "choice",
            "ignore_bias_and_norm": "bool",
            "seed": "seed",
            "loss_fn": "loss_fn",
            "num_samples": "optional_count",
            "points_per_forward": "count",
            "points_memory_mb": "positive",
            "autocast": "choice",
            "compile": "bool",
            "epoch": "step",
            "global_step": "step",
            "progress_bar": "progress",
            "directions": "directions",
        },
    ),
    "compute_landscape(num_points=huge)": (
        lambda model, batches, **kw: ll.compute_landscape(model, batches, **kw),
        {"num_points": "huge_grid_axis"},
    ),
    "compute_landscape_in_chunks": (
        _model_call(ll.compute_landscape_in_chunks, num_points=3),
        {
            "dims": "choice",
            "num_points": "count",
            "span": "span",
            "normalization": "choice",
            "ignore_bias_and_norm": "bool",
            "seed": "seed",
            "loss_fn": "loss_fn",
            "chunk_points": "count",
            "points_per_forward": "count",
            "points_memory_mb": "positive",
            "autocast": "choice",
            "on_chunk": "callable",
            "hessian_samples": "count",
            "num_samples": "optional_count",
            "directions": "choice",
        },
    ),
    "compute_landscape_in_chunks(num_points=huge)": (
        lambda model, batches, **kw: ll.compute_landscape_in_chunks(model, batches, **kw),
        {"num_points": "huge_grid_axis"},
    ),
    "hessian_eigenvalues": (
        _model_call(ll.hessian_eigenvalues, max_iter=6),
        {
            "k": "count",
            "which": "choice",
            "tol": "positive",
            "max_iter": "count",
            "min_iter": "count",
            "seed": "seed",
            "params": "params",
            "loss_fn": "loss_fn",
            "num_samples": "optional_count",
            "return_eigenvectors": "bool",
        },
    ),
    "hessian_eigenvalues_per_batch": (
        _model_call(ll.hessian_eigenvalues_per_batch, max_iter=6),
        {"k": "count", "which": "choice", "tol": "positive", "seed": "seed", "params": "params"},
    ),
    "hessian_trace": (
        _model_call(ll.hessian_trace, num_probes=3),
        {
            "num_probes": "count",
            "method": "choice",
            "seed": "seed",
            "params": "params",
            "loss_fn": "loss_fn",
            "num_samples": "optional_count",
        },
    ),
    "hessian_density": (
        _model_call(ll.hessian_density, num_probes=1, num_steps=3),
        {
            "num_probes": "count",
            "num_steps": "count",
            "seed": "seed",
            "params": "params",
            "loss_fn": "loss_fn",
        },
    ),
    "hessian_density(num_probes=huge)": (
        _model_call(ll.hessian_density, num_steps=3),
        {"num_probes": "huge_probes"},
    ),
    "sharpness": (
        _model_call(ll.sharpness, num_ascent_steps=2),
        {
            "measure": "choice",
            "seed": "seed",
            "epsilon": "positive",
            "num_ascent_steps": "count",
            "step_size": "positive",
            "loss_fn": "loss_fn",
            "num_samples": "optional_count",
            "params": "params",
        },
    ),
    "sharpness(measure='adaptive_worst')": (
        _model_call(ll.sharpness, measure="adaptive_worst", num_ascent_steps=2),
        {"rho": "positive", "p": "choice", "step_size": "positive"},
    ),
    "sharpness(measure='average')": (
        _model_call(ll.sharpness, measure="average", num_probes=2),
        {"rho": "positive", "num_probes": "count"},
    ),
    "sharpness(measure='filter_normalized_eigenvalue')": (
        _model_call(ll.sharpness, measure="filter_normalized_eigenvalue"),
        {"tol": "positive", "max_iter": "count"},
    ),
    "sharpness(measure='basin_volume')": (
        _model_call(ll.sharpness, measure="basin_volume", num_probes=2, num_scan=3, num_bisect=2),
        {"num_probes": "count", "max_radius": "positive", "num_scan": "count"},
    ),
    "basin_volume": (
        _model_call(ll.basin_volume, num_probes=2, num_scan=3, num_bisect=2),
        {"num_probes": "count", "max_radius": "positive", "num_bisect": "count_from_zero"},
    ),
    "log_evidence": (
        _model_call(ll.log_evidence, prior_precision=1.0, num_probes=1, num_steps=3),
        {
            "prior_precision": "positive",
            "method": "choice",
            "curvature": "choice",
            "num_probes": "count",
            "num_steps": "count",
            "seed": "seed",
            "params": "params",
            "loss_fn": "loss_fn",
            "num_samples": "optional_count",
        },
    ),
    "log_evidence(num_probes=huge)": (
        _model_call(ll.log_evidence, prior_precision=1.0, num_steps=3),
        {"num_probes": "huge_probes"},
    ),
    "eigenvalue_ratio_map": (
        _model_call(ll.eigenvalue_ratio_map, num_points=2, max_iter=4),
        {"num_points": "count", "span": "span", "seed": "seed", "tol": "positive", "max_iter": "count"},
    ),
    "eigenvalue_ratio_map(num_points=huge)": (
        _model_call(ll.eigenvalue_ratio_map, max_iter=4),
        {"num_points": "huge_grid_axis"},
    ),
    "interpolate": (
        lambda model, batches, **kw: ll.interpolate(
            model, batches, model.state_dict(), OTHER_STATE, **{"num_points": 3, **kw}
        ),
        {
            "num_points": "count",
            "span": "span",
            "loss_fn": "loss_fn",
            "num_samples": "optional_count",
            "progress_bar": "progress",
        },
    ),
    "interpolate(num_points=huge)": (
        lambda model, batches, **kw: ll.interpolate(model, batches, model.state_dict(), OTHER_STATE, **kw),
        {"num_points": "huge_line"},
    ),
    "connect": (
        lambda model, batches, **kw: ll.connect(
            model, batches, model.state_dict(), OTHER_STATE, **{"steps": 2, "num_points": 3, **kw}
        ),
        {
            "curve": "choice",
            "num_bends": "count",
            "steps": "count",
            "lr": "positive",
            "seed": "seed",
            "num_points": "count",
            "loss_fn": "loss_fn",
            "reestimate_bn": "bool",
            "progress_bar": "progress",
        },
    ),
    "connect(num_points=huge)": (
        lambda model, batches, **kw: ll.connect(
            model, batches, model.state_dict(), OTHER_STATE, **{"steps": 1, "num_points": 3, **kw}
        ),
        {"num_points": "huge_line", "steps": "huge_line"},
    ),
    "barrier_matrix": (
        lambda model, batches, **kw: ll.barrier_matrix(
            model, batches, [model.state_dict(), OTHER_STATE], **{"num_points": 3, **kw}
        ),
        {"num_points": "count", "loss_fn": "loss_fn", "reestimate_bn": "bool"},
    ),
    "trajectory_landscape": (
        lambda model, batches, **kw: ll.trajectory_landscape(
            model, batches, _snapshots(model), **{"num_points": 3, **kw}
        ),
        {
            "num_points": "count",
            "margin": "positive",
            "center": "bool",
            "ignore_bias_and_norm": "bool",
            "loss_fn": "loss_fn",
            "epochs": "epochs",
            "progress_bar": "progress",
            "num_samples": "optional_count",
            "chunk_bytes": "count",
        },
    ),
    "trajectory_landscape(num_points=huge)": (
        lambda model, batches, **kw: ll.trajectory_landscape(model, batches, _snapshots(model), **kw),
        {"num_points": "huge_grid_axis"},
    ),
    "pca_directions": (
        lambda model, batches, **kw: ll.pca_directions(_snapshots(model), model.state_dict(), **kw),
        {"k": "count", "center": "bool", "ignore_bias_and_norm": "bool", "chunk_bytes": "count"},
    ),
    "evaluate": (
        lambda model, batches, **kw: ll.evaluate(model, batches, **kw),
        {"num_samples": "optional_count"},
    ),
    "gradient_noise_scale": (
        _model_call(gradient_noise_scale),
        {"chunk": "count", "loss_fn": "loss_fn", "num_samples": "optional_count_of_two"},
    ),
}

MONITORS = {
    "LossLandscapeMonitor": (
        ll.LossLandscapeMonitor,
        {
            "every_n_epochs": "optional_count",
            "dims": "choice",
            "num_points": "count",
            "span": "monitor_span",
            "normalization": "choice",
            "ignore_bias_and_norm": "bool",
            "num_samples": "count",
            "eval_batch_size": "count",
            "seed": "seed",
            "log_scale": "bool",
            "at_train_end": "bool",
            "save_results": "bool",
            "progress_bar": "bool",
            "tag": "tag",
            "points_per_forward": "count",
            "points_memory_mb": "positive",
            "autocast": "choice",
            "compile": "bool",
            "data": "choice",
            "directions": "choice",
        },
    ),
    "LossLandscapeMonitor(num_points=huge)": (ll.LossLandscapeMonitor, {"num_points": "huge_grid_axis"}),
    "SharpnessMonitor": (
        ll.SharpnessMonitor,
        {
            "every_n_epochs": "optional_count",
            "density": "bool",
            "density_probes": "count",
            "density_steps": "count",
            "eigenvalue_ratio_map": "bool",
            "ratio_map_points": "count",
            "num_samples": "count",
            "seed": "seed",
            "tag": "tag",
            "measure_kwargs": "measure_kwargs",
            "per_batch": "bool",
        },
    ),
    "SharpnessMonitor(ratio_map_points=huge)": (ll.SharpnessMonitor, {"ratio_map_points": "huge_grid_axis"}),
    "TrajectoryMonitor": (
        ll.TrajectoryMonitor,
        {
            "every_n_epochs": "optional_count",
            "plot_every_n_epochs": "optional_count",
            "num_points": "count",
            "margin": "positive",
            "snapshot_dtype": "choice",
            "snapshot_memory_mb": "positive",
            "center": "bool",
            "log_histograms": "bool",
            "seed": "seed",
            "tag": "tag",
        },
    ),
    "TrajectoryMonitor(num_points=huge)": (ll.TrajectoryMonitor, {"num_points": "huge_grid_axis"}),
    "NoiseScaleMonitor": (
        ll.NoiseScaleMonitor,
        {
            "every_n_epochs": "optional_count",
            "measure_gradient_noise": "bool",
            "num_samples": "count_of_two",
            "seed": "seed",
            "tag": "tag",
        },
    ),
    "VolumeMonitor": (
        ll.VolumeMonitor,
        {
            "every_n_epochs": "optional_count",
            "num_inputs": "count",
            "method": "choice",
            "prior_precision": "positive",
            "evidence_method": "choice",
            "curvature": "choice",
            "seed": "seed",
            "tag": "tag",
        },
    ),
}

FUNCTION_CASES = [(f, a) for f, (_, args) in FUNCTIONS.items() for a in args]
MONITOR_CASES = [(m, a) for m, (_, args) in MONITORS.items() for a in args]


def _names_it(argument: str):
    return lambda exc: isinstance(exc, (ValueError, TypeError)) and f"`{argument}" in str(exc)


def _must_be_clean(suite: str, what: str, result: tuple[str, str]) -> None:
    kind, detail = record(suite, result)
    assert kind == "clean", f"{what}: {kind}: {detail}"


@pytest.mark.parametrize(("name", "argument"), FUNCTION_CASES)
@given(data=st.data())
@settings(max_examples=PER_CASE)
def test_functions_refuse_bad_arguments_naming_them_and_touch_nothing(name, argument, data):
    value = data.draw(BAD[FUNCTIONS[name][1][argument]], label=f"{name}({argument}=...)")
    _call_refuses(name, argument, value, "functions")


@pytest.mark.parametrize(("name", "argument"), FUNCTION_CASES)
def test_functions_refuse_every_edge_value_naming_the_argument(name, argument):
    for value in EDGES[FUNCTIONS[name][1][argument]]:
        _call_refuses(name, argument, value, "functions (edge values)")


def _call_refuses(name: str, argument: str, value, suite: str) -> None:
    """Call ``name`` with ``argument=value`` on a model with a frozen parameter and populated
    ``.grad``: refused naming the argument, the model and every random stream untouched."""
    call, _ = FUNCTIONS[name]
    model, batches = mlp(), vector_batches()
    model[0].bias.requires_grad_(False)
    torch.nn.functional.cross_entropy(model(batches[0][0]), batches[0][1]).backward()
    before, rng = snapshot(model), GlobalRNG.capture()
    result = outcome(lambda: call(model, batches, **{argument: value}), _names_it(argument))
    assert_same_state(before, model)
    assert GlobalRNG.capture().equals(rng)
    _must_be_clean(suite, f"{name}({argument}={value!r:.80})", result)


@pytest.mark.parametrize(("name", "argument"), MONITOR_CASES)
def test_monitors_refuse_every_edge_value_naming_the_argument(name, argument):
    monitor, kinds = MONITORS[name]
    for value in EDGES[kinds[argument]]:
        result = outcome(lambda v=value: monitor(**{argument: v}), _names_it(argument))
        _must_be_clean("monitors (edge values)", f"{name}({argument}={value!r:.80})", result)


@pytest.mark.parametrize(("name", "argument"), MONITOR_CASES)
@given(data=st.data())
@settings(max_examples=PER_CASE)
def test_monitors_refuse_bad_arguments_at_construction_naming_them(name, argument, data):
    monitor, kinds = MONITORS[name]
    value = data.draw(BAD[kinds[argument]], label=f"{name}({argument}=...)")
    rng = GlobalRNG.capture()
    result = outcome(lambda: monitor(**{argument: value}), _names_it(argument))
    assert GlobalRNG.capture().equals(rng)
    _must_be_clean("monitors", f"{name}({argument}={value!r:.80})", result)


def _images():
    g = torch.Generator().manual_seed(0)
    return torch.utils.data.TensorDataset(torch.randn(6, 1, 3, 3, generator=g), torch.arange(6) % 3)


DATASET_ARGUMENTS = {
    "corruption": "choice",
    "fraction": "fraction",
    "seed": "seed",
    "num_classes": "optional_count",
    "exclude_true_label": "bool",
}


@pytest.mark.parametrize("argument", sorted(DATASET_ARGUMENTS))
@given(data=st.data())
@settings(max_examples=4 * PER_CASE)
def test_randomized_dataset_refuses_bad_arguments_naming_them(argument, data):
    value = data.draw(BAD[DATASET_ARGUMENTS[argument]], label=f"RandomizedDataset({argument}=...)")
    result = outcome(lambda: RandomizedDataset(_images(), **{argument: value}), _names_it(argument))
    _must_be_clean("RandomizedDataset", f"RandomizedDataset({argument}={value!r:.80})", result)


@given(
    seed=st.integers(min_value=0, max_value=2**63 - 1),
    corruption=st.sampled_from(["labels", "shuffled_pixels", "random_pixels", "gaussian"]),
)
@settings(max_examples=10 * PER_CASE)
def test_every_seed_the_dataset_takes_gives_items(seed, corruption):
    """A seed that is accepted must work for every item (2**45 once overflowed in ``ds[i]``)."""
    data = RandomizedDataset(_images(), corruption=corruption, seed=seed)
    items = [data[i] for i in range(len(data))]
    assert all(torch.isfinite(x).all() for x, _ in items)
    assert torch.equal(data[-1][0], items[-1][0])
    again = RandomizedDataset(_images(), corruption=corruption, seed=seed)
    assert all(torch.equal(again[i][0], x) for i, (x, _) in enumerate(items))


@given(lr=st.floats(min_value=1e6, max_value=1e300))
@settings(max_examples=5 * PER_CASE)
def test_a_step_size_that_diverges_is_said_naming_lr(lr):
    """``connect`` between two finite solutions either returns finite paths or refuses ``lr``."""
    model = mlp()
    batches = vector_batches()

    def call():
        result = ll.connect(model, batches, model.state_dict(), OTHER_STATE, steps=20, num_points=3, lr=lr)
        if all(torch.isfinite(t).all() for t in (result.curve_loss, result.train_loss)):
            raise _FinitePaths  # it did not diverge: finite paths are the right answer

    def clean(exc):
        return isinstance(exc, _FinitePaths) or _names_it("lr")(exc)

    _must_be_clean("connect(lr=diverging)", f"connect(lr={lr!r})", outcome(call, clean))


class _FinitePaths(Exception):
    pass
