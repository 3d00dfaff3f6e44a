"""The reverse cross-entropy against float64 references and in float32 extremes (issue 5, item 1)."""

import torch

from lightning_landscape.core.base.losses import reverse_cross_entropy


def test_matches_float64_definition_on_random_inputs():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 7, generator=g, dtype=torch.float64) * 3
    target = torch.randint(0, 7, (200,), generator=g)
    reference = -torch.log(1 - logits.softmax(-1)[torch.arange(200), target])
    torch.testing.assert_close(
        reverse_cross_entropy(logits, target, reduction="none"), reference, rtol=1e-12, atol=1e-12
    )
    torch.testing.assert_close(reverse_cross_entropy(logits, target), reference.mean())


def test_finite_loss_and_gradient_when_the_target_probability_is_one_in_float32():
    logits = torch.tensor([[1e4, 0.0, -3.0], [0.0, 1e4, 1.0]], requires_grad=True)
    target = torch.tensor([0, 1])
    naive = -torch.log(1 - logits.softmax(-1)[torch.arange(2), target])
    assert torch.isinf(naive).all()  # why the stable form exists
    loss = reverse_cross_entropy(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert float(loss) > 9000


def test_two_classes_equal_cross_entropy_with_flipped_labels():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(50, 2, generator=g, dtype=torch.float64)
    target = torch.randint(0, 2, (50,), generator=g)
    flipped = torch.nn.functional.cross_entropy(logits, 1 - target)
    torch.testing.assert_close(reverse_cross_entropy(logits, target), flipped)
