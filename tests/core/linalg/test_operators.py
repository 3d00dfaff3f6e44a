"""The operator type (core/operators.py) against dense matrices, and the estimators taking one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_landscape.core.base.params import gradient_context
from lightning_landscape.core.linalg.hessian import GGNOperator, HessianOperator
from lightning_landscape.core.linalg.operators import LinearOperator, MatrixOperator, as_operator
from lightning_landscape.core.linalg.spectrum import hutchinson_trace, lanczos_eigenpairs, slq_nodes


def _symmetric(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    return a + a.T


def test_scaled_shifted_and_sandwiched_forms_equal_their_dense_matrices():
    a = _symmetric(7)
    d = torch.linspace(0.5, 2.0, 7, dtype=torch.float64)
    op = MatrixOperator(a)
    torch.testing.assert_close((3.0 * op).dense(), 3.0 * a)
    torch.testing.assert_close(
        (op * 3.0).shifted(2.0).dense(), 3.0 * a + 2.0 * torch.eye(7, dtype=torch.float64)
    )
    torch.testing.assert_close(op.sandwiched(d).dense(), torch.diag(d) @ a @ torch.diag(d))
    nested = (2.0 * (op.shifted(1.0))).shifted(0.5)  # 2 (A + I) + 0.5 I, folded into one form
    torch.testing.assert_close(nested.dense(), 2.0 * a + 2.5 * torch.eye(7, dtype=torch.float64))
    assert nested.inner is op and nested.shape == (7, 7)
    v = torch.randn(7, 3, dtype=torch.float64)
    torch.testing.assert_close(op.sandwiched(d) @ v, torch.diag(d) @ a @ torch.diag(d) @ v)


def test_as_operator_takes_a_tensor_an_operator_or_a_callable_and_refuses_the_rest():
    a = _symmetric(4)
    assert isinstance(as_operator(a), MatrixOperator)
    op = MatrixOperator(a)
    assert as_operator(op) is op
    wrapped = as_operator(lambda v: a @ v, 4, dtype=torch.float64)
    assert wrapped.shape == (4, 4) and wrapped.dtype == torch.float64
    torch.testing.assert_close(wrapped.dense(), a)
    with pytest.raises(ValueError, match="`dim` is required"):
        as_operator(lambda v: v)
    with pytest.raises(ValueError, match="`dim` is 5, but the operator has dimension 4"):
        as_operator(a, 5)
    with pytest.raises(TypeError, match="`A` must be a tensor, a LinearOperator or a matvec callable"):
        as_operator("A")
    with pytest.raises(ValueError, match="square matrix"):
        MatrixOperator(torch.zeros(2, 3))


def test_estimators_give_the_same_numbers_for_a_tensor_an_operator_and_a_callable():
    a = _symmetric(30, seed=1)
    forms = [a, MatrixOperator(a), (lambda v: a @ v)]
    lanczos = [lanczos_eigenpairs(f, 30, k=2, which="both", dtype=torch.float64).eigenvalues for f in forms]
    traces = [hutchinson_trace(f, 30, num_probes=5, dtype=torch.float64).estimate for f in forms]
    nodes = [slq_nodes(f, 30, num_probes=2, num_steps=10, dtype=torch.float64).nodes for f in forms]
    for values in (lanczos, nodes):
        for other in values[1:]:
            torch.testing.assert_close(other, values[0])
    assert traces[0] == traces[1] == traces[2]
    exact = torch.linalg.eigvalsh(a)
    torch.testing.assert_close(lanczos[0], torch.stack([exact[-1], exact[-2], exact[0], exact[1]]))


def test_hessian_and_gauss_newton_operators_are_operators_of_the_dense_curvature():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    x, y = torch.randn(10, 3, dtype=torch.float64), torch.randint(0, 3, (10,))
    params = dict(model.named_parameters())

    def loss(*flat):
        tensors = dict(zip(params, flat))
        return nn.functional.cross_entropy(torch.func.functional_call(model, tensors, (x,)), y)

    blocks = torch.autograd.functional.hessian(loss, tuple(p.detach() for p in params.values()))
    sizes = [p.numel() for p in params.values()]
    rows = [
        torch.cat([blocks[i][j].reshape(sizes[i], sizes[j]) for j in range(len(sizes))], 1)
        for i in range(len(sizes))
    ]
    dense = torch.cat(rows, 0)
    with gradient_context(model):
        hessian = HessianOperator(model, [(x, y)], fold_batchnorm=False)
        ggn = GGNOperator(model, [(x, y)])
        assert isinstance(hessian, LinearOperator) and hessian.shape == dense.shape
        torch.testing.assert_close(hessian.dense(), dense)
        torch.testing.assert_close(
            (2.0 * hessian).shifted(1.0).dense(), 2.0 * dense + torch.eye(dense.shape[0], dtype=torch.float64)
        )
        g = ggn.dense()
    torch.testing.assert_close(g, g.T)
    assert (
        float(torch.linalg.eigvalsh(g).min()) > -1e-10
    )  # the Gauss-Newton matrix is PSD, the Hessian need not be
