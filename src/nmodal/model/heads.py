"""Per-modality projection heads.

The paper's head (default): ``Linear(d_in, p) -> GELU -> Linear(p, p) -> Dropout -> +
residual (the first Linear's output) -> LayerNorm``. Depth, width and dropout are
configurable: ``depth`` counts GELU+Linear blocks after the first projection. Dropout is
:class:`~nmodal.ops.dropout.FastDropout` (cheaper CPU masks than ``nn.Dropout``) and
the linears :class:`~nmodal.ops.cpu_matmul.Linear` (oneDNN float32 products on CPUs).

Example:
    >>> head = ProjectionHead(768, HeadConfig(projection_dim=256))
    >>> head(torch.randn(4, 768)).shape
    torch.Size([4, 256])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from nmodal.errors import InputError
from nmodal.ops.cpu_matmul import Linear
from nmodal.ops.dropout import FastDropout


@dataclass(frozen=True)
class HeadConfig:
    projection_dim: int = 256
    depth: int = 1
    hidden_dim: int | None = None  # width of the inner blocks; default projection_dim
    dropout: float = 0.1
    residual: bool = True
    layer_norm: bool = True

    def __post_init__(self) -> None:
        if self.projection_dim < 1 or (self.hidden_dim is not None and self.hidden_dim < 1):
            raise InputError(
                f"projection_dim and hidden_dim must be >= 1, got {self.projection_dim} "
                f"and {self.hidden_dim}"
            )
        if self.depth < 0:
            raise InputError(f"head depth must be >= 0, got {self.depth}")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ProjectionHead(nn.Module):
    def __init__(self, input_dim: int, config: HeadConfig | None = None) -> None:
        super().__init__()
        cfg = config or HeadConfig()
        if input_dim <= 0:
            raise InputError(f"input_dim must be positive, got {input_dim}")
        p = cfg.projection_dim
        hidden = cfg.hidden_dim or p
        self.projection = Linear(input_dim, p)
        blocks: list[nn.Module] = []
        width = p
        for i in range(cfg.depth):
            out = p if i == cfg.depth - 1 else hidden
            blocks += [nn.GELU(), Linear(width, out)]
            width = out
        self.blocks = nn.Sequential(*blocks)
        self.dropout = FastDropout(cfg.dropout)
        self.residual = cfg.residual
        self.norm: nn.Module = nn.LayerNorm(p) if cfg.layer_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projected = self.projection(x)
        h = self.dropout(self.blocks(projected))
        if self.residual:
            h = h + projected
        return self.norm(h)
