"""Wherever the user looks (issue 27): the digits example's model, trained for 2 epochs with a
TensorBoard, an offline Weights & Biases and a local MLflow logger at once; every figure family
(landscape, trajectory, sharpness), every scalar and the animations are read back from each tool's
own store, with no network touched. The GIFs have one frame per snapshot (or run), and the CLI's
animations and interactive report are built from the same run's folder."""

from __future__ import annotations

import glob
import os
import socket
import struct
import sys
import warnings

import numpy as np
import pytest
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger, WandbLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import lightning_landscape as ll
from lightning_landscape.cli import run

pytest.importorskip("sklearn")
wandb = pytest.importorskip("wandb")
mlflow = pytest.importorskip("mlflow")

DIGITS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "example_projects", "digits"
)
FAMILIES = {  # a figure of each family, by its tag
    "landscape": "landscape/2d/contour",
    "trajectory": "trajectory/pca_plane",
    "sharpness": "sharpness/hessian_density",
}


def _monitors():
    common = {"loss_fn": "cross_entropy", "num_samples": 128, "eval_batch_size": 64, "progress_bar": False}
    return [
        ll.LossLandscapeMonitor(every_n_epochs=1, dims=2, num_points=5, animate=True, **common),
        ll.TrajectoryMonitor(num_points=5, animate=True, log_histograms=True, **common),
        ll.SharpnessMonitor(
            every_n_epochs=1, measures=["top_eigenvalue", "trace"], density=True, per_layer=True, **common
        ),
    ]


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """The environment of a machine with no network: W&B offline in a folder of its own, MLflow's
    local file store, and any connection of this process beyond the loopback refused and recorded."""
    root = tmp_path_factory.mktemp("offline")
    patch = pytest.MonkeyPatch()
    for name, value in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(root),
        "WANDB_CONFIG_DIR": str(root / "config"),
        "WANDB_CACHE_DIR": str(root / "cache"),
        "MLFLOW_ALLOW_FILE_STORE": "true",
    }.items():
        patch.setenv(name, value)
    attempts = []
    connect = socket.socket.connect

    def local_only(self, address):
        host = address[0] if isinstance(address, tuple) else str(address)
        if isinstance(address, tuple) and host not in ("127.0.0.1", "localhost", "::1"):
            attempts.append(address)
            raise OSError(f"no network in this test: {address}")
        return connect(self, address)

    patch.setattr(socket.socket, "connect", local_only)
    yield root, attempts
    patch.undo()


@pytest.fixture(scope="module")
def three_loggers(offline):
    root, attempts = offline
    sys.path.insert(0, DIGITS)
    from digits import DigitsClassifier, DigitsDataModule

    tensorboard = TensorBoardLogger(str(root / "tb"), name="digits")
    weights_and_biases = WandbLogger(
        project="lightning_landscape", save_dir=str(root / "wandb"), offline=True
    )
    store = root / "mlruns"
    ml = MLFlowLogger(experiment_name="digits", tracking_uri=f"file:{store}")
    monitors = _monitors()
    seed_everything(0)
    trainer = Trainer(
        max_epochs=2,
        callbacks=monitors,
        logger=[tensorboard, weights_and_biases, ml],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=5,
        accelerator="cpu",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(DigitsClassifier(arch="mlp"), DigitsDataModule(batch_size=64))
    weights_and_biases.experiment.finish()
    return {
        "trainer": trainer,
        "monitors": monitors,
        "tb": tensorboard,
        "wandb": weights_and_biases,
        "mlflow": ml,
    }


def _wandb_history(run_dir: str) -> list[dict[str, str]]:
    """Every history row of an offline W&B run, read from its ``.wandb`` log (a LevelDB-style log
    of protobuf records: 32 KiB blocks of [crc32, length, type] records after a 7-byte header)."""
    from wandb.proto import wandb_internal_pb2

    (path,) = glob.glob(os.path.join(run_dir, "run-*.wandb"))
    data = open(path, "rb").read()
    assert data[:4] == b":W&B"
    block, pos, pieces, rows = 32768, 7, b"", []
    while pos < len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pos += 7
        if kind == 0:
            pos += left - 7
            continue
        chunk, pos = data[pos : pos + length], pos + length
        pieces = chunk if kind in (1, 2) else pieces + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            if record.WhichOneof("record_type") == "history":
                rows.append({(i.key or "/".join(i.nested_key)): i.value_json for i in record.history.item})
    return rows


def _scalar_tags(run) -> set[str]:
    events = EventAccumulator(run["tb"].log_dir, size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    ours = ("landscape/", "trajectory/", "sharpness/")
    return {t for t in events.Tags()["scalars"] if t.startswith(ours)}, set(events.Tags()["images"])


def test_every_figure_family_and_scalar_reaches_each_tools_own_store(three_loggers, offline):
    _, attempts = offline
    scalars, images = _scalar_tags(three_loggers)
    assert set(FAMILIES.values()) <= images and "sharpness/per_layer" in images
    assert {
        "landscape/center_loss",
        "sharpness/top_eigenvalue",
        "trajectory/explained_variance_pc1",
    } <= scalars
    # Weights & Biases: its offline run folder
    run_dir = three_loggers["wandb"].experiment.dir.removesuffix("/files")
    rows = _wandb_history(run_dir)
    keys = {k for row in rows for k in row}
    for tag in [*FAMILIES.values(), "sharpness/per_layer"]:
        assert f"{tag}/filenames" in keys, tag
        files = [row[f"{tag}/filenames"] for row in rows if f"{tag}/filenames" in row]
        assert all(os.path.exists(os.path.join(run_dir, "files", f.strip('[]"'))) for f in files)
    assert scalars <= keys, scalars - keys
    assert any(k.startswith("trajectory/snapshots") for k in keys)  # the table
    assert any(k.startswith("trajectory/weights/") for k in keys)  # the histograms
    assert any(k.startswith("trajectory/path_animation") for k in keys)  # the GIF, as a video
    # MLflow: its artifact and metric store
    client = mlflow.tracking.MlflowClient(tracking_uri=three_loggers["mlflow"]._tracking_uri)
    run_id = three_loggers["mlflow"].run_id

    def artifacts(path=""):
        for item in client.list_artifacts(run_id, path):
            yield from artifacts(item.path) if item.is_dir else [item.path]

    stored = set(artifacts())
    for tag in [*FAMILIES.values(), "sharpness/per_layer"]:
        assert any(a.startswith(f"{tag}/step=") and a.endswith(".png") for a in stored), tag
    assert any(a.startswith("trajectory/snapshots/") and a.endswith(".md") for a in stored)
    assert any(a.startswith("trajectory/path_animation/") and a.endswith(".gif") for a in stored)
    for name in scalars:
        assert client.get_metric_history(run_id, name), name
    assert not attempts, attempts


def _frames(path) -> list[np.ndarray]:
    from PIL import Image, ImageSequence

    with Image.open(path) as image:
        return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]


def test_the_gifs_have_a_frame_per_snapshot_and_the_cli_draws_the_same(three_loggers, tmp_path):
    landscape, trajectory, _ = three_loggers["monitors"]
    log_dir = three_loggers["tb"].log_dir
    path_gif = os.path.join(log_dir, "trajectory", "trajectory-path.gif")
    epochs_gif = os.path.join(log_dir, "landscapes", "landscape-epochs.gif")
    assert len(_frames(path_gif)) == len(trajectory.snapshots) == 3  # initialization and 2 epochs
    assert len(_frames(epochs_gif)) == len(landscape.saved_files) == 2
    written = run(["animate", "--log_dir", log_dir, "--output_dir", str(tmp_path)])
    assert sorted(os.path.basename(p) for p in written) == ["landscape-epochs.gif", "trajectory-path.gif"]
    for ours, cli in (
        (path_gif, tmp_path / "trajectory-path.gif"),
        (epochs_gif, tmp_path / "landscape-epochs.gif"),
    ):
        a, b = _frames(ours), _frames(cli)
        assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_the_report_is_one_offline_page_with_every_figure(three_loggers, tmp_path):
    pytest.importorskip("plotly")
    from html.parser import HTMLParser

    log_dir = three_loggers["tb"].log_dir
    (path,) = run(["report", "--log_dir", log_dir, "--output", str(tmp_path / "report.html")])
    text = open(path, encoding="utf-8").read()

    class Page(HTMLParser):
        def __init__(self):
            super().__init__()
            self.ids, self.external = set(), []

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if "id" in attrs:
                self.ids.add(attrs["id"])
            for name in ("src", "href"):  # anything the page would load when opened
                if attrs.get(name, "").startswith(("http:", "https:", "//")):
                    self.external.append((tag, attrs[name]))

    page = Page()
    page.feed(text)
    assert not page.external, page.external
    assert text.count("<html") == 1 and os.listdir(tmp_path) == ["report.html"]
    expected = {"landscape-landscape", "trajectory-trajectory", "sharpness-sharpness-table"}
    expected |= {"sharpness-sharpness-per_layer-top_eigenvalue", "scalars-landscape", "scalars-sharpness"}
    assert expected <= page.ids, expected - page.ids
    assert "Plotly.newPlot" in text and "sliders" in text  # the epoch slider of the surfaces


def test_a_csv_logger_alone_gets_pngs(tmp_path):
    from problems import fit_classifier

    monitor = ll.LossLandscapeMonitor(
        every_n_epochs=1, dims=1, num_points=3, num_samples=32, eval_batch_size=16
    )
    logger = CSVLogger(str(tmp_path), name="csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_classifier(tmp_path, [monitor], seed=0, max_epochs=1, logger=logger)
    assert glob.glob(os.path.join(logger.log_dir, "landscapes", "*.png"))


def _chromium() -> str | None:
    import shutil

    return next(
        (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
    )


def test_the_report_renders_in_a_real_browser_without_console_errors(three_loggers, tmp_path):
    """Headless Chromium opens the page from disk, runs its scripts and draws it; its console log
    has no error. Skipped, with the reason, where no Chromium is installed."""
    import subprocess

    browser = _chromium()
    if browser is None:
        pytest.skip(
            "no Chromium installed (Debian: apt-get install chromium): the page is not opened in a browser"
        )
    pytest.importorskip("plotly")
    (page,) = run(
        ["report", "--log_dir", three_loggers["tb"].log_dir, "--output", str(tmp_path / "report.html")]
    )
    flags = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
    ]
    flags += ["--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "report.png"
    done = subprocess.run(
        [browser, *flags, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=8000",
         "--window-size=1200,2400", f"--screenshot={shot}", f"file://{page}"],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    errors = [line for line in console if "Uncaught" in line or ":ERROR:CONSOLE" in line]
    assert shot.exists() and shot.stat().st_size > 10_000, done.stderr[-2000:]
    assert not errors, errors
    dom = subprocess.run(
        [browser, *flags, "--virtual-time-budget=8000", "--dump-dom", f"file://{page}"],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert dom.count('class="main-svg"') >= 4  # Plotly drew the figures (each draws <svg class="main-svg">)
