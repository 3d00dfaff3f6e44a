"""One interactive page of a run (``lightning-landscape report LOGDIR``): a single HTML file that
opens offline, with Plotly's JavaScript inside it (no network at view time).

What it shows, from the run's own files (a logger's version folder, or
``landscape_logs/version_N``): every landscape monitor's surfaces (2D: rotatable, with an epoch
slider; 1D: curves with one), every trajectory monitor's path on its plane's contours, every
scalar over the steps (TensorBoard event files, or the CSV logger's ``metrics.csv``), and for every
sharpness monitor its last values as a table, its per-layer curvature and its per-batch top
eigenvalues. Plotly is an optional extra: ``pip install "lightning-landscape[report]"``.
"""

from __future__ import annotations

import csv
import glob
import html
import os
import re
from collections.abc import Iterator
from typing import Any

from .core.base.results import LandscapeResult, SharpnessRecord, load_result
from .core.landscapes.trajectory import TrajectoryResult
from .core.measures.report import SharpnessReport, block_value
from .reporting import result_files

__all__ = ["write_report"]


def write_report(log_dir: str, path: str) -> str:
    """Write the page of the run in ``log_dir`` to ``path`` (written whole, then renamed).

    Raises:
        ValueError: ``log_dir`` holds no result file and no scalar of ours.
        ImportError: Plotly is not installed (``pip install "lightning-landscape[report]"``).
    """
    try:
        import plotly  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            '`report` draws with Plotly, which is not installed: pip install "lightning-landscape[report]".'
        ) from exc
    sections = [
        *_landscapes(log_dir),
        *_trajectories(log_dir),
        *_sharpness(log_dir),
        *_scalars(log_dir),
    ]
    if not sections:
        raise ValueError(
            f"`log_dir` {log_dir!r} holds no result file (landscapes/, trajectory/, sharpness/) and no "
            "scalars (TensorBoard event files or metrics.csv) to report."
        )
    body, first = [], True
    for title, figure_id, figure in sections:
        body.append(f"<h2>{html.escape(title)}</h2>")
        if isinstance(figure, str):  # a table of its own
            body.append(f'<div id="{figure_id}">{figure}</div>')
            continue
        body.append(figure.to_html(full_html=False, include_plotlyjs=first, div_id=figure_id))
        first = False
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>lightning_landscape · {html.escape(os.path.basename(os.path.abspath(log_dir)))}</title>"
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}</style>"
        f"</head><body><h1>{html.escape(os.path.abspath(log_dir))}</h1>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = f"{path}.{os.getpid()}.tmp"
    try:
        with open(partial, "w", encoding="utf-8") as fh:
            fh.write(page)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path


def _id(*parts: str) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9_]+", "_", p) for p in parts)


def _landscapes(log_dir: str) -> Iterator[tuple[str, str, Any]]:
    import plotly.graph_objects as go

    for tag, files in result_files(log_dir, "landscapes").items():
        results = [LandscapeResult.load(f) for f in files]
        labels = [f"epoch {r.epoch} · step {r.global_step}" for r in results]
        if results[0].dims == 2:
            traces = [
                go.Surface(
                    x=r.coords[0].numpy(), y=r.coords[1].numpy(), z=r.loss.numpy().T, colorscale="Viridis"
                )
                for r in results
            ]
            layout: dict[str, Any] = {
                "scene": {"xaxis_title": "direction 1", "yaxis_title": "direction 2", "zaxis_title": "loss"}
            }
        else:
            traces = [go.Scatter(x=r.coords[0].numpy(), y=r.loss.numpy(), mode="lines") for r in results]
            layout = {"xaxis_title": "coefficient", "yaxis_title": "loss"}
        figure = go.Figure(
            data=[traces[-1]], frames=[go.Frame(data=[t], name=str(i)) for i, t in enumerate(traces)]
        )
        steps = [
            {
                "label": label,
                "method": "animate",
                "args": [[str(i)], {"mode": "immediate", "frame": {"duration": 0}}],
            }
            for i, label in enumerate(labels)
        ]
        figure.update_layout(
            title=f"{tag}: {labels[-1]}",
            sliders=[{"active": len(steps) - 1, "steps": steps, "currentvalue": {"prefix": ""}}],
            height=560,
            **layout,
        )
        yield f"landscape {tag}", _id("landscape", tag), figure


def _trajectories(log_dir: str) -> Iterator[tuple[str, str, Any]]:
    import plotly.graph_objects as go

    for tag, files in result_files(log_dir, "trajectory").items():
        result = TrajectoryResult.load(files[-1])
        plane = result.landscape
        path = result.pca.coords.numpy()
        ratio = result.pca.explained_variance_ratio.numpy() * 100
        figure = go.Figure(
            data=[
                go.Contour(
                    x=plane.coords[0].numpy(),
                    y=plane.coords[1].numpy(),
                    z=plane.loss.numpy().T,
                    colorscale="Viridis",
                ),
                go.Scatter(
                    x=path[:, 0],
                    y=path[:, 1],
                    mode="lines+markers+text",
                    text=[str(e) for e in result.epochs],
                    textposition="top right",
                    line={"color": "white"},
                    marker={"color": "white", "line": {"color": "black", "width": 1}},
                    name="path (epochs)",
                ),
            ]
        )
        figure.update_layout(
            title=f"{tag}: the path on its PCA plane",
            xaxis_title=f"PC1 ({ratio[0]:.1f}%)",
            yaxis_title=f"PC2 ({ratio[1]:.1f}%)",
            height=520,
        )
        yield f"trajectory {tag}", _id("trajectory", tag), figure


def _sharpness(log_dir: str) -> Iterator[tuple[str, str, Any]]:
    import plotly.graph_objects as go

    for tag, files in result_files(log_dir, "sharpness").items():
        report = load_result(files[-1])
        if isinstance(report, SharpnessRecord):  # a file of an earlier version
            report = SharpnessReport.from_record(report)
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{v:.6g}</td></tr>"
            for k, v in report.scalars().items()
        )
        where = f"epoch {report.epoch} · step {report.global_step}"
        yield f"sharpness {tag} ({where})", _id("sharpness", tag, "table"), f"<table>{rows}</table>"
        for measure, found in report.per_layer.items():
            values = [block_value(r) for r in found.results.values()]
            figure = go.Figure(go.Bar(x=list(found.results), y=values))
            figure.update_layout(title=f"{tag}: {measure} per layer", height=380)
            yield f"{tag}: {measure} per layer", _id("sharpness", tag, "per_layer", measure), figure
        if report.per_batch is not None:
            figure = go.Figure(go.Histogram(x=report.per_batch.eigenvalues[:, 0].double().numpy()))
            figure.update_layout(title=f"{tag}: top eigenvalue of each batch", height=380)
            yield f"{tag}: per-batch curvature", _id("sharpness", tag, "per_batch"), figure


def _scalars(log_dir: str) -> Iterator[tuple[str, str, Any]]:
    import plotly.graph_objects as go

    series = _read_scalars(log_dir)
    groups: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for name, points in series.items():
        groups.setdefault(name.split("/", 1)[0], {})[name] = points
    for group, members in sorted(groups.items()):
        figure = go.Figure(
            [
                go.Scatter(x=[s for s, _ in p], y=[v for _, v in p], mode="lines+markers", name=n)
                for n, p in sorted(members.items())
            ]
        )
        figure.update_layout(title=f"{group}: scalars over the steps", xaxis_title="step", height=380)
        yield f"scalars {group}", _id("scalars", group), figure


def _read_scalars(log_dir: str) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the run by name: from TensorBoard event files, else from ``metrics.csv``."""
    if glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(log_dir, size_guidance={"scalars": 0})
        events.Reload()
        return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    found: dict[str, list[tuple[int, float]]] = {}
    path = os.path.join(log_dir, "metrics.csv")
    if os.path.exists(path):
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                step = int(float(row.get("step") or 0))
                for name, value in row.items():
                    if name not in ("step", "epoch") and value not in ("", None):
                        found.setdefault(name, []).append((step, float(value)))
    return found
