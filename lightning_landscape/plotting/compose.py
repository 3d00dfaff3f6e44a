"""Put several figures side by side in one image file."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imsave

__all__ = ["save_side_by_side"]


def _pixels(fig: Figure) -> np.ndarray:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())


def save_side_by_side(
    figures: Sequence[Figure], path: str | os.PathLike[str], *, columns: int | None = None
) -> str:
    """Render ``figures`` and save them as one PNG, in rows of ``columns`` (default: one row).

    Example:
        >>> import tempfile, os
        >>> figs = [Figure(figsize=(2, 2)), Figure(figsize=(3, 2))]
        >>> path = save_side_by_side(figs, os.path.join(tempfile.mkdtemp(), "both.png"))
        >>> os.path.getsize(path) > 0
        True
    """
    if not figures:
        raise ValueError("`figures` is empty.")
    panels = [_pixels(fig) for fig in figures]
    columns = columns or len(panels)
    height = max(p.shape[0] for p in panels)
    width = max(p.shape[1] for p in panels)
    padded = [
        np.pad(p, ((0, height - p.shape[0]), (0, width - p.shape[1]), (0, 0)), constant_values=255)
        for p in panels
    ]
    blank = np.full_like(padded[0], 255)
    rows = []
    for start in range(0, len(padded), columns):
        row = padded[start : start + columns]
        row += [blank] * (columns - len(row))
        rows.append(np.concatenate(row, axis=1))
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    imsave(path, np.concatenate(rows, axis=0))
    return path
