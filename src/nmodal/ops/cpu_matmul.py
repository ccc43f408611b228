"""Float32 matrix products on x86 CPUs through oneDNN instead of MKL.

torch multiplies float32 matrices on the CPU with MKL, which on AMD processors runs its
AVX2 kernels: on a Zen 5 core ~100 GFLOP/s, where oneDNN's AVX-512 kernels reach ~200
for the same products (``bench/bench_train.py``; the head and loss shapes of a training
step). :func:`linear` and :func:`matmul_nt` route float32 CPU products through oneDNN
(``torch.ops.mkldnn._linear_pointwise``, the kernel torch's own compiler emits for CPU
linears) with their gradients computed the same way; anything else (GPU tensors, other
dtypes, autocast regions, other architectures, a torch without the op) takes the ordinary
``F.linear`` / ``torch.matmul``. Results equal torch's to float32 rounding (the sums run
in another order). Set ``NMODAL_ONEDNN=0`` to use torch's products everywhere.

Example:
    >>> x, w = torch.randn(4, 8), torch.randn(3, 8)
    >>> torch.allclose(linear(x, w), x @ w.T, atol=1e-5)
    True
"""

from __future__ import annotations

import os
import platform
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _onednn_linear_op() -> Any:
    if os.environ.get("NMODAL_ONEDNN", "1") == "0":
        return None
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    if not torch.backends.mkldnn.is_available():
        return None
    return getattr(torch.ops.mkldnn, "_linear_pointwise", None)


_OP = _onednn_linear_op()


def onednn_enabled() -> bool:
    """Whether float32 CPU products go through oneDNN in this process."""
    return _OP is not None


def _nt(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b.T (+ bias)`` for 2-D float32 CPU tensors, by oneDNN (strided views allowed)."""
    result: torch.Tensor = _OP(a, b, bias, "none", [], "")
    return result


class _LinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _nt(x, weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        grad_x = _nt(grad, weight.t()) if ctx.needs_input_grad[0] else None
        grad_w = _nt(grad.t(), x.t()) if ctx.needs_input_grad[1] else None
        grad_b = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


def _use_onednn(*tensors: torch.Tensor) -> bool:
    return (
        _OP is not None
        and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
        and not torch.is_autocast_enabled("cpu")
    )


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``; by oneDNN for 2-D float32 CPU tensors."""
    tensors = (x, weight) if bias is None else (x, weight, bias)
    if x.dim() == 2 and x.shape[1] == weight.shape[-1] and _use_onednn(*tensors):
        out: torch.Tensor = _LinearFunction.apply(x, weight, bias)
        return out
    return F.linear(x, weight, bias)


def matmul_nt(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b.transpose(-1, -2)`` for ``(..., n, d)`` and ``(..., m, d)`` tensors; float32
    CPU batches go through oneDNN one matrix at a time."""
    if a.dim() < 2 or a.shape[:-2] != b.shape[:-2] or a.shape[-1] != b.shape[-1]:
        return torch.matmul(a, b.transpose(-1, -2))  # torch's errors for bad shapes
    if not _use_onednn(a, b) or a.numel() == 0 or b.numel() == 0:
        return torch.matmul(a, b.transpose(-1, -2))
    if a.dim() == 2:
        out: torch.Tensor = _LinearFunction.apply(a, b, None)
        return out
    lead = a.shape[:-2]
    pairs = zip(
        a.reshape(-1, *a.shape[-2:]).unbind(0), b.reshape(-1, *b.shape[-2:]).unbind(0), strict=True
    )
    products = [_LinearFunction.apply(x, y, None) for x, y in pairs]
    return torch.stack(products).reshape(*lead, a.shape[-2], b.shape[-2])


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters and state-dict keys) computed by :func:`linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)
