"""The measure registry: each name computes what its function computes, and bad names or options
are refused naming where they came from."""

import pytest
from problems import mlp, vector_batches

import lightning_landscape as ll
from lightning_landscape.core.measures import MEASURES, check_measure_options, measure
from lightning_landscape.core.sharpness import MEASURES as SHARPNESS_MEASURES


def test_each_name_computes_its_function():
    model, batches = mlp(), vector_batches()
    top = ll.hessian_eigenvalues(model, batches, k=1, seed=3)
    assert measure(model, batches, "top_eigenvalue", seed=3).values["top_eigenvalue"] == float(
        top.eigenvalues[0]
    )
    trace = ll.hessian_trace(model, batches, seed=3, num_probes=6)
    got = measure(model, batches, "trace", seed=3, num_probes=6).values
    assert (got["trace"], got["trace_stderr"]) == (trace.estimate, trace.stderr)
    keskar = ll.sharpness(model, batches, measure="keskar", seed=3, num_ascent_steps=2)
    got = measure(model, batches, "keskar", seed=3, num_ascent_steps=2).values
    assert got == {"keskar": keskar.value, "center_loss": keskar.center_loss}
    basin = measure(model, batches, "basin_volume", num_probes=3, num_scan=3)
    assert set(basin.arrays) == {"basin/radii", "basin/crossed"} and "dimension" in basin.settings["basin"]
    assert set(MEASURES) == {"top_eigenvalue", "trace", *SHARPNESS_MEASURES}


def test_unknown_names_and_options_are_refused_naming_where_they_came_from():
    with pytest.raises(ValueError, match="`measures` names an unknown measure 'flatness'"):
        check_measure_options("flatness", {}, where="measures")
    with pytest.raises(
        ValueError, match=r"`measure_kwargs\['keskar'\]` has unknown option\(s\) \['num_steps'\]"
    ):
        check_measure_options("keskar", {"num_steps": 3})
    with pytest.raises(ValueError, match=r"`options\['trace'\]`: `num_probes`"):
        measure(mlp(), vector_batches(), "trace", num_probes=0)


def test_each_sharpness_measure_has_its_own_function_with_sharpness_defaults():
    import inspect

    from lightning_landscape.core.sharpness import MEASURE_FUNCTIONS

    shared = {n: p.default for n, p in inspect.signature(ll.sharpness).parameters.items()}
    assert shared["num_probes"] is None  # each measure's own default: 20 draws, 50 basin directions
    assert set(MEASURE_FUNCTIONS) == set(SHARPNESS_MEASURES)
    model, batches = mlp(), vector_batches()
    for name, function in MEASURE_FUNCTIONS.items():
        own = {
            n: p.default
            for n, p in inspect.signature(function).parameters.items()
            if n not in ("model", "batches", "num_directions")  # (basin_volume's former name of num_probes)
        }
        expected = {n: own[n] if n == "num_probes" else shared[n] for n in own}
        assert expected == own, name  # the same defaults as sharpness()
        if name != "filter_normalized_eigenvalue":  # (a Lanczos run: covered by test_sharpness.py)
            quick = {"num_ascent_steps": 2, "num_probes": 2, "num_scan": 3}
            options = {k: v for k, v in quick.items() if k in own}
            mine = function(model, batches, **options)
            theirs = ll.sharpness(model, batches, measure=name, **options)
            assert mine.value == theirs.value or (mine.value != mine.value and theirs.value != theirs.value)
    with pytest.raises(
        ValueError, match=r"`measure_kwargs\['keskar'\]` has unknown option\(s\) \['num_probes'\]"
    ):
        check_measure_options("keskar", {"num_probes": 3})  # another measure's option
