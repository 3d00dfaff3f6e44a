"""Curvature per layer (issue 19, item 1): the eigenvalues, trace and density of each diagonal block of
the Hessian, against the dense Hessian's diagonal blocks of a small MLP and a small CNN with BatchNorm."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lightning_landscape as ll
from lightning_landscape.core.curvature.blocks import Blockwise, parameter_blocks


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return (
        nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).double().eval()
    )


def _bn_cnn() -> nn.Module:
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 16, 3)
    ).double()
    model.train()
    with torch.no_grad():  # running statistics that are not the identity
        for _ in range(3):
            model(torch.randn(8, 1, 4, 4, dtype=torch.float64) * 2 + 0.5)
    return model.eval()


def _data(model: nn.Module):
    torch.manual_seed(2)
    shape = (20, 4) if isinstance(model[0], nn.Linear) else (20, 1, 4, 4)
    x = torch.randn(*shape, dtype=torch.float64)
    y = torch.randint(0, 3, (20,))
    return x, y, [(x[:12], y[:12]), (x[12:], y[12:])]


def _dense_blocks(model: nn.Module, x, y, blocks: dict[str, list[str]]) -> dict[str, torch.Tensor]:
    """Each block's diagonal block of the dense Hessian of the mean cross-entropy (autograd)."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = dict(model.named_buffers())
    out = {}
    for block, names in blocks.items():

        def loss(*chosen, names=names):
            tensors = {**params, **buffers, **dict(zip(names, chosen))}
            return nn.functional.cross_entropy(torch.func.functional_call(model, tensors, (x,)), y)

        parts = torch.autograd.functional.hessian(loss, tuple(params[n] for n in names))
        sizes = [params[n].numel() for n in names]
        rows = [
            torch.cat([parts[i][j].reshape(sizes[i], sizes[j]) for j in range(len(names))], 1)
            for i in range(len(names))
        ]
        out[block] = torch.cat(rows, 0)
    return out


# a block's smallest eigenvalue can be exactly 0 (a ReLU layer's), where no relative tolerance is met
@pytest.mark.filterwarnings("ignore:hessian_eigenvalues. Lanczos stopped:RuntimeWarning")
@pytest.mark.parametrize("make", [_mlp, _bn_cnn], ids=["mlp", "bn_cnn"])
def test_per_module_eigenvalues_traces_and_densities_equal_the_dense_diagonal_blocks(make):
    model = make()
    x, y, batches = _data(model)
    blocks = parameter_blocks(model, "module")
    assert len(blocks) == 3  # three linear layers; or convolution, BatchNorm, linear
    dense = _dense_blocks(model, x, y, blocks)
    top = ll.blockwise(
        ll.hessian_eigenvalues, model, batches, blocks="module", k=1, which="both", tol=1e-6, max_iter=200
    )
    trace = ll.blockwise(ll.hessian_trace, model, batches, blocks="module")
    density = ll.blockwise(ll.hessian_density, model, batches, blocks="module", num_probes=1, num_steps=200)
    assert isinstance(top, Blockwise) and top.blocks == blocks and list(trace.results) == list(blocks)
    for block, matrix in dense.items():
        exact = torch.linalg.eigvalsh(matrix)
        torch.testing.assert_close(
            top[block].eigenvalues, torch.stack([exact[-1], exact[0]]), rtol=1e-4, atol=1e-8
        )
        assert trace[block].method == "exact_ggn"  # ReLU networks: tr GGN = tr H, block by block
        assert trace[block].estimate == pytest.approx(float(matrix.trace()), rel=1e-4)
        nodes = density[block].quadrature.nodes[0]
        assert float(nodes.max()) == pytest.approx(
            float(exact[-1]), rel=1e-4
        )  # full Lanczos: exact Ritz values
    whole = ll.hessian_trace(model, batches).estimate
    assert sum(t.estimate for t in trace.results.values()) == pytest.approx(whole, rel=1e-6)
    scalars = top.scalars()
    assert set(scalars) >= {
        f"num_matvecs/{b}" for b in blocks
    }  # <name>/<block>, as per_layer/<measure>/<block>


def test_a_stochastic_trace_per_block_is_exact_when_the_sketch_spans_the_block():
    model = _mlp()
    x, y, batches = _data(model)
    blocks = {"hidden": ["0.*", "2.*"], "head": ["4.weight"]}
    dense = _dense_blocks(model, x, y, parameter_blocks(model, blocks))
    most = max(m.shape[0] for m in dense.values())
    trace = ll.blockwise(
        ll.hessian_trace, model, batches, blocks=blocks, method="hutch++", num_probes=3 * most
    )
    for block, matrix in dense.items():
        assert trace[block].estimate == pytest.approx(float(matrix.trace()), rel=1e-6)


def test_partitions_are_checked_and_named():
    model = _mlp()
    assert list(parameter_blocks(model, "parameter")) == [n for n, _ in model.named_parameters()]
    assert parameter_blocks(model, "module", names=["2.weight", "4.bias"]) == {
        "2": ["2.weight"],
        "4": ["4.bias"],
    }
    _, _, batches = _data(model)
    with pytest.raises(
        ValueError, match=r"`blocks\['head'\]` \(\['head\.\*'\]\) matches no trainable parameter"
    ):
        ll.blockwise(ll.hessian_trace, model, batches, blocks={"head": ["head.*"]})
    with pytest.raises(ValueError, match="parameter '0.weight' is in both 'a' and 'b'"):
        ll.blockwise(ll.hessian_eigenvalues, model, batches, blocks={"a": ["0.*"], "b": ["*.weight"]})
    with pytest.raises(ValueError, match="`blocks` must be 'module', 'parameter' or a non-empty mapping"):
        ll.blockwise(ll.hessian_density, model, batches, blocks="layer")
    with pytest.raises(
        ValueError, match=r"`blocks\['a'\]` must be a non-empty list of parameter-name patterns"
    ):
        ll.blockwise(ll.hessian_trace, model, batches, blocks={"a": "0.*"})


def test_a_blockwise_result_saves_and_loads_back(tmp_path):
    model = _mlp()
    _, _, batches = _data(model)
    result = ll.blockwise(ll.hessian_eigenvalues, model, batches, blocks="module", k=2, max_iter=20)
    loaded = Blockwise.load(result.save(tmp_path / "blocks.npz"))
    assert loaded.blocks == result.blocks
    for block in result.blocks:
        assert torch.equal(loaded[block].eigenvalues, result[block].eigenvalues)
    assert loaded.scalars() == result.scalars()
