"""A 2D landscape as a surface mesh: VTK XML files for ParaView and vertex/face arrays for TensorBoard.

The surface has one vertex per grid point, ``(x, y, z) = (a, b, loss(a, b))`` (or log10 of the loss),
and two triangles per grid cell. Diverged points (NaN/inf) keep their place in the grid with ``z``
set to the largest finite value and a ``finite`` point array of 0, so the mesh stays whole and a
viewer can threshold them away.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Literal

import numpy as np

from .core.base.results import LandscapeResult

__all__ = ["export_vtk", "surface_mesh"]


def _heights(result: LandscapeResult, log_scale: bool) -> tuple[np.ndarray, np.ndarray]:
    if result.dims != 2:
        raise ValueError(f"a surface needs a 2D landscape, got dims={result.dims}.")
    loss = result.loss.numpy().astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(loss > 0, np.log10(loss), np.nan) if log_scale else loss
    finite = np.isfinite(z)
    fill = z[finite].max() if finite.any() else 0.0
    return np.where(finite, z, fill), finite


def surface_mesh(
    result: LandscapeResult, *, log_scale: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(vertices [N, 3] float32, faces [F, 3] int32, finite [N] bool)`` of a 2D landscape.

    Vertices are in row-major grid order (first coordinate slowest), ``N = n₀·n₁`` and
    ``F = 2·(n₀−1)·(n₁−1)``.

    Example:
        >>> import torch
        >>> from lightning_landscape import compute_landscape
        >>> net = torch.nn.Linear(3, 2)
        >>> data = [(torch.randn(8, 3), torch.randint(0, 2, (8,)))]
        >>> vertices, faces, finite = surface_mesh(compute_landscape(net, data, num_points=4))
        >>> vertices.shape, faces.shape, bool(finite.all())
        ((16, 3), (18, 3), True)
    """
    z, finite = _heights(result, log_scale)
    a, b = np.meshgrid(result.coords[0].numpy(), result.coords[1].numpy(), indexing="ij")
    vertices = np.stack([a.ravel(), b.ravel(), z.ravel()], axis=1).astype(np.float32)
    n0, n1 = z.shape
    index = np.arange(n0 * n1).reshape(n0, n1)
    corner = index[:-1, :-1].ravel()
    right, below, diagonal = corner + 1, corner + n1, corner + n1 + 1
    faces = np.concatenate(
        [np.stack([corner, below, right], axis=1), np.stack([right, below, diagonal], axis=1)]
    ).astype(np.int32)
    return vertices, faces, finite.ravel()


def _data_array(parent: ET.Element, name: str | None, values: np.ndarray, kind: str, components: int = 1):
    attributes = {"type": kind, "format": "ascii"}
    if name is not None:
        attributes["Name"] = name
    if components > 1:
        attributes["NumberOfComponents"] = str(components)
    array = ET.SubElement(parent, "DataArray", attributes)
    array.text = " ".join(repr(float(v)) if kind.startswith("Float") else str(int(v)) for v in values.ravel())


def export_vtk(
    result: LandscapeResult,
    path: str | os.PathLike[str],
    *,
    log_scale: bool = False,
    kind: Literal["vts", "vtp"] | None = None,
) -> str:
    """Write a 2D landscape as a VTK XML surface: ``.vts`` (structured grid) or ``.vtp`` (polygons).

    Point arrays: ``loss`` (as computed, NaN where diverged), ``accuracy`` (when recorded) and
    ``finite``. The kind follows the file extension unless given. Open the file in ParaView, as
    with the ``.vtp`` files of Li et al.'s code.

    Returns:
        The path written.
    """
    path = os.fspath(path)
    chosen = kind or os.path.splitext(path)[1].lstrip(".").lower()
    if chosen not in ("vts", "vtp"):
        raise ValueError(f"`kind` must be 'vts' or 'vtp' (or a path ending so), got {chosen!r}.")
    vertices, faces, finite = surface_mesh(result, log_scale=log_scale)
    n0, n1 = result.loss.shape
    grid_type = "StructuredGrid" if chosen == "vts" else "PolyData"
    root = ET.Element("VTKFile", {"type": grid_type, "version": "0.1", "byte_order": "LittleEndian"})
    if chosen == "vts":
        extent = f"0 {n1 - 1} 0 {n0 - 1} 0 0"  # VTK's x index varies fastest: our second axis
        piece = ET.SubElement(
            ET.SubElement(root, grid_type, {"WholeExtent": extent}), "Piece", {"Extent": extent}
        )
    else:
        piece = ET.SubElement(
            ET.SubElement(root, grid_type),
            "Piece",
            {"NumberOfPoints": str(len(vertices)), "NumberOfPolys": str(len(faces))},
        )
    point_data = ET.SubElement(piece, "PointData", {"Scalars": "loss"})
    _data_array(point_data, "loss", result.loss.numpy(), "Float64")
    if result.accuracy is not None:
        _data_array(point_data, "accuracy", result.accuracy.numpy(), "Float64")
    _data_array(point_data, "finite", finite.astype(np.uint8), "UInt8")
    _data_array(ET.SubElement(piece, "Points"), "Points", vertices, "Float32", components=3)
    if chosen == "vtp":
        polys = ET.SubElement(piece, "Polys")
        _data_array(polys, "connectivity", faces, "Int32")
        _data_array(polys, "offsets", 3 * np.arange(1, len(faces) + 1), "Int32")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path
