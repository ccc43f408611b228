"""SigLIP-style pairwise sigmoid loss, summed over modality pairs (Zhai et al., 2023).

For a pair of modalities ``(a, b)`` with ``a < b`` and logits
``l_ij = t * <z_a[i], z_b[j]> + bias`` (``t = 1 / tau``), every entry of the ``B x B``
matrix is an independent binary problem: label ``+1`` on the diagonal (same item) and
``-1`` elsewhere, loss ``-log sigmoid(label_ij * l_ij)``. As in the SigLIP paper the sum
over the matrix is divided by the batch size ``B``; the N-modal loss is the mean of that
over the ``C(M, 2)`` pairs. SigLIP's initialisation is the default: ``t' = log t = log 10``
(``temperature=0.1``) and ``bias = -10``, both learnable. The logit scale is clamped at
``max_logit_scale`` like the other losses.

Missing modalities: in pair ``(a, b)`` only the items having both artifacts form the
matrix; the pair contributes ``sum over its valid entries`` and is normalised by its number
of valid items, the pairs weighted by that number (with every item valid: the unmasked
value; all-True masks take the unmasked path).

Example:
    >>> loss = SigLIPLoss()
    >>> loss([torch.randn(8, 16), torch.randn(8, 16), torch.randn(8, 16)]).ndim
    0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nmodal.errors import InputError
from nmodal.losses._temperature import TemperatureLoss
from nmodal.losses._validate import stack_inputs
from nmodal.ops.cpu_matmul import matmul_nt


class SigLIPLoss(TemperatureLoss):
    """Pairwise sigmoid loss with learnable temperature and bias; see the module doc."""

    bias: torch.Tensor

    def __init__(
        self,
        temperature: float = 0.1,
        learn_temperature: bool = True,
        normalize: bool = True,
        bias: float = -10.0,
        learn_bias: bool = True,
        max_logit_scale: float = 100.0,
    ) -> None:
        super().__init__(temperature, learn_temperature, normalize, max_logit_scale)
        if not (isinstance(bias, (int, float)) and math.isfinite(bias)):
            raise InputError(f"bias must be a finite number, got {bias!r}")
        self.learn_bias = learn_bias
        init = torch.tensor(float(bias), dtype=torch.float32)
        if learn_bias:
            self.bias = nn.Parameter(init)
        else:
            self.register_buffer("bias", init)

    def forward(
        self,
        embeddings: Sequence[torch.Tensor],
        masks: Sequence[torch.Tensor] | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Loss of a list of ``(B, D)`` tensors, one per modality (row ``i``: item ``i``);
        ``masks``: optional ``(B,)`` bool presence per modality (see the module doc)."""
        z, present = stack_inputs(embeddings, masks)
        if self.normalize:
            z = F.normalize(z, dim=-1)
        num_modalities, batch = z.shape[0], z.shape[1]
        first, second = torch.triu_indices(
            num_modalities, num_modalities, offset=1, device=z.device
        )
        scale = self.logit_scale().to(z.dtype)
        pair_logits = matmul_nt(z.index_select(0, first), z.index_select(0, second))
        logits = scale * pair_logits + self.bias.to(z.dtype)  # (P, B, B)
        eye = torch.eye(batch, dtype=torch.bool, device=z.device)
        signs = torch.where(eye, 1.0, -1.0).to(z.dtype)
        terms = -F.logsigmoid(signs * logits)
        if present is None:
            return terms.sum() / (len(first) * batch)
        valid = present[first] & present[second]  # (P, B)
        entries = valid[:, :, None] & valid[:, None, :]
        total = torch.where(entries, terms, torch.zeros((), dtype=terms.dtype)).sum()
        return total / valid.sum().clamp_min(1)

    def extra_repr(self) -> str:
        return (
            f"bias={float(self.bias.detach()):.4g}, learn_bias={self.learn_bias}, "
            + super().extra_repr()
        )
