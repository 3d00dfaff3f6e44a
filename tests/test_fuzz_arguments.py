"""Property-based fuzzing of every public constructor and function's arguments (issue 14).

For each public callable and each of its arguments, hypothesis draws a bad value (wrong type,
negative, zero, NaN/inf, empty, unknown names, mismatched shapes...) and calls it on a tiny model
with every other argument valid. The call must either succeed or raise ``ValueError``/``TypeError``
whose message names the argument, and the model, its ``.grad`` and every random stream must be
untouched either way.

The suite runs a fixed, derandomized profile (``LL_FUZZ_PROFILE=ci``, the default: a few hundred
examples, well under two minutes). The long profile draws 10,000 examples:

    LL_FUZZ_PROFILE=long python -m pytest tests/test_fuzz_arguments.py -p no:cacheprovider
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from problems import GlobalRNG, assert_same_state, mlp, snapshot, vector_batches

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import lightning_landscape as ll  # noqa: E402
from lightning_landscape.core.noise import gradient_noise_scale  # noqa: E402

settings.register_profile(
    "ci", max_examples=400, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.register_profile("long", max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("LL_FUZZ_PROFILE", "ci"))

NAN, INF = math.nan, math.inf
_NOT_NUMBERS = st.one_of(st.text(max_size=6), st.booleans(), st.lists(st.integers(), max_size=2), st.none())
_ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
BAD = {
    # counts of work: never a large valid count (that is slow, not wrong)
    "count": st.one_of(st.integers(max_value=0), _ANY_FLOAT, _NOT_NUMBERS),
    "optional_count": st.one_of(st.integers(max_value=0), _ANY_FLOAT, st.text(max_size=6), st.booleans()),
    "seed": st.one_of(st.integers(max_value=-1), st.integers(min_value=2**63), _ANY_FLOAT, _NOT_NUMBERS),
    "positive": st.one_of(
        st.floats(max_value=0.0),
        st.sampled_from([NAN, INF, -INF]),
        st.integers(min_value=10**301),
        st.integers(max_value=0),
        _NOT_NUMBERS,
    ),
    "choice": st.one_of(st.text(max_size=8), st.integers(), _ANY_FLOAT, st.booleans(), st.none()),
    "bool": st.one_of(st.integers(), st.text(max_size=4), st.none(), _ANY_FLOAT),
    "span": st.one_of(
        st.tuples(_ANY_FLOAT, _ANY_FLOAT),
        st.lists(_ANY_FLOAT, max_size=3),
        st.text(max_size=4),
        st.integers(),
        st.none(),
        st.just((-1e308, 1e308)),
    ),
    "names": st.one_of(
        st.lists(st.sampled_from(["0.weight", "0.bias", "2.weight", "2.bias", "nope", ""]), max_size=4),
        st.text(max_size=8),
        st.integers(),
        st.lists(st.integers(), max_size=2),
    ),
    "loss_fn": st.one_of(st.integers(), st.text(max_size=8), st.lists(st.integers(), max_size=2), _ANY_FLOAT),
    "tag": st.one_of(st.text(max_size=120), st.integers(), st.none(), st.just("x" * 300)),
}


OTHER_STATE = mlp(seed=1).state_dict()  # built here: mlp() reseeds torch


def _model_call(function, **fixed):
    """``call(model, batches, **kwargs)`` for a core function taking a model and batches."""
    return lambda model, batches, **kwargs: function(model, batches, **{**fixed, **kwargs})


def _snapshots(model, n=3):
    return [
        {k: p.detach() + 0.01 * i * (j + 1) for j, (k, p) in enumerate(model.named_parameters())}
        for i in range(n)
    ]


FUNCTIONS = {
    "compute_landscape": (
        _model_call(ll.compute_landscape, num_points=3),
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
        },
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
        },
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
            "names": "names",
            "loss_fn": "loss_fn",
            "num_samples": "optional_count",
        },
    ),
    "hessian_trace": (
        _model_call(ll.hessian_trace, num_probes=3),
        {
            "num_probes": "count",
            "method": "choice",
            "seed": "seed",
            "names": "names",
            "loss_fn": "loss_fn",
            "num_samples": "optional_count",
        },
    ),
    "hessian_density": (
        _model_call(ll.hessian_density, num_probes=1, num_steps=3),
        {"num_probes": "count", "num_steps": "count", "seed": "seed", "names": "names", "loss_fn": "loss_fn"},
    ),
    "sharpness": (
        _model_call(ll.sharpness, num_ascent_steps=2, num_probes=2, num_scan=3, num_bisect=2),
        {
            "measure": "choice",
            "seed": "seed",
            "epsilon": "positive",
            "rho": "positive",
            "p": "choice",
            "num_ascent_steps": "count",
            "step_size": "positive",
            "num_probes": "count",
            "tol": "positive",
            "max_iter": "count",
            "max_radius": "positive",
            "num_scan": "count",
            "loss_fn": "loss_fn",
            "num_samples": "optional_count",
        },
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
            "names": "names",
            "loss_fn": "loss_fn",
            "num_samples": "optional_count",
        },
    ),
    "eigenvalue_ratio_map": (
        _model_call(ll.eigenvalue_ratio_map, num_points=2, max_iter=4),
        {"num_points": "count", "span": "span", "seed": "seed", "tol": "positive", "max_iter": "count"},
    ),
    "interpolate": (
        lambda model, batches, **kw: ll.interpolate(
            model, batches, model.state_dict(), OTHER_STATE, **{"num_points": 3, **kw}
        ),
        {"num_points": "count", "alpha_range": "span", "loss_fn": "loss_fn", "num_samples": "optional_count"},
    ),
    "trajectory_landscape": (
        lambda model, batches, **kw: ll.trajectory_landscape(
            model, batches, _snapshots(model), **{"num_points": 3, **kw}
        ),
        {"num_points": "count", "margin": "positive", "center": "bool", "loss_fn": "loss_fn"},
    ),
    "evaluate": (
        lambda model, batches, **kw: ll.evaluate(model, batches, **kw),
        {"num_samples": "optional_count"},
    ),
    "gradient_noise_scale": (
        _model_call(gradient_noise_scale),
        {"chunk": "count", "loss_fn": "loss_fn", "num_samples": "optional_count"},
    ),
}

MONITORS = {
    "LossLandscapeMonitor": (
        ll.LossLandscapeMonitor,
        {
            "every_n_epochs": "count",
            "dims": "choice",
            "num_points": "count",
            "span": "span",
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
        },
    ),
    "SharpnessMonitor": (
        ll.SharpnessMonitor,
        {
            "every_n_epochs": "count",
            "density": "bool",
            "density_probes": "count",
            "density_steps": "count",
            "eigenvalue_ratio_map": "bool",
            "ratio_map_points": "count",
            "num_samples": "count",
            "seed": "seed",
            "tag": "tag",
        },
    ),
    "TrajectoryMonitor": (
        ll.TrajectoryMonitor,
        {
            "every_n_epochs": "count",
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
    "NoiseScaleMonitor": (
        ll.NoiseScaleMonitor,
        {"every_n_epochs": "count", "measure_gradient_noise": "bool", "num_samples": "count", "seed": "seed"},
    ),
    "VolumeMonitor": (
        ll.VolumeMonitor,
        {
            "every_n_epochs": "count",
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


def _accepted_or_named(call, argument: str) -> None:
    try:
        call()
    except (ValueError, TypeError) as exc:
        assert f"`{argument}" in str(exc), f"{argument}: {type(exc).__name__}: {exc}"


@given(case=st.sampled_from(FUNCTION_CASES), data=st.data())
def test_functions_refuse_bad_arguments_naming_them_and_touch_nothing(case, data):
    name, argument = case
    call, kinds = FUNCTIONS[name]
    value = data.draw(BAD[kinds[argument]], label=f"{name}({argument}=...)")
    model, batches = mlp(), vector_batches()
    model[0].bias.requires_grad_(False)
    torch.nn.functional.cross_entropy(model(batches[0][0]), batches[0][1]).backward()
    before, rng = snapshot(model), GlobalRNG.capture()
    _accepted_or_named(lambda: call(model, batches, **{argument: value}), argument)
    assert_same_state(before, model)
    assert GlobalRNG.capture().equals(rng)


@given(case=st.sampled_from(MONITOR_CASES), data=st.data())
def test_monitors_refuse_bad_arguments_at_construction_naming_them(case, data):
    name, argument = case
    monitor, kinds = MONITORS[name]
    value = data.draw(BAD[kinds[argument]], label=f"{name}({argument}=...)")
    rng = GlobalRNG.capture()
    _accepted_or_named(lambda: monitor(**{argument: value}), argument)
    assert GlobalRNG.capture().equals(rng)
