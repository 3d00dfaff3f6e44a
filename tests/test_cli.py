"""The ``lightning-landscape`` commands on a checkpoint of the digits example."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from problems import fit_two_epochs as _fit_two_epochs

from lightning_landscape import LandscapeResult, compute_landscape
from lightning_landscape.cli import run as main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "example_projects", "digits")
CLASSES = ["--model_class", "digits.DigitsClassifier", "--data_class", "digits.DigitsDataModule"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A 2-epoch digits MLP run with a checkpoint per epoch, and its LightningCLI-style config."""
    root = tmp_path_factory.mktemp("digits")
    sys.path.insert(0, DIGITS)
    from digits import DigitsClassifier, DigitsDataModule

    config = "model:\n  arch: mlp\ndata:\n  batch_size: 64\n"
    return _fit_two_epochs(root, DigitsClassifier(arch="mlp"), DigitsDataModule(batch_size=64), config)


def test_surface_writes_a_result_equal_to_compute_landscape_and_figures(digits_run, capsys):
    root, config, _, last, model = digits_run
    out = root / "surface"
    args = ["--model_config", config, "--ckpt_path", last, "--output_dir", str(out), *CLASSES]
    written = main(
        ["surface", *args, "--num_points", "5", "--num_samples", "128", "--accelerator", "cpu"]
        + ["--loss_fn", "cross_entropy"]
    )
    names = sorted(os.path.basename(p) for p in written)
    assert names == [
        "surface-contour.png",
        "surface-contour_filled.png",
        "surface-surface_3d.png",
        "surface.npz",
    ]
    assert all(os.path.getsize(p) > 0 for p in written)
    assert str(out / "surface.npz") in capsys.readouterr().out
    result = LandscapeResult.load(out / "surface.npz")
    from digits import DigitsDataModule

    from lightning_landscape.core.base.batches import evaluation_subset

    data = DigitsDataModule(batch_size=64)
    data.setup("fit")
    batches = evaluation_subset(data.train_dataloader(), 128, 256, 0, torch.device("cpu"))
    expected = compute_landscape(model.cpu(), batches, num_points=5)
    torch.testing.assert_close(result.loss, expected.loss, rtol=1e-6, atol=0)


def test_surface_along_hessian_eigenvectors_equals_compute_landscape(digits_run):
    root, config, _, last, model = digits_run
    out = root / "hessian_surface"
    args = ["--model_config", config, "--ckpt_path", last, "--output_dir", str(out), *CLASSES]
    main(
        ["surface", *args, "--num_points", "3", "--num_samples", "128", "--accelerator", "cpu"]
        + ["--loss_fn", "cross_entropy", "--directions", "hessian"]
    )
    result = LandscapeResult.load(out / "surface.npz")
    from digits import DigitsDataModule

    from lightning_landscape.core.base.batches import evaluation_subset

    data = DigitsDataModule(batch_size=64)
    data.setup("fit")
    batches = evaluation_subset(data.train_dataloader(), 128, 256, 0, torch.device("cpu"))
    expected = compute_landscape(model.cpu(), batches, num_points=3, directions="hessian")
    assert result.extra["directions"] == "hessian" and result.normalization is None
    assert result.extra["hessian_eigenvalues"] == pytest.approx(
        expected.extra["hessian_eigenvalues"], rel=1e-5
    )
    torch.testing.assert_close(result.loss, expected.loss, rtol=1e-5, atol=0)


def test_interpolate_passes_through_both_checkpoints(digits_run):
    root, config, first, last, _ = digits_run
    out = root / "interp"
    written = main(
        ["interpolate", "--model_config", config, "--start", first, "--end", last, "--output_dir", str(out)]
        + CLASSES
        + ["--num_points", "5", "--span", "[0.0, 1.0]", "--num_samples", "128", "--accelerator", "cpu"]
    )
    assert sorted(os.path.basename(p) for p in written) == ["interpolation.npz", "interpolation.png"]
    result = LandscapeResult.load(out / "interpolation.npz")
    assert result.loss.shape == (5,) and result.coords[0][0] == 0.0 and result.coords[0][-1] == 1.0
    assert result.loss[-1] < result.loss[0]  # training lowered the loss from epoch 0 to epoch 1


def test_connect_writes_the_curve_the_figure_and_a_tensorboard_event_file(digits_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from lightning_landscape import ConnectivityResult

    root, config, first, last, _ = digits_run
    out = root / "connect"
    args = ["--model_config", config, "--start", first, "--end", last, "--output_dir", str(out), *CLASSES]
    written = main(["connect", *args, "--steps", "20", "--num_points", "5", "--num_samples", "128"])
    assert sorted(os.path.basename(p) for p in written) == ["connect.npz", "connect.png"]
    result = ConnectivityResult.load(out / "connect.npz")
    assert result.t.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0] and result.train_loss.shape == (20,)
    events = EventAccumulator(str(out), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert "connect/curve_vs_line" in events.Tags()["images"]
    assert events.Scalars("connect/curve_barrier")[0].value == pytest.approx(result.curve_barrier, rel=1e-5)


def test_sharpness_writes_its_values(digits_run):
    root, config, _, last, _ = digits_run
    out = root / "sharp"
    main(
        ["sharpness", "--model_config", config, "--ckpt_path", last, "--output_dir", str(out)]
        + CLASSES
        + ["--measures", "[top_eigenvalue, keskar]", "--num_samples", "128", "--accelerator", "cpu"]
    )
    written = json.loads((out / "sharpness.json").read_text())
    values = written["values"]
    assert values["top_eigenvalue"] > 0 and values["keskar"] >= 0 and written["num_samples"] == 128


def test_plot_redraws_a_saved_result_without_the_model(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
    path = compute_landscape(net, data, num_points=5).save(tmp_path / "r.npz")
    written = main(["plot", "--result", path, "--output_dir", str(tmp_path / "f"), "--kind", "surface_3d"])
    written += main(["plot", "--result", path, "--output_dir", str(tmp_path / "f"), "--log_scale", "true"])
    assert [os.path.basename(p) for p in written] == [
        "r-surface_3d.png",
        "r-contour.png",
        "r-contour_filled.png",
        "r-surface_3d.png",
    ]
    line = compute_landscape(net, data, dims=1, num_points=5).save(tmp_path / "line.npz")
    with pytest.raises(
        ValueError, match="`kind` 'contour' does not fit this LandscapeResult; choose from \\['curve'\\]"
    ):
        main(["plot", "--result", line, "--kind", "contour", "--output_dir", str(tmp_path / "f")])


@pytest.mark.parametrize("suffix", ["vts", "vtp"])
def test_export_vtk_writes_valid_xml_with_one_point_per_grid_point(tmp_path, suffix):
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
    result = compute_landscape(net, data, num_points=4, span=(-200.0, 200.0))
    path = result.save(tmp_path / "r.npz")
    (target,) = main(["export-vtk", "--result", path, "--output", str(tmp_path / f"surface.{suffix}")])
    root = ET.parse(target).getroot()
    assert root.tag == "VTKFile" and root.get("type") == ("StructuredGrid" if suffix == "vts" else "PolyData")
    points = np.array(root.find(".//Points/DataArray").text.split(), dtype=float).reshape(-1, 3)
    assert points.shape == (16, 3)
    loss = np.array(root.find(".//PointData/DataArray[@Name='loss']").text.split(), dtype=float)
    np.testing.assert_allclose(loss, result.loss.numpy().ravel())
    np.testing.assert_allclose(points[:, 2], np.where(np.isfinite(loss), loss, points[:, 2]), rtol=1e-6)
    if suffix == "vtp":
        piece = root.find(".//Piece")
        assert piece.get("NumberOfPoints") == "16" and piece.get("NumberOfPolys") == "18"
        connectivity = root.find(".//Polys/DataArray[@Name='connectivity']").text.split()
        assert len(connectivity) == 3 * 18 and max(map(int, connectivity)) == 15
    else:
        assert root.find(".//StructuredGrid").get("WholeExtent") == "0 3 0 3 0 0"


def test_console_script_exits_zero_and_lists_the_commands(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
    path = compute_landscape(net, data, num_points=3).save(tmp_path / "r.npz")
    done = subprocess.run(
        [sys.executable, "-c", "from lightning_landscape.cli import main; import sys; sys.exit(main())"]
        + ["export-vtk", "--result", path, "--output", str(tmp_path / "s.vts")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "s.vts")
    done = subprocess.run(
        [sys.executable, "-m", "lightning_landscape.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for command in ("surface", "interpolate", "sharpness", "plot", "export-vtk"):
        assert command in done.stdout


# ---------------------------------------------------------------- a user's regression checkpoint
def _regression_reference(model, batches) -> float:
    return float(
        sum(model.reference_loss(b) * len(b["target"]) for b in batches)
        / sum(len(b["target"]) for b in batches)
    )


@pytest.mark.parametrize("loss_fn", [None, "training_step", "user_modules.dict_mse"])
def test_surface_and_sharpness_of_a_regression_checkpoint(regression_run, loss_fn):
    from user_modules import RegressionData

    root, config, _, last, model = regression_run
    extra = [] if loss_fn is None else ["--loss_fn", loss_fn]
    out = root / f"surface-{loss_fn}"
    common = [
        "--model_config",
        config,
        "--ckpt_path",
        last,
        "--num_samples",
        "64",
        "--accelerator",
        "cpu",
        *extra,
    ]
    main(["surface", *common, "--output_dir", str(out), "--dims", "1", "--num_points", "3"])
    result = LandscapeResult.load(out / "surface.npz")
    data = RegressionData(dict_batches=True).dataset()
    expected = _regression_reference(model.cpu(), [{"features": data.features, "target": data.target}])
    assert result.center_loss == pytest.approx(expected, rel=1e-5)  # the module's own MSE, not 0
    assert result.accuracy is None
    main(
        [
            "sharpness",
            *common,
            "--output_dir",
            str(root / f"sharp-{loss_fn}"),
            "--measures",
            "[top_eigenvalue]",
        ]
    )
    written = json.loads((root / f"sharp-{loss_fn}" / "sharpness.json").read_text())
    assert written["values"]["top_eigenvalue"] > 0
    assert written["loss"] == {"user_modules.dict_mse": "dict_mse"}.get(loss_fn, "training_step")


def test_interpolate_a_regression_checkpoint_with_its_own_loss(regression_run):
    root, config, first, last, model = regression_run
    out = root / "interp"
    main(
        ["interpolate", "--model_config", config, "--start", first, "--end", last, "--output_dir", str(out)]
        + ["--num_points", "3", "--span", "[0.0, 1.0]", "--num_samples", "64", "--accelerator", "cpu"]
        + ["--loss_fn", "training_step"]
    )
    result = LandscapeResult.load(out / "interpolation.npz")
    from user_modules import RegressionData, RegressionModule

    data = RegressionData(dict_batches=True).dataset()
    batch = {"features": data.features, "target": data.target}
    for alpha, path in ((0, first), (-1, last)):  # α = 0 and 1 are the checkpoints themselves
        at = RegressionModule(dict_batches=True)
        at.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["state_dict"])
        assert float(result.loss[alpha]) == pytest.approx(_regression_reference(at, [batch]), rel=1e-5)


def test_a_loss_that_does_not_fit_the_batches_is_refused_naming_loss_fn(regression_run):
    root, config, _, last, _ = regression_run
    with pytest.raises(ValueError, match=r"`loss_fn` \(MSELoss\) fails on an evaluation batch"):
        main(
            ["sharpness", "--model_config", config, "--ckpt_path", last, "--output_dir", str(root / "bad")]
            + ["--measures", "[top_eigenvalue]", "--num_samples", "16", "--accelerator", "cpu"]
            + ["--loss_fn", "torch.nn.MSELoss"]
        )


# ---------------------------------------------------------------- no code from files
class _Payload:
    """Unpickling it creates a file: what a malicious checkpoint would do with a shell command."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("command", ["surface", "sharpness", "interpolate_start", "interpolate_end"])
def test_a_checkpoint_carrying_a_pickle_payload_is_refused_by_every_command(
    regression_run, tmp_path, command
):
    root, config, first, last, _ = regression_run
    marker = tmp_path / "payload-ran"
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    checkpoint["hyper_parameters"]["trap"] = _Payload(str(marker))
    crafted = str(tmp_path / "crafted.ckpt")
    torch.save(checkpoint, crafted)
    common = [
        "--model_config",
        config,
        "--num_samples",
        "16",
        "--accelerator",
        "cpu",
        "--output_dir",
        str(tmp_path / "o"),
    ]
    args = {
        "surface": ["surface", "--ckpt_path", crafted, "--num_points", "3"],
        "sharpness": ["sharpness", "--ckpt_path", crafted, "--measures", "[top_eigenvalue]"],
        "interpolate_start": ["interpolate", "--start", crafted, "--end", last, "--num_points", "3"],
        "interpolate_end": ["interpolate", "--start", first, "--end", crafted, "--num_points", "3"],
    }[command]
    name = {"interpolate_start": "start", "interpolate_end": "end"}.get(command, "ckpt_path")
    with pytest.raises(ValueError, match=f"`{name}` .* cannot be read as tensors and plain containers only"):
        main([*args, *common])
    assert not marker.exists()  # the payload never ran
