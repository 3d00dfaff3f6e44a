"""Each logger gets the monitors' pictures through its own API (issue 27): the sink chosen per
logger class, and the calls it makes, checked against recording stand-ins for Comet and Neptune
(whose packages these tests do not install; TensorBoard, W&B and MLflow are exercised for real in
``tests/test_loggers.py``)."""

from __future__ import annotations

import sys
import types

import torch
from matplotlib.figure import Figure

from lightning_landscape import reporting


class _Recorder:
    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))


class CometLogger:  # named as Lightning's, which the sinks go by
    def __init__(self):
        self.experiment = _Recorder()


class _Series(_Recorder):
    pass


class NeptuneLogger:
    def __init__(self):
        self.series: dict[str, _Series] = {}
        self.run = self

    def __getitem__(self, key):
        return self.series.setdefault(key, _Series())


class _Trainer:
    def __init__(self, loggers):
        self.loggers = loggers


def _figure():
    figure = Figure()
    figure.add_subplot().plot([0, 1])
    return figure


def test_comet_gets_figures_histograms_tables_and_gifs_through_its_experiment(tmp_path):
    logger = CometLogger()
    trainer = _Trainer([logger])
    (sink,) = reporting.sinks(trainer)
    assert isinstance(sink, reporting.CometSink)
    assert reporting.log_figures(trainer, {"landscape/2d/contour": _figure()}, 7, fallback_subdir="x") == []
    reporting.log_histograms(trainer, {"w": torch.ones(3)}, 7, prefix="trajectory/weights")
    reporting.log_table(trainer, "trajectory/snapshots", ["epoch", "loss"], [["0", "1.5"]], 7)
    gif = tmp_path / "a.gif"
    gif.write_bytes(b"GIF89a")
    reporting.log_animation(trainer, "trajectory/path_animation", str(gif), 7)
    names = [
        (name, kwargs.get("name") or kwargs.get("figure_name") or args[0])
        for name, args, kwargs in logger.experiment.calls
    ]
    assert names == [
        ("log_image", "landscape/2d/contour"),
        ("log_histogram_3d", "trajectory/weights/w"),
        ("log_table", "trajectory/snapshots-step=000007.csv"),
        ("log_image", "trajectory/path_animation"),
    ]
    assert all(kwargs.get("step") in (7, None) for _, _, kwargs in logger.experiment.calls)


def test_neptune_gets_figures_tables_and_gifs_as_series_of_its_run(tmp_path, monkeypatch):
    if "neptune" not in sys.modules:  # the File type the sink builds: a stand-in when neptune is absent
        fake = types.ModuleType("neptune")
        fake.types = types.ModuleType("neptune.types")

        class File:
            def __init__(self, path):
                self.path = path

            @staticmethod
            def as_image(figure):
                return ("image", figure)

        fake.types.File = File
        monkeypatch.setitem(sys.modules, "neptune", fake)
        monkeypatch.setitem(sys.modules, "neptune.types", fake.types)
    logger = NeptuneLogger()
    trainer = _Trainer([logger])
    (sink,) = reporting.sinks(trainer)
    assert isinstance(sink, reporting.NeptuneSink)
    reporting.log_figures(trainer, {"sharpness/per_layer": _figure()}, 3, fallback_subdir="x")
    reporting.log_table(trainer, "trajectory/snapshots", ["epoch"], [["0"]], 3)
    reporting.log_animation(trainer, "trajectory/path_animation", str(tmp_path / "a.gif"), 3)
    assert [c[0] for c in logger.series["sharpness/per_layer"].calls] == ["append"]
    assert logger.series["sharpness/per_layer"].calls[0][2] == {"step": 3}
    assert logger.series["trajectory/snapshots"].calls[0][1][0].startswith("| epoch |")
    assert [c[0] for c in logger.series["trajectory/path_animation"].calls] == ["upload"]


def test_a_logger_that_shows_no_pictures_gets_none_and_figures_fall_back_to_pngs():
    class CSVLike:
        experiment = object()

    assert reporting.sinks(_Trainer([CSVLike()])) == []
