"""Symmetric linear operators on flat parameter vectors, known only through their products.

The estimators of :mod:`~lightning_landscape.core.linalg.spectrum` take ``A: Tensor | LinearOperator``
(or a plain ``matvec`` callable with its dimension). An operator has a ``shape``, a ``device`` and a
``dtype``, multiplies vectors (``A @ v``) and columns (``A @ V``), and can be written out
(``A.dense()``, for tests and tiny models). The forms the instruments need are built from it, not
from lambdas:

- ``c * A`` (:class:`ScaledShifted`): a scaled operator, e.g. the prior-scaled Hessian.
- ``A.shifted(s)`` (:class:`ScaledShifted`): ``A + s I``, e.g. ``c H + I`` of the evidence's
  log-determinant.
- ``A.sandwiched(d)`` (:class:`Sandwiched`): ``D A D`` with ``D = diag(d)``, e.g. the
  filter-normalized Hessian.

:class:`~lightning_landscape.core.linalg.hessian.HessianOperator` and
:class:`~lightning_landscape.core.linalg.hessian.GGNOperator` are operators of this kind over an
:class:`~lightning_landscape.core.linalg._risk.EmpiricalRisk`.

Example:
    >>> a = MatrixOperator(torch.diag(torch.tensor([1.0, 2.0, 3.0])))
    >>> (2 * a).shifted(1.0) @ torch.ones(3)
    tensor([3., 5., 7.])
    >>> a.sandwiched(torch.tensor([1.0, 1.0, 2.0])).dense().diagonal()
    tensor([ 1.,  2., 12.])
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = [
    "as_operator",
    "LinearOperator",
    "MatrixOperator",
    "Operand",
    "Sandwiched",
    "ScaledShifted",
]


class LinearOperator:
    """A square linear map on vectors of length :attr:`dim`, given by :meth:`matvec`.

    Subclasses set ``dim``, ``device`` and ``dtype`` and implement :meth:`matvec`; everything else
    (``@``, scaling, shifting, ``dense()``) comes from here.
    """

    dim: int
    device: torch.device
    dtype: torch.dtype

    @property
    def shape(self) -> tuple[int, int]:
        """``(dim, dim)``."""
        return (self.dim, self.dim)

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``A v`` for a flat vector ``v`` of length :attr:`dim`."""
        raise NotImplementedError

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        return self.matvec(v)

    def __matmul__(self, other: torch.Tensor) -> torch.Tensor:
        """``A v`` for a vector, ``A V`` column by column for a ``(dim, m)`` matrix."""
        if other.ndim == 1:
            return self.matvec(other)
        if other.ndim == 2:
            return torch.stack([self.matvec(column) for column in other.T], dim=1)
        raise ValueError(f"an operator multiplies vectors or matrices, got a {other.ndim}-D tensor.")

    def __mul__(self, scale: float) -> ScaledShifted:
        return ScaledShifted(self, scale=float(scale))

    __rmul__ = __mul__

    def shifted(self, shift: float) -> ScaledShifted:
        """``A + shift · I``."""
        return ScaledShifted(self, shift=float(shift))

    def sandwiched(self, diagonal: torch.Tensor) -> Sandwiched:
        """``D A D`` with ``D = diag(diagonal)``."""
        return Sandwiched(self, diagonal)

    def dense(self) -> torch.Tensor:
        """The full ``dim × dim`` matrix, by ``dim`` products with the unit vectors (tests and tiny
        models only)."""
        eye = torch.eye(self.dim, device=self.device, dtype=self.dtype)
        return torch.stack([self.matvec(eye[i]) for i in range(self.dim)], dim=1)


class MatrixOperator(LinearOperator):
    """A dense symmetric matrix as an operator."""

    def __init__(self, matrix: torch.Tensor) -> None:
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"`A` must be a square matrix, got shape {tuple(matrix.shape)}.")
        self.matrix = matrix
        self.dim = matrix.shape[0]
        self.device = matrix.device
        self.dtype = matrix.dtype

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self.matrix @ v.to(self.dtype)

    def dense(self) -> torch.Tensor:
        return self.matrix


class _Function(LinearOperator):
    """A ``matvec`` callable of a known dimension as an operator."""

    def __init__(self, matvec: Callable[[torch.Tensor], torch.Tensor], dim: int, device, dtype) -> None:
        self._matvec = matvec
        self.dim = int(dim)
        self.device = torch.device(device)
        self.dtype = dtype

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self._matvec(v)


class ScaledShifted(LinearOperator):
    """``scale · A + shift · I``."""

    inner: LinearOperator
    scale: float
    shift: float

    def __init__(self, inner: LinearOperator, *, scale: float = 1.0, shift: float = 0.0) -> None:
        if isinstance(inner, ScaledShifted):  # fold nested forms: c (a A + b I) + s I
            scale, shift = scale * inner.scale, scale * inner.shift + shift
            inner = inner.inner
        self.inner, self.scale, self.shift = inner, scale, shift
        self.dim, self.device, self.dtype = inner.dim, inner.device, inner.dtype

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        out = self.inner.matvec(v)
        if self.scale != 1.0:
            out = self.scale * out
        return out + self.shift * v if self.shift != 0.0 else out


class Sandwiched(LinearOperator):
    """``D A D`` with ``D = diag(diagonal)``."""

    def __init__(self, inner: LinearOperator, diagonal: torch.Tensor) -> None:
        if diagonal.shape != (inner.dim,):
            raise ValueError(f"the diagonal must have shape ({inner.dim},), got {tuple(diagonal.shape)}.")
        self.inner, self.diagonal = inner, diagonal
        self.dim, self.device, self.dtype = inner.dim, inner.device, inner.dtype

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self.diagonal * self.inner.matvec(self.diagonal * v)


Operand = torch.Tensor | LinearOperator | Callable[[torch.Tensor], torch.Tensor]


def as_operator(
    A: Operand,
    dim: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> LinearOperator:
    """``A`` as a :class:`LinearOperator`: an operator as it is, a square tensor as a
    :class:`MatrixOperator`, a ``matvec`` callable with its ``dim`` (vectors on ``device`` in
    ``dtype``, by default the CPU and float32).

    Raises:
        TypeError: ``A`` is none of these.
        ValueError: a callable without ``dim``, or a ``dim`` that contradicts the operator's.
    """
    if isinstance(A, torch.Tensor):
        op: LinearOperator = MatrixOperator(A)
    elif isinstance(A, LinearOperator):
        op = A
    elif callable(A):
        if dim is None:
            raise ValueError("`dim` is required when `A` is a matvec callable.")
        return _Function(A, dim, device or "cpu", dtype or torch.float32)
    else:
        raise TypeError(
            f"`A` must be a tensor, a LinearOperator or a matvec callable, got {type(A).__name__}."
        )
    if dim is not None and dim != op.dim:
        raise ValueError(f"`dim` is {dim}, but the operator has dimension {op.dim}.")
    return op
