"""Paper-scale ``lightning-landscape`` runs: the whole data set, several processes, resumable.

The reference is always ``compute_landscape`` (or the one-process command) on the same checkpoint
and data; the digits example's MLP with its initial weights is the checkpoint.
"""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from lightning_landscape import LandscapeResult, compute_landscape
from lightning_landscape.cli import run as main
from lightning_landscape.core.landscapes import _grid as grid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "example_projects", "digits")
CLASSES = ["--model_class", "digits.DigitsClassifier", "--data_class", "digits.DigitsDataModule"]


@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory):
    """(folder, config, checkpoint, model): the digits MLP's weights saved as a state dict."""
    root = tmp_path_factory.mktemp("paper_scale")
    sys.path.insert(0, DIGITS)
    from digits import DigitsClassifier

    torch.manual_seed(0)
    model = DigitsClassifier(arch="mlp")
    torch.save(model.state_dict(), root / "weights.pt")
    (root / "config.yaml").write_text("model:\n  arch: mlp\ndata:\n  batch_size: 64\n")
    return root, str(root / "config.yaml"), str(root / "weights.pt"), model


def _args(config, ckpt, out, *extra):
    return [
        "surface",
        "--model_config",
        config,
        "--ckpt_path",
        ckpt,
        "--output_dir",
        str(out),
        *CLASSES,
        "--accelerator",
        "cpu",
        "--loss_fn",
        "cross_entropy",
        "--num_points",
        "5",
        *extra,
    ]


def _whole_training_set():
    from digits import DigitsDataModule

    data = DigitsDataModule(batch_size=64)
    data.setup("fit")
    return data.train_set


def test_surface_on_all_samples_equals_compute_landscape_on_the_whole_training_set(digits_checkpoint):
    root, config, ckpt, model = digits_checkpoint
    main(
        _args(
            config,
            ckpt,
            root / "all",
            "--num_samples",
            "all",
            "--eval_batch_size",
            "100",
            "--chunk_points",
            "5",
        )
    )
    result = LandscapeResult.load(root / "all" / "surface.npz")
    whole = _whole_training_set()
    loader = torch.utils.data.DataLoader(whole, batch_size=len(whole))
    expected = compute_landscape(model.cpu(), loader, num_points=5, loss_fn="cross_entropy")
    assert result.num_samples == expected.num_samples == len(whole)
    torch.testing.assert_close(result.loss, expected.loss, rtol=1e-5, atol=0)
    torch.testing.assert_close(result.accuracy, expected.accuracy, rtol=1e-5, atol=1e-7)
    assert result.extra["settings"]["num_samples"] == "all" and result.is_complete


def test_a_killed_run_resumes_bit_identically_and_other_settings_are_refused(digits_checkpoint, monkeypatch):
    root, config, ckpt, _ = digits_checkpoint
    common = ["--num_samples", "300", "--chunk_points", "4"]
    main(_args(config, ckpt, root / "through", *common))
    uninterrupted = LandscapeResult.load(root / "through" / "surface.npz")

    original, calls = grid._chunk_means, []

    def killed_at_the_third_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # what a Ctrl-C or a scheduler's kill leaves behind
        return original(*args, **kwargs)

    out = root / "killed"
    with monkeypatch.context() as patch:
        patch.setattr(grid, "_chunk_means", killed_at_the_third_chunk)
        with pytest.raises(KeyboardInterrupt):
            main(_args(config, ckpt, out, *common))
    partial = LandscapeResult.load(out / "surface.npz")
    assert int(partial.computed.sum()) == 8 and not partial.is_complete
    assert sorted(os.listdir(out)) == ["surface.npz"]  # no temporary file left behind

    with pytest.raises(ValueError, match="holds a partial landscape .8 of 25 points.: give `--resume true`"):
        main(_args(config, ckpt, out, *common))
    with pytest.raises(ValueError, match="seed: 0 in the file, 1 now"):
        main(_args(config, ckpt, out, *common, "--resume", "true", "--seed", "1"))
    other = root / "other.pt"
    weights = torch.load(ckpt, weights_only=True)
    torch.save({k: v * 1.5 for k, v in weights.items()}, other)
    with pytest.raises(ValueError, match="checkpoint_sha256"):
        main(_args(config, str(other), out, *common, "--resume", "true"))

    main(_args(config, ckpt, out, *common, "--resume", "true"))
    assert LandscapeResult.load(out / "surface.npz") == uninterrupted


AUDIT = textwrap.dedent(
    """
    # Records, per process, every file opened for writing (or renamed) under LL_WATCH_DIR.
    import os, sys
    _watch, _log = os.environ.get("LL_WATCH_DIR"), os.environ.get("LL_WRITE_LOG")

    def _record(event, args):
        if event == "open":
            path, mode = args[0], args[1]
            writes = isinstance(mode, str) and any(c in mode for c in "wax+")
        elif event == "os.rename":
            path, writes = args[1], True
        else:
            return
        if writes and isinstance(path, str) and path.startswith(_watch):
            rank = os.environ.get("LOCAL_RANK", "0")
            with open(os.path.join(_log, f"{os.getpid()}.rank{rank}"), "a") as fh:
                fh.write(path + "\\n")

    if _watch and _log:
        sys.addaudithook(_record)
    """
)


@pytest.mark.slow
def test_two_ddp_processes_write_the_one_process_result_from_rank_zero_only(digits_checkpoint, tmp_path):
    root, config, ckpt, _ = digits_checkpoint
    common = ["--num_samples", "all", "--chunk_points", "10"]
    main(_args(config, ckpt, root / "one", *common))
    one = LandscapeResult.load(root / "one" / "surface.npz")

    hooks, log, out = tmp_path / "hooks", tmp_path / "log", tmp_path / "ddp"
    hooks.mkdir(), log.mkdir()
    (hooks / "sitecustomize.py").write_text(AUDIT)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(hooks), DIGITS, os.environ.get("PYTHONPATH", "")]),
        "LL_WATCH_DIR": str(out),
        "LL_WRITE_LOG": str(log),
    }
    command = [sys.executable, "-m", "lightning_landscape.cli", *_args(config, ckpt, out, *common)]
    done = subprocess.run(
        command + ["--devices", "2", "--strategy", "ddp"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = LandscapeResult.load(out / "surface.npz")
    torch.testing.assert_close(result.loss, one.loss, rtol=1e-5, atol=0)
    torch.testing.assert_close(result.accuracy, one.accuracy, rtol=1e-5, atol=1e-7)
    assert result.num_samples == one.num_samples
    writers = {name.rpartition(".rank")[2] for name in os.listdir(log)}
    assert writers == {"0"}, f"processes of ranks {writers} wrote under the output folder"
    written = "".join((log / name).read_text() for name in os.listdir(log))
    assert "surface.npz" in written and "surface-contour.png" in written  # the audit saw the writes
    assert done.stdout.count(str(out / "surface.npz")) == 1  # printed once, by rank zero


@pytest.mark.slow
def test_interpolate_on_two_ddp_processes_equals_one_process(digits_checkpoint, tmp_path):
    # sharpness takes the same engine; its sums over processes are the monitors' (test_distributed.py)
    root, config, ckpt, model = digits_checkpoint
    other = tmp_path / "other.pt"
    torch.save({k: v * 0.5 for k, v in model.state_dict().items()}, other)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([DIGITS, os.environ.get("PYTHONPATH", "")])}
    arguments = ["interpolate", "--start", str(other), "--end", ckpt, "--num_points", "3"]
    arguments += ["--span", "[0.0, 1.0]", "--num_samples", "all", "--model_config", config, *CLASSES]
    arguments += ["--accelerator", "cpu", "--loss_fn", "cross_entropy"]
    main([*arguments, "--output_dir", str(tmp_path / "one")])
    done = subprocess.run(
        [sys.executable, "-m", "lightning_landscape.cli", *arguments]
        + ["--output_dir", str(tmp_path / "two"), "--devices", "2", "--strategy", "ddp"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    one = LandscapeResult.load(tmp_path / "one" / "interpolation.npz")
    two = LandscapeResult.load(tmp_path / "two" / "interpolation.npz")
    torch.testing.assert_close(two.loss, one.loss, rtol=1e-5, atol=0)
    torch.testing.assert_close(two.accuracy, one.accuracy, rtol=1e-5, atol=1e-7)
    assert two.num_samples == one.num_samples == len(_whole_training_set())
