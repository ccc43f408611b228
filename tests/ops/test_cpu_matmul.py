"""oneDNN float32 products: same values and gradients as torch's, fallbacks elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nmodal.ops import cpu_matmul
from nmodal.ops.cpu_matmul import Linear, linear, matmul_nt, onednn_enabled


def grads(fn, *tensors):
    leaves = [t.detach().clone().requires_grad_(t.requires_grad) for t in tensors]
    out = fn(*leaves)
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(5))
    (out * weight).sum().backward()
    return out.detach(), [t.grad for t in leaves]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("input_grad", [True, False])
def test_linear_matches_f_linear_with_gradients(bias, input_grad):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(37, 50, generator=g).requires_grad_(input_grad)
    w = torch.randn(20, 50, generator=g).requires_grad_()
    b = torch.randn(20, generator=g).requires_grad_() if bias else None
    args = (x, w) if b is None else (x, w, b)
    out, got = grads(linear, *args)
    ref_out, ref = grads(F.linear, *args)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    for a, r in zip(got, ref, strict=True):
        if r is None:
            assert a is None
        else:
            torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("lead", [(), (3,), (2, 3)])
def test_matmul_nt_matches_matmul_with_gradients(lead):
    g = torch.Generator().manual_seed(1)
    a = torch.randn(*lead, 16, 32, generator=g).requires_grad_()
    b = torch.randn(*lead, 24, 32, generator=g).requires_grad_()
    out, got = grads(matmul_nt, a, b)
    ref_out, ref = grads(lambda x, y: torch.matmul(x, y.transpose(-1, -2)), a, b)
    assert out.shape == (*lead, 16, 24)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    for x, r in zip(got, ref, strict=True):
        torch.testing.assert_close(x, r, rtol=1e-5, atol=1e-4)


def test_strided_views_are_multiplied_correctly():
    a = torch.randn(40, 30)
    c = torch.randn(40, 20)
    torch.testing.assert_close(linear(a.t(), c.t()), a.t() @ c, rtol=1e-5, atol=1e-5)


def test_mismatched_shapes_get_torchs_error():
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        linear(torch.randn(4, 8), torch.randn(3, 7))
    with pytest.raises(RuntimeError):
        matmul_nt(torch.randn(2, 4, 8), torch.randn(2, 3, 7))


@pytest.mark.skipif(not onednn_enabled(), reason="oneDNN path not available here")
def test_fallbacks_leave_torch_in_charge(monkeypatch):
    calls: list[int] = []
    real = cpu_matmul._nt
    monkeypatch.setattr(cpu_matmul, "_nt", lambda *a: calls.append(1) or real(*a))
    x, w = torch.randn(4, 8), torch.randn(3, 8)
    linear(x, w)
    assert calls == [1]
    linear(x.double(), w.double())  # other dtypes
    linear(x[None], w)  # batched input
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert linear(x, w).dtype == torch.bfloat16
    matmul_nt(torch.randn(2, 4, 8).double(), torch.randn(2, 3, 8).double())
    assert calls == [1]


def test_linear_module_is_an_nn_linear_with_the_same_state_dict():
    torch.manual_seed(0)
    plain = nn.Linear(6, 4)
    fast = Linear(6, 4)
    assert isinstance(fast, nn.Linear)
    assert fast.state_dict().keys() == plain.state_dict().keys()
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(5, 6)
    torch.testing.assert_close(fast(x), plain(x), rtol=1e-5, atol=1e-6)


def test_environment_switch_turns_it_off():
    code = "from nmodal.ops.cpu_matmul import onednn_enabled; print(onednn_enabled())"
    env = {**os.environ, "NMODAL_ONEDNN": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize(
    "a_shape, b_shape",
    [((0, 8), (3, 8)), ((5, 8), (0, 8)), ((3, 0, 8), (3, 4, 8)), ((0, 4, 8), (0, 2, 8))],
)
def test_empty_operands(a_shape, b_shape):
    a, b = torch.randn(a_shape), torch.randn(b_shape)
    expected = torch.matmul(a, b.transpose(-1, -2))
    assert matmul_nt(a, b).shape == expected.shape
    if a.dim() == 2:
        assert linear(a, b).shape == expected.shape
