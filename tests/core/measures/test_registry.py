"""The measure registry: each name computes what its function computes, bad names and options are
refused naming where they came from, and a measure defined outside the package is computed by
``sharpness()`` with its options checked like ours."""

import inspect
import math

import pytest
import torch
from problems import mlp, vector_batches

import lightning_landscape as ll
from lightning_landscape.core.base.evaluation import evaluate
from lightning_landscape.core.measures.registry import (
    SHARED_ARGUMENTS,
    SharpnessResult,
    check_measure_kwargs,
    check_measure_options,
    measure_defaults,
    measure_names,
    register_measure,
    unregister_measure,
)

OURS = ("top_eigenvalue", "trace", "keskar", "adaptive_worst", "average", "filter_normalized_eigenvalue")


def test_each_name_computes_its_function():
    model, batches = mlp(), vector_batches()
    top = ll.hessian_eigenvalues(model, batches, k=1, seed=3)
    result = ll.sharpness(model, batches, measure="top_eigenvalue", seed=3)
    assert result.value == float(top.eigenvalues[0])
    assert result.scalars()["top_eigenvalue_converged"] == float(top.converged)
    trace = ll.hessian_trace(model, batches, seed=3, num_probes=6)
    got = ll.sharpness(model, batches, measure="trace", seed=3, num_probes=6).scalars()
    assert (got["trace"], got["trace_stderr"]) == (trace.estimate, trace.stderr)
    keskar = ll.keskar_sharpness(model, batches, seed=3, num_ascent_steps=2)
    got = ll.sharpness(model, batches, measure="keskar", seed=3, num_ascent_steps=2).scalars()
    assert got == {"keskar": keskar.value, "center_loss": keskar.center_loss}
    basin = ll.sharpness(model, batches, measure="basin_volume", num_probes=3, num_scan=3)
    assert basin.radii.shape == (3,) and "dimension" in basin.extra
    assert set(measure_names()) >= {*OURS, "basin_volume"}


def test_scalar_keys_depend_on_the_measure_never_on_the_values():
    model, batches = mlp(), vector_batches()
    first = ll.sharpness(model, batches, measure="top_eigenvalue", max_iter=2, min_iter=1)  # not converged
    second = ll.sharpness(model, batches, measure="top_eigenvalue", max_iter=60)
    assert first.scalars().keys() == second.scalars().keys()


def test_every_registered_function_takes_the_shared_arguments_and_defaults_its_options():
    for name in measure_names():
        spec = ll.core.measures.registry.registered_measure(name)
        parameters = inspect.signature(spec.function).parameters
        assert set(SHARED_ARGUMENTS) <= set(parameters), name
        assert all(parameters[o].default is not inspect.Parameter.empty for o in spec.options), name
        assert measure_defaults(name) == spec.options


def test_unknown_names_and_options_are_refused_naming_where_they_came_from():
    with pytest.raises(ValueError, match="`measures` names an unknown measure 'flatness'"):
        check_measure_options("flatness", {}, where="measures")
    with pytest.raises(
        ValueError, match=r"`measure_kwargs\['keskar'\]` has unknown option\(s\) \['num_steps'\]"
    ):
        check_measure_options("keskar", {"num_steps": 3})
    with pytest.raises(
        ValueError, match=r"`measure_kwargs\['keskar'\]` has unknown option\(s\) \['num_probes'\]"
    ):
        check_measure_options("keskar", {"num_probes": 3})  # another measure's option
    with pytest.raises(ValueError, match=r"measure 'keskar' has unknown option\(s\) \['num_probes'\]"):
        ll.sharpness(mlp(), vector_batches(), measure="keskar", num_probes=3)
    with pytest.raises(ValueError, match="`num_probes` must be an integer >= 3"):
        ll.sharpness(mlp(), vector_batches(), measure="trace", num_probes=0)
    with pytest.raises(ValueError, match="`measure_kwargs` names 'trace', which is not in `measures`"):
        check_measure_kwargs({"trace": {}}, ["keskar"])


def _loss_ratio(model, batches, *, loss_fn=None, seed=0, num_samples=None, params=None, scale=2.0):
    """A toy measure: ``scale`` times the loss, and the loss."""
    loss = evaluate(model, batches, loss_fn=loss_fn, num_samples=num_samples).loss
    return SharpnessResult("loss_ratio", scale * loss, loss, extra={"scale": scale})


def _check_loss_ratio(scale, **_):
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"`scale` must be a finite number > 0, got {scale!r}.")


@pytest.fixture
def toy_measure():
    register_measure("loss_ratio", _loss_ratio, check=_check_loss_ratio)
    yield "loss_ratio"
    unregister_measure("loss_ratio")


def test_a_measure_registered_outside_is_computed_by_sharpness_with_its_options_checked(toy_measure):
    model, batches = mlp(), vector_batches()
    result = ll.sharpness(model, batches, measure=toy_measure, scale=3.0)
    loss = evaluate(model, batches).loss
    assert result.value == pytest.approx(3.0 * loss) and result.center_loss == pytest.approx(loss)
    assert toy_measure in ll.measure_names()
    with pytest.raises(ValueError, match="`scale` must be a finite number > 0, got -1"):
        ll.sharpness(model, batches, measure=toy_measure, scale=-1.0)
    with pytest.raises(ValueError, match=r"`measure_kwargs\['loss_ratio'\]`: `scale` must be"):
        check_measure_options(toy_measure, {"scale": math.nan})
    with pytest.raises(
        ValueError, match=r"unknown option\(s\) \['epsilon'\]; allowed: \['params', 'scale'\]"
    ):
        ll.sharpness(model, batches, measure=toy_measure, epsilon=1.0)


def test_registering_refuses_what_cannot_be_a_measure(toy_measure):
    with pytest.raises(ValueError, match="'loss_ratio' is a registered measure already"):
        register_measure(toy_measure, _loss_ratio)
    register_measure(toy_measure, _loss_ratio, replace=True)  # replacing is asked for
    with pytest.raises(ValueError, match=r"lacks \['loss_fn', 'seed', 'num_samples', 'params'\]"):
        register_measure("bare", lambda model, batches: None)
    with pytest.raises(ValueError, match="option `scale` of measure 'no_default' needs a default"):
        register_measure(
            "no_default", lambda model, batches, *, loss_fn, seed, num_samples, params=None, scale: None
        )
    with pytest.raises(ValueError, match="`name` must be an identifier"):
        register_measure("two words", _loss_ratio)
    with pytest.raises(TypeError, match="`check` must be None or callable"):
        register_measure("other", _loss_ratio, check=3)
    assert "bare" not in measure_names() and "no_default" not in measure_names()


def test_a_measure_returning_something_else_is_refused_naming_it(toy_measure):
    register_measure(
        "wrong", lambda model, batches, *, loss_fn=None, seed=0, num_samples=None, params=None: 1.0
    )
    try:
        with pytest.raises(
            TypeError, match="measure 'wrong' returned a float; a measure returns a SharpnessResult"
        ):
            ll.sharpness(mlp(), vector_batches(), measure="wrong")
    finally:
        unregister_measure("wrong")
    assert torch.is_tensor(torch.zeros(1))
