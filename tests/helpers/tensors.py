"""Random tensors the loss tests share."""

from __future__ import annotations

import torch


def random_embeddings(
    num: int,
    batch: int,
    dim: int,
    seed: int = 0,
    scale: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> list[torch.Tensor]:
    """``num`` leaf tensors ``(batch, dim)`` of ``scale * N(0, 1)``, drawn in order from
    one seeded generator, each requiring a gradient."""
    gen = torch.Generator().manual_seed(seed)
    return [
        (scale * torch.randn(batch, dim, generator=gen, dtype=dtype)).requires_grad_()
        for _ in range(num)
    ]
