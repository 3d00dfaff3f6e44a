"""Linear algebra of the loss: operators known through their products, and what is estimated
from them. Imports only :mod:`..base`.

- :mod:`.operators`: one ``LinearOperator`` type and its scaled, shifted and sandwiched forms.
- :mod:`.hessian`: the Hessian and Gauss-Newton operators of a model's loss over fixed batches.
- :mod:`.spectrum`: Lanczos, Hutchinson and Hutch++ traces, stochastic Lanczos quadrature.
- ``_risk`` (internal): the per-sample mean loss as a function of a flat parameter vector.
- ``_folding`` (internal): eval-mode BatchNorm folded into the layer before it.
- ``_exact_trace`` (internal): the exact Gauss-Newton trace of piecewise-linear networks.
"""

from .hessian import GGNOperator, HessianOperator
from .operators import LinearOperator, MatrixOperator, as_operator
from .spectrum import TraceEstimate, hutch_plus_plus_trace, hutchinson_trace, lanczos_eigenpairs, slq_nodes

__all__ = [
    "GGNOperator",
    "HessianOperator",
    "LinearOperator",
    "MatrixOperator",
    "TraceEstimate",
    "as_operator",
    "hutch_plus_plus_trace",
    "hutchinson_trace",
    "lanczos_eigenpairs",
    "slq_nodes",
]
