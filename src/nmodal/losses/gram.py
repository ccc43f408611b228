"""GRAM (Cicchetti et al., 2025): the volume of the tuple's parallelotope as a similarity.

For vectors ``v_1, ..., v_k`` (rows of ``A``) the volume of the parallelotope they span is
``sqrt(det(A A^T))`` (the Gram determinant): 0 when they are collinear, 1 for orthonormal
unit vectors. One modality is the anchor (GRAM uses text; here ``anchor``, default 0). For
anchor item ``i`` and item ``j``, ``V_ij = Vol(z_anchor[i], z_m[j] for every m != anchor)``
and the logits are ``-V_ij / tau``: a small volume means an aligned tuple. The loss is the
symmetric cross-entropy of that ``B x B`` matrix with the diagonal as targets (GRAM's
data-to-anchor and anchor-to-data terms, averaged): each anchor item picks its tuple among
the batch's tuples, and each tuple its anchor item. GRAM's additional data-anchor matching
loss is not part of it.

The volume is ``sqrt(max(det, eps))`` with ``eps = 1e-8``: the determinant of a nearly
degenerate tuple can round below zero, and the square root's slope is unbounded at 0.
It is computed in float32 even under mixed precision (no half-precision determinants).
With ``normalize=True`` (default) the vectors are unit vectors, so ``0 <= V <= 1``; for two
modalities ``V = |sin angle|``.

Missing modalities: the volume needs the whole tuple, so with ``masks`` only items having
every artifact take part (retrieval with :func:`nmodal.retrieval_ranks`,
``scoring="gram"``, does score partial posts, by the volume of the artifacts they have).

Example:
    >>> loss = GramLoss(anchor=0)
    >>> loss([torch.randn(8, 16) for _ in range(3)]).ndim
    0
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from nmodal.losses._temperature import TemperatureLoss
from nmodal.losses._validate import at_least_float32, stack_inputs
from nmodal.losses.anchor import anchor_position, check_anchor
from nmodal.losses.symile import complete_items

VOLUME_EPS = 1e-8


def tuple_volumes(anchor: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    """``(B_a, B)``: ``Vol(anchor[i], rest[0, j], ..., rest[R-1, j])`` for all ``i, j``.

    ``anchor``: ``(B_a, D)``; ``rest``: ``(R, B, D)``. Builds the ``(R+1) x (R+1)`` Gram
    matrices of all pairs at once from dot products and takes their determinants.
    """
    aa = (anchor * anchor).sum(-1)  # (B_a,)
    ar = torch.einsum("id,rjd->ijr", anchor, rest)  # (B_a, B, R)
    rr = torch.einsum("rjd,sjd->jrs", rest, rest)  # (B, R, R)
    rows, cols = ar.shape[0], ar.shape[1]
    top = torch.cat([aa[:, None, None].expand(rows, cols, 1), ar], dim=-1)  # (B_a, B, R+1)
    bottom = torch.cat([ar[..., None], rr[None].expand(rows, -1, -1, -1)], dim=-1)
    gram = torch.cat([top[:, :, None, :], bottom], dim=2)  # (B_a, B, R+1, R+1)
    return torch.linalg.det(gram).clamp_min(VOLUME_EPS).sqrt()


class GramLoss(TemperatureLoss):
    """Contrastive loss on Gram volumes, anchor vs the other modalities; see the module doc."""

    def __init__(
        self,
        anchor: int | str = 0,
        modalities: Sequence[str] | None = None,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        normalize: bool = True,
        max_logit_scale: float = 100.0,
    ) -> None:
        super().__init__(temperature, learn_temperature, normalize, max_logit_scale)
        self.modalities = list(modalities) if modalities is not None else None
        check_anchor(anchor, self.modalities)
        self.anchor = anchor

    def forward(
        self,
        embeddings: Sequence[torch.Tensor],
        masks: Sequence[torch.Tensor] | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Loss of a list of ``(B, D)`` tensors, one per modality (row ``i``: item ``i``);
        ``masks``: optional ``(B,)`` bool presence per modality (complete items only)."""
        z, present = stack_inputs(embeddings, masks)
        a = anchor_position(self.anchor, self.modalities, z.shape[0])
        z = complete_items(z, present)
        batch = z.shape[1]
        if batch < 2:  # no complete pair of items: nothing to contrast
            return z.sum() * 0.0 + self.log_logit_scale.to(z.dtype) * 0.0
        with torch.autocast(z.device.type, enabled=False):  # determinants need float32
            z = at_least_float32(z)
            if self.normalize:
                z = F.normalize(z, dim=-1)
            others = [m for m in range(z.shape[0]) if m != a]
            logits = -self.logit_scale().to(z.dtype) * tuple_volumes(z[a], z[others])
            labels = torch.arange(batch, device=z.device)
            return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2

    def extra_repr(self) -> str:
        return f"anchor={self.anchor!r}, " + super().extra_repr()
