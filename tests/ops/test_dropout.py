"""FastDropout: drop rate, scaling, gradients and reproducibility like nn.Dropout."""

from __future__ import annotations

import pytest
import torch

from nmodal.ops.dropout import FastDropout


def test_drop_rate_and_scale_match_inverted_dropout():
    torch.manual_seed(0)
    d = FastDropout(0.1).train()
    y = d(torch.ones(2000, 1000))
    dropped = float((y == 0).float().mean())
    # 2M draws: the binomial standard deviation of the rate is 2e-4
    assert abs(dropped - d.p_used) < 1e-3
    assert abs(d.p_used - 0.1) < 1e-5
    kept = y[y != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - d.p_used)))
    assert abs(float(y.mean()) - 1.0) < 2e-3  # expectation preserved


def test_masks_are_independent_across_calls_and_elements():
    torch.manual_seed(0)
    d = FastDropout(0.5).train()
    a = d(torch.ones(500, 400)) == 0
    b = d(torch.ones(500, 400)) == 0
    # independent draws agree on half of the elements, neighbours likewise
    assert abs(float((a == b).float().mean()) - 0.5) < 0.01
    assert abs(float((a[:, 1:] == a[:, :-1]).float().mean()) - 0.5) < 0.01


def test_gradient_is_the_mask_times_the_scale():
    torch.manual_seed(1)
    d = FastDropout(0.3).train()
    x = torch.randn(64, 32, requires_grad=True)
    y = d(x)
    y.sum().backward()
    mask = (y != 0).float()
    torch.testing.assert_close(x.grad, mask / (1 - d.p_used))
    torch.testing.assert_close(y, x.detach() * mask / (1 - d.p_used))


def test_seeded_by_torch_manual_seed():
    def draw() -> torch.Tensor:
        torch.manual_seed(123)
        return FastDropout(0.2).train()(torch.ones(10, 10))

    assert torch.equal(draw(), draw())
    torch.manual_seed(124)
    assert not torch.equal(draw(), FastDropout(0.2).train()(torch.ones(10, 10)))


def test_eval_mode_and_zero_probability_are_the_identity():
    x = torch.randn(5, 7)
    assert FastDropout(0.5).eval()(x) is x
    assert FastDropout(0.0).train()(x) is x


def test_keeps_bfloat16_under_autocast():
    d = FastDropout(0.1).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert d(torch.ones(4, 4, dtype=torch.bfloat16)).dtype == torch.bfloat16


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_bad_probability(p):
    with pytest.raises(ValueError, match="dropout probability"):
        FastDropout(p)
