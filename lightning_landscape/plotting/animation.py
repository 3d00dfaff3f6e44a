"""Animations: the optimizer's path growing over its PCA plane, and the landscape epoch by epoch,
as animated GIFs (Pillow, which matplotlib brings).

The frames are ordinary figures of :mod:`.trajectory` and :mod:`.landscape`, drawn on fixed axes
and colour scales so that only the path or the surface moves; :func:`write_gif` renders them once
each and writes the file whole (a temporary file, then a rename)."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..core.base.results import LandscapeResult
from ..core.landscapes.trajectory import TrajectoryResult
from .landscape import plot_landscape_1d, plot_landscape_contour
from .trajectory import plot_trajectory

__all__ = ["landscape_frames", "trajectory_frames", "write_gif"]


def trajectory_frames(result: TrajectoryResult, *, levels: int = 20, log_scale: bool = False) -> list[Figure]:
    """One frame per snapshot: the path up to it, over the final plane's contours.

    Example:
        >>> import torch
        >>> from lightning_landscape import trajectory_landscape
        >>> net = torch.nn.Linear(3, 2)
        >>> data = [(torch.randn(8, 3), torch.tensor([0, 1] * 4))]
        >>> path = [{n: p.detach() + 0.1 * i for n, p in net.named_parameters()} for i in range(4)]
        >>> len(trajectory_frames(trajectory_landscape(net, data, path, num_points=5)))
        4
    """
    return [
        plot_trajectory(result, levels=levels, log_scale=log_scale, upto=k) for k in range(len(result.epochs))
    ]


def landscape_frames(
    results: Sequence[LandscapeResult], *, levels: int = 20, log_scale: bool = False
) -> list[Figure]:
    """One frame per result (the landscapes of a monitor, epoch by epoch), every frame on the loss
    range of all of them: filled contours for 2D results, curves for 1D ones.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import compute_landscape
        >>> result = compute_landscape(net, data, num_points=3)
        >>> frames = landscape_frames([result, result])
        >>> len(frames)
        2
    """
    if not results:
        return []
    finite = np.concatenate([r.loss.numpy()[np.isfinite(r.loss.numpy())].ravel() for r in results])
    if log_scale:
        finite = np.log10(finite[finite > 0])
    bounds = (float(finite.min()), float(finite.max())) if finite.size else None
    frames = []
    for result in results:
        if result.dims == 1:
            figure = plot_landscape_1d(result, log_scale=log_scale)
            if bounds is not None and bounds[0] < bounds[1]:
                figure.axes[0].set_ylim(*bounds)
        else:
            figure = plot_landscape_contour(
                result, filled=True, levels=levels, log_scale=log_scale, vrange=bounds
            )
        frames.append(figure)
    return frames


def write_gif(
    frames: Sequence[Figure], path: str | os.PathLike[str], *, seconds_per_frame: float = 0.6
) -> str:
    """Render ``frames`` (closing them) into an animated GIF at ``path`` that loops; the file is
    written whole, under a temporary name, then renamed onto ``path``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import compute_landscape
        >>> result = compute_landscape(net, data, num_points=3)
        >>> import os, tempfile
        >>> frames = landscape_frames([result, result])
        >>> path = write_gif(frames, os.path.join(tempfile.mkdtemp(), "epochs.gif"))
        >>> os.path.getsize(path) > 0
        True
    """
    from PIL import Image

    if not frames:
        raise ValueError("`frames` is empty: an animation needs at least one figure.")
    images = []
    for figure in frames:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80)
        figure.clear()
        buffer.seek(0)
        images.append(Image.open(buffer).convert("RGB"))
    size = images[0].size
    images = [image if image.size == size else image.resize(size) for image in images]
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = f"{path}.{os.getpid()}.tmp"
    try:
        images[0].save(
            partial,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=int(seconds_per_frame * 1000),
            loop=0,
        )
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path
