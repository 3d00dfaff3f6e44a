"""The CLI as a first-class tool (issue 26): ``plot`` draws every result file we write or says
what it holds instead; ``--params`` on every command; per-layer and per-batch sharpness, printed as
a table; a user's mistake in one or two lines with exit status 2; a short ``--help``."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import pytest

from lightning_landscape import LandscapeResult
from lightning_landscape.cli import main, run
from lightning_landscape.core.base.results import load_result

HONEST = sorted(
    glob.glob(
        os.path.join(os.path.dirname(__file__), "core", "base", "result_files", "main-d4892b6", "*.npz")
    )
)
NUMBERS_ONLY = {"Evaluation", "EigenvalueResult", "TraceEstimate", "SharpnessResult", "EvidenceResult"}
NUMBERS_ONLY |= {"GradientNoiseScale", "VolumeResult", "PCAResult"}
PARTIAL_DATA = {
    "SharpnessRecord.npz"
}  # a hand-made record: density nodes without weights, crossings without radii


@pytest.mark.parametrize("path", HONEST, ids=os.path.basename)
def test_plot_draws_every_result_type_or_names_what_it_holds(path, tmp_path):
    kind = type(load_result(path)).__name__
    if kind in NUMBERS_ONLY or os.path.basename(path) in PARTIAL_DATA:
        with pytest.raises(ValueError, match=f"holds a {kind} of numbers only, with no figure to draw"):
            run(["plot", "--result", path, "--output_dir", str(tmp_path)])
        return
    written = run(["plot", "--result", path, "--output_dir", str(tmp_path)])
    assert written and all(p.endswith(".png") and os.path.getsize(p) > 1000 for p in written), written


def test_a_sharpness_record_of_scalars_only_is_said_not_drawn_silently(tmp_path):
    from lightning_landscape import SharpnessRecord

    path = SharpnessRecord({"keskar": 0.5}, {}, {"seed": 0}).save(tmp_path / "s.npz")
    with pytest.raises(ValueError, match="numbers only.*keskar = 0.5"):
        run(["plot", "--result", str(path), "--output_dir", str(tmp_path)])


def test_params_on_every_command_and_sharpness_per_layer_and_per_batch_as_a_table(regression_run, capsys):
    root, config, first, last, _ = regression_run
    common = [
        "--model_config",
        config,
        "--num_samples",
        "48",
        "--accelerator",
        "cpu",
        "--params",
        "[net.2.*]",
    ]
    run(
        [
            "surface",
            *common,
            "--ckpt_path",
            last,
            "--output_dir",
            str(root / "s"),
            "--dims",
            "1",
            "--num_points",
            "3",
        ]
    )
    surface = LandscapeResult.load(root / "s" / "surface.npz")
    assert set(surface.directions[0]) == {"net.2.weight", "net.2.bias"}
    run(
        [
            "interpolate",
            *common,
            "--start",
            first,
            "--end",
            last,
            "--output_dir",
            str(root / "i"),
            "--num_points",
            "3",
        ]
    )
    line = LandscapeResult.load(root / "i" / "interpolation.npz")
    assert {"net.2.weight", "net.2.bias"} <= set(
        line.directions[0]
    ) and "net.0.weight" not in line.directions[0]
    run(
        ["connect", *common, "--start", first, "--end", last, "--output_dir", str(root / "c"), "--steps", "2"]
    )
    assert set(load_result(root / "c" / "connect.npz").bends[0]) == {"net.2.weight", "net.2.bias"}
    capsys.readouterr()
    written = run(
        ["sharpness", *common[:-2], "--ckpt_path", last, "--output_dir", str(root / "h")]
        + ["--measures", "[top_eigenvalue, trace]", "--per_layer", "true", "--per_batch", "true"]
        + ["--eval_batch_size", "16"]
    )
    table = capsys.readouterr().out
    values = json.loads((root / "h" / "sharpness.json").read_text())["values"]
    assert {
        "per_layer/top_eigenvalue/net.0",
        "per_layer/top_eigenvalue/net.2",
        "per_layer/trace/net.2",
        "per_batch_top_eigenvalue/median",
    } <= set(values)
    assert "measure" in table.splitlines()[0] and f"{values['top_eigenvalue']:.6g}" in table
    figures = run(["plot", "--result", written[-1], "--output_dir", str(root / "h" / "figures")])
    assert {os.path.basename(p) for p in figures} == {
        "sharpness-per_layer.png",
        "sharpness-per_batch_top_eigenvalue.png",
    }
    json_settings = json.loads((root / "h" / "sharpness.json").read_text())
    assert json_settings["num_samples"] == 48  # what was evaluated


@pytest.mark.parametrize("mistake", ["a missing checkpoint", "a bad --loss_fn", "a config naming no model"])
def test_a_users_mistake_is_one_or_two_lines_with_exit_status_2(regression_run, tmp_path, capsys, mistake):
    root, config, _, last, _ = regression_run
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("model:\n  class_path: user_modules.NoSuchModule\ndata: {}\n")
    options = {"--model_config": config, "--ckpt_path": last, "--output_dir": str(tmp_path / "o")}
    options.update({"--accelerator": "cpu", "--num_points": "3", "--dims": "1"})
    options.update(
        {
            "a missing checkpoint": {"--ckpt_path": "/no/such/file.ckpt"},
            "a bad --loss_fn": {"--loss_fn": "no_such_method"},
            "a config naming no model": {"--model_config": str(wrong)},
        }[mistake]
    )
    given = ["surface", *(item for pair in options.items() for item in pair)]
    with pytest.raises(SystemExit) as stopped:
        main(given)
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert 1 <= len(err) <= 3 and err[0].startswith("lightning-landscape: error: `"), (mistake, err)
    with pytest.raises((ValueError, TypeError)):  # --debug: the exception itself, with its traceback
        main([*given, "--debug"])


@pytest.mark.parametrize("command", ["surface", "interpolate", "connect", "sharpness", "plot", "export-vtk"])
def test_every_subcommands_help_is_under_100_lines(command):
    done = subprocess.run(
        [sys.executable, "-m", "lightning_landscape.cli", command, "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert len(done.stdout.splitlines()) < 100, len(done.stdout.splitlines())
    assert "--loss_fn" in done.stdout or command in ("plot", "export-vtk")
