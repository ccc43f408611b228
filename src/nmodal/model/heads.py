"""Per-modality projection heads.

The paper's head (default): ``Linear(d_in, p) -> GELU -> Linear(p, p) -> Dropout -> +
residual (the first Linear's output) -> LayerNorm``. With ``standardize`` (default) the
input is first centred and scaled, ``(x - mean) * scale``, by statistics of the training
features fixed before training (buffers saved with the weights, see
:meth:`ProjectionHead.set_input_statistics`): frozen encoders' features often share a
large common component (the demo's text features: mean norm 0.92 of 1.0), which a random
first layer would otherwise mostly map to the same point for every post. Depth, width and dropout are
configurable: ``depth`` counts GELU+Linear blocks after the first projection. Dropout is
:class:`~nmodal.ops.dropout.FastDropout` (cheaper CPU masks than ``nn.Dropout``) and
the linears :class:`~nmodal.ops.cpu_matmul.Linear` (oneDNN float32 products on CPUs).

Example:
    >>> head = ProjectionHead(768, HeadConfig(projection_dim=256))
    >>> head(torch.randn(4, 768)).shape
    torch.Size([4, 256])
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
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
    # centre the input and scale it to unit mean variance per dimension (statistics of the
    # training features); models saved before this option existed load with False
    standardize: bool = True

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
    input_mean: torch.Tensor  # buffers, present with ``standardize``
    input_scale: torch.Tensor

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
        self.standardize = cfg.standardize
        if cfg.standardize:  # identity until set_input_statistics
            self.register_buffer("input_mean", torch.zeros(input_dim))
            self.register_buffer("input_scale", torch.ones(()))

    @torch.no_grad()
    def set_input_statistics(self, features: np.ndarray) -> None:
        """Centre inputs by the mean of ``features`` (rows: training artifacts) and scale
        them by ``1 / sqrt(mean variance per dimension)`` (one scalar: the directions keep
        their relative scales); a constant input keeps scale 1. No-op without
        ``standardize``."""
        if not self.standardize:
            return
        x = np.asarray(features, np.float64)
        mean = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
        var = float(((x - mean) ** 2).mean()) if len(x) else 0.0
        self.set_input_moments(mean, var)

    def set_input_moments(self, mean: np.ndarray, var: float) -> None:
        """Centre inputs by ``mean`` and scale them by ``1 / sqrt(var)`` (``var``: the mean
        variance per dimension, measured elsewhere, e.g. in chunks); ``var <= 0`` keeps
        scale 1. No-op without ``standardize``."""
        if not self.standardize:
            return
        self.input_mean.copy_(torch.from_numpy(np.asarray(mean, np.float64)))
        self.input_scale.fill_(1.0 / math.sqrt(var) if var > 0 else 1.0)

    def standardized(self, x: torch.Tensor) -> torch.Tensor:
        """The input as the first linear layer sees it."""
        if not self.standardize:
            return x
        return (x - self.input_mean) * self.input_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projected = self.projection(self.standardized(x))
        h = self.dropout(self.blocks(projected))
        if self.residual:
            h = h + projected
        return self.norm(h)
