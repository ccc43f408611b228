"""GRAM (Cicchetti et al., ICLR 2025): the volume of the tuple's parallelotope as a distance.

For vectors ``v_1, ..., v_k`` (rows of ``A``) the volume of the parallelotope they span is
``sqrt(det(A A^T))`` (the Gram determinant): 0 when they are linearly dependent, 1 for
orthonormal unit vectors. One modality is the anchor (GRAM uses text; here ``anchor``,
default 0). For anchor item ``i`` and item ``j``, ``V_ij = Vol(z_anchor[i], z_m[j] for every
m != anchor)`` and the logits are ``-V_ij / tau``: a small volume means an aligned tuple.
The contrastive loss is GRAM's ``(L_D2A + L_A2D) / 2``: the cross-entropy of the rows of
that ``B x B`` matrix (each anchor item picks its tuple among the batch's tuples) and of its
columns (each tuple picks its anchor item), the diagonal being the targets.
``label_smoothing`` (default 0, the paper's equations; the authors' code uses 0.1) smooths
both cross-entropies as ``torch.nn.functional.cross_entropy`` does.

Data-anchor matching (``dam_weight > 0``): GRAM adds ``dam_weight * L_DAM``, a binary
match / no-match classification of (anchor, data) pairs: the ``B`` positive tuples and, per
item, a hard negative of each kind, a tuple ``j`` for anchor item ``i`` drawn from
``softmax(-V_i. / tau)`` without ``j = i``, and an anchor item for tuple ``j`` drawn from
``softmax(-V_.j / tau)`` (``dam_negatives="sample"``, the authors'; ``"hardest"`` takes the
smallest-volume negative instead, deterministic and equal on every DDP rank). The
authors classify with their multimodal fusion encoder over the unpooled encoder tokens;
nmodal's heads see pooled, frozen features only, so the matching head is a small MLP
(``Linear(P, dam_hidden) -> GELU -> Linear(dam_hidden, 1)``, trained with the model and
saved with it) over the tuple's ``P = k(k-1)/2`` pairwise cosines (its Gram matrix, upper
triangle, in modality order), with the binary cross-entropy averaged over the ``3B``
examples. Unlike the volume, that head sees the *signs* of the cosines. The head is sized
by ``modalities`` (required with ``dam_weight > 0``; the trainer passes them).

The volume is ``sqrt(max(det, eps))`` with ``eps = 1e-8`` (the authors: ``sqrt(|det|)``):
the determinant of a nearly degenerate tuple can round below zero, and the square root's
slope is unbounded at 0. It is computed in float32 even under mixed precision (no
half-precision determinants). With ``normalize=True`` (default) the vectors are unit
vectors, so ``0 <= V <= 1``; for two modalities ``V = |sin angle|``. The learnable
temperature starts at 0.07 as in the authors' code (nmodal parametrises it by its log and
clamps ``1 / tau`` at ``max_logit_scale``).

Two properties of the volume matter when heads are trained from scratch (measured on the
demo corpus, see the README's loss comparison): it is blind to signs,
``Vol(v, -w) = Vol(v, w)``, so an item's artifacts may align or anti-align at random; and it
is 0 as soon as *any* two of the ``k`` vectors are collinear, so a tuple is "aligned" when
the anchor matches one other modality and the rest is ignored. GRAM's authors fine-tune
encoders that are already aligned (cosines positive), where neither bites.

Missing modalities: the volume needs the whole tuple, so with ``masks`` only items having
every artifact take part (retrieval with :func:`nmodal.retrieval.retrieval_ranks`,
``scoring="gram"``, does score partial posts, by the volume of the artifacts they have).

Example:
    >>> loss = GramLoss(anchor=0)
    >>> loss([torch.randn(8, 16) for _ in range(3)]).ndim
    0
    >>> with_dam = GramLoss(dam_weight=1.0, modalities=["text", "image", "video"])
    >>> with_dam([torch.randn(8, 16) for _ in range(3)]).ndim
    0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from nmodal.errors import InputError
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


DamNegatives = Literal["sample", "hardest"]
DAM_NEGATIVES = ("sample", "hardest")


def hard_negatives(volumes: torch.Tensor, scale: torch.Tensor, mode: DamNegatives) -> torch.Tensor:
    """``(B,)``: for each row ``i`` of ``(B, B)`` volumes a column ``j != i``, drawn from
    ``softmax(-scale * V_i.)`` (``"sample"``) or the smallest volume (``"hardest"``)."""
    with torch.no_grad():
        logits = -scale * volumes
        eye = torch.eye(len(volumes), dtype=torch.bool, device=volumes.device)
        logits = logits.masked_fill(eye, float("-inf"))
        if mode == "hardest":
            return logits.argmax(dim=1)
        return torch.multinomial(F.softmax(logits, dim=1), 1).squeeze(1)


def tuple_cosines(
    z: torch.Tensor, anchor: int, anchor_items: torch.Tensor, data_items: torch.Tensor
) -> torch.Tensor:
    """``(n, k(k-1)/2)``: the pairwise dot products (``a < b`` in modality order) of the
    tuples made of anchor item ``anchor_items[t]`` and data item ``data_items[t]``."""
    vecs = torch.stack(
        [z[m][anchor_items] if m == anchor else z[m][data_items] for m in range(z.shape[0])]
    )
    first, second = torch.triu_indices(z.shape[0], z.shape[0], offset=1, device=z.device)
    return (vecs[first] * vecs[second]).sum(-1).T


class GramLoss(TemperatureLoss):
    """GRAM's volume-based contrastive loss, anchor vs the other modalities, optionally
    with its data-anchor matching term; see the module doc."""

    def __init__(
        self,
        anchor: int | str = 0,
        modalities: Sequence[str] | None = None,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        normalize: bool = True,
        max_logit_scale: float = 100.0,
        label_smoothing: float = 0.0,
        dam_weight: float = 0.0,
        dam_negatives: DamNegatives = "sample",
        dam_hidden: int = 64,
    ) -> None:
        super().__init__(temperature, learn_temperature, normalize, max_logit_scale)
        self.modalities = list(modalities) if modalities is not None else None
        check_anchor(anchor, self.modalities)
        self.anchor = anchor
        if not 0.0 <= label_smoothing < 1.0:
            raise InputError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        if not dam_weight >= 0.0:
            raise InputError(f"dam_weight must be >= 0, got {dam_weight!r}")
        if dam_negatives not in DAM_NEGATIVES:
            raise InputError(
                f"unknown dam_negatives {dam_negatives!r}; use one of {list(DAM_NEGATIVES)}"
            )
        if not (isinstance(dam_hidden, int) and dam_hidden >= 1):
            raise InputError(f"dam_hidden must be a positive int, got {dam_hidden!r}")
        self.label_smoothing = float(label_smoothing)
        self.dam_weight = float(dam_weight)
        self.dam_negatives: DamNegatives = dam_negatives
        self.dam_hidden = dam_hidden
        self.dam_head: nn.Sequential | None = None
        if self.dam_weight > 0:
            if self.modalities is None:
                raise InputError(
                    "dam_weight > 0 needs modalities=[...] to size the matching head "
                    "(the trainer passes the model's modalities)"
                )
            k = len(self.modalities)
            self.dam_head = nn.Sequential(
                nn.Linear(k * (k - 1) // 2, dam_hidden), nn.GELU(), nn.Linear(dam_hidden, 1)
            )

    def forward(
        self,
        embeddings: Sequence[torch.Tensor],
        masks: Sequence[torch.Tensor] | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Loss of a list of ``(B, D)`` tensors, one per modality (row ``i``: item ``i``);
        ``masks``: optional ``(B,)`` bool presence per modality (complete items only)."""
        z, present = stack_inputs(embeddings, masks)
        a = anchor_position(self.anchor, self.modalities, z.shape[0])
        if self.dam_head is not None and self.modalities and len(self.modalities) != z.shape[0]:
            raise InputError(
                f"the loss knows modalities {self.modalities} but got {z.shape[0]} embeddings"
            )
        z = complete_items(z, present)
        batch = z.shape[1]
        if batch < 2:  # no complete pair of items: nothing to contrast
            zero = z.sum() * 0.0 + self.log_logit_scale.to(z.dtype) * 0.0
            head = self.dam_head
            return zero if head is None else zero + sum(p.sum() * 0.0 for p in head.parameters())
        with torch.autocast(z.device.type, enabled=False):  # determinants need float32
            z = at_least_float32(z)
            if self.normalize:
                z = F.normalize(z, dim=-1)
            others = [m for m in range(z.shape[0]) if m != a]
            scale = self.logit_scale().to(z.dtype)
            volumes = tuple_volumes(z[a], z[others])
            logits = -scale * volumes
            labels = torch.arange(batch, device=z.device)
            smooth = self.label_smoothing
            loss = (
                F.cross_entropy(logits, labels, label_smoothing=smooth)
                + F.cross_entropy(logits.T, labels, label_smoothing=smooth)
            ) / 2
            if self.dam_weight > 0:
                loss = loss + self.dam_weight * self._dam(z, a, volumes, scale)
            return loss

    def _dam(
        self, z: torch.Tensor, anchor: int, volumes: torch.Tensor, scale: torch.Tensor
    ) -> torch.Tensor:
        """GRAM's data-anchor matching term (see the module doc)."""
        head = self.dam_head
        assert head is not None
        items = torch.arange(z.shape[1], device=z.device)
        neg_data = hard_negatives(volumes, scale, self.dam_negatives)  # a tuple per anchor
        neg_anchor = hard_negatives(volumes.T, scale, self.dam_negatives)  # an anchor per tuple
        anchors = torch.cat([items, items, neg_anchor])
        data = torch.cat([items, neg_data, items])
        features = tuple_cosines(z, anchor, anchors, data)
        weight_dtype = next(head.parameters()).dtype
        scores = head(features.to(weight_dtype)).squeeze(-1).to(z.dtype)
        targets = torch.zeros_like(scores)
        targets[: len(items)] = 1.0
        return F.binary_cross_entropy_with_logits(scores, targets)

    def extra_repr(self) -> str:
        extra = f"anchor={self.anchor!r}, label_smoothing={self.label_smoothing:g}, "
        if self.dam_weight > 0:
            extra += f"dam_weight={self.dam_weight:g}, dam_negatives={self.dam_negatives!r}, "
        return extra + super().extra_repr()
