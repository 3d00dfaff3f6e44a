"""Hessians through scaled_dot_product_attention: a tiny causal Transformer language model with tied
embeddings, against the dense Hessian in float64.

The reference is ``torch.autograd.functional.hessian`` column by column (``vectorize=False``):
``torch.func.hessian`` (vmap over the basis) gives a wrong, asymmetric matrix through causal
attention's math kernel in torch 2.14 (off by 2.4 in ``H·v`` where finite differences of the
gradient and ``jvp(grad)`` agree with each other and with our products to 4e-8).
"""

from __future__ import annotations

import torch
from torch.autograd.functional import hessian
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel
from user_modules import TokenData, TransformerLanguageModel

from lightning_landscape import hessian_eigenvalues, hessian_trace


def _model_and_batches():
    torch.manual_seed(0)
    model = TransformerLanguageModel(vocab=5, width=4, heads=2, length=4).double().eval()
    tokens = TokenData(vocab=5, length=4).tokens()[:12]
    return model, [(tokens[:7],), (tokens[7:],)]


def _dense_hessian(model, batches) -> torch.Tensor:
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    total = sum(len(b[0]) for b in batches)

    def loss(theta):
        params = {n: t.view(s) for n, t, s in zip(names, theta.split(sizes), shapes)}
        per_batch = [functional_call(model, params, (b[0][:, :-1],)) for b in batches]
        losses = [
            torch.nn.functional.cross_entropy(logits.reshape(-1, 5), b[0][:, 1:].reshape(-1)) * len(b[0])
            for logits, b in zip(per_batch, batches)
        ]
        return sum(losses) / total

    with sdpa_kernel([SDPBackend.MATH]):
        return hessian(loss, flat, vectorize=False)


def test_eigenvalues_and_trace_through_attention_equal_the_dense_hessian():
    model, batches = _model_and_batches()
    dense = torch.linalg.eigvalsh(_dense_hessian(model, batches))
    step = lambda m, b: m.training_step(b, 0)  # noqa: E731  the module's own loss
    top = hessian_eigenvalues(model, batches, k=3, loss_fn=step, tol=1e-10, max_iter=200).eigenvalues
    torch.testing.assert_close(top, dense.flip(0)[:3], rtol=1e-6, atol=1e-9)
    bottom = hessian_eigenvalues(
        model, batches, k=1, which="smallest", loss_fn=step, tol=1e-10, max_iter=200
    ).eigenvalues
    torch.testing.assert_close(bottom, dense[:1], rtol=1e-6, atol=1e-9)
    trace = hessian_trace(model, batches, loss_fn=step, method="hutchinson", num_probes=400, seed=1)
    assert abs(trace.estimate - float(dense.sum())) < 4 * trace.stderr
