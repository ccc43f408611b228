"""N-modal triplet loss (paper Eq. 2), over every (anchor, positive, negative) modality triple.

For ``M`` modalities and a batch of ``B`` items, each term takes an anchor from modality
``a`` and a positive from modality ``p`` of the same item ``i``, and a negative from
modality ``q`` of another item ``j``::

    L = alpha * reduce over (a, p, q, i[, j]) of  l(d(z_a[i], z_p[i]) - d(z_a[i], z_q[j]))

with ``l(x) = log(1 + exp(x))`` (soft margin, ``margin=None``) or ``max(x + margin, 0)``
(hinge), ``d`` Euclidean or cosine (``1 - cos``), and ``a == p`` included unless
``include_same_modality=False``. The negative item ``j`` is chosen by ``negatives``:

* ``"cyclic"`` (published): ``j = (i + 1) mod B``;
* ``"hardest"``: the closest negative, ``argmin_{j != i} d(z_a[i], z_q[j])``;
* ``"semihard"`` (FaceNet): the closest negative *farther* than the positive,
  ``d_an > d_ap``; when the margin is a float, this is the hardest negative inside the
  margin window whenever one exists. If no negative is farther than the positive, the
  farthest negative is used (the easiest of the hard ones, as TensorFlow's
  ``triplet_semihard_loss`` does);
* ``"all"``: every ``j != i``, each a separate term of the reduction.

``reduction="sum"`` (published) sums the terms, ``"mean"`` averages them; ``alpha`` scales
the result. The published code is ``NModalTripletLoss()``: soft margin, Euclidean,
cyclic, sum, ``alpha = 0.001``.

Missing modalities (``loss(embeddings, masks=[...])``, one ``(B,)`` bool tensor per
modality): a term exists only when its anchor ``z_a[i]``, positive ``z_p[i]`` and negative
``z_q[j]`` are all present. Mined negatives are chosen among the present ``z_q[j]``; a
cyclic term whose negative ``z_q[(i + 1) mod B]`` is absent is dropped. ``"sum"`` sums
the existing terms and ``"mean"`` averages them, so with every artifact present the loss
is unchanged (all-True masks take the unmasked path).

Everything is computed with a few batched tensor operations on the stacked ``(M, B, D)``
embeddings: positive distances ``(M, M, B)`` and, for the mined modes, all pairwise
distances ``(M, M, B, B)`` at once, then gathered. Euclidean distances use a square
root whose gradient is 0 (not NaN) at distance 0, e.g. for ``a == p``.

Example:
    >>> loss = NModalTripletLoss()
    >>> z = [torch.randn(8, 16, requires_grad=True) for _ in range(3)]
    >>> loss(z).backward()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from nmodal.errors import InputError
from nmodal.losses._validate import stack_inputs

Distance = Literal["euclidean", "cosine"]
Negatives = Literal["cyclic", "hardest", "semihard", "all"]
Reduction = Literal["sum", "mean"]

DISTANCES = ("euclidean", "cosine")
NEGATIVES = ("cyclic", "hardest", "semihard", "all")
REDUCTIONS = ("sum", "mean")


def safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(max(x, 0))`` with gradient 0 where ``x <= 0`` (plain sqrt gives inf/NaN there)."""
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))), 0.0)


def positive_distances(z: torch.Tensor, distance: Distance) -> torch.Tensor:
    """``(M, M, B)``: ``d(z[a, i], z[p, i])`` for every modality pair, computed directly."""
    if distance == "cosine":
        u = F.normalize(z, dim=-1)
        return 1 - torch.einsum("aid,pid->api", u, u)
    diff = z.unsqueeze(1) - z.unsqueeze(0)  # (M, M, B, D)
    return safe_sqrt(diff.pow(2).sum(-1))


def cyclic_negative_distances(z: torch.Tensor, distance: Distance) -> torch.Tensor:
    """``(M, M, B)``: ``d(z[a, i], z[q, (i + 1) mod B])``, computed directly."""
    shifted = z.roll(-1, dims=1)
    if distance == "cosine":
        u, v = F.normalize(z, dim=-1), F.normalize(shifted, dim=-1)
        return 1 - torch.einsum("aid,qid->aqi", u, v)
    diff = z.unsqueeze(1) - shifted.unsqueeze(0)
    return safe_sqrt(diff.pow(2).sum(-1))


def pairwise_distances(z: torch.Tensor, distance: Distance) -> torch.Tensor:
    """``(M, M, B, B)``: ``d(z[a, i], z[q, j])`` for all modalities and items, via one matmul.

    Euclidean distances come from the Gram matrix, so they carry a rounding error of about
    ``sqrt(eps) * |z|`` near 0; they serve to mine negatives (``j != i``) only.
    """
    num_modalities, batch, dim = z.shape
    flat = z.reshape(num_modalities * batch, dim)
    if distance == "cosine":
        u = F.normalize(flat, dim=-1)
        dist = 1 - u @ u.T
    else:
        sq = flat.pow(2).sum(-1)
        dist = safe_sqrt((sq[:, None] + sq[None, :] - 2 * flat @ flat.T).clamp_min(0))
        # a vector's distance to itself is 0 exactly, not sqrt of rounding noise
        dist = dist.masked_fill(torch.eye(len(flat), dtype=torch.bool, device=z.device), 0.0)
    return dist.reshape(num_modalities, batch, num_modalities, batch).permute(0, 2, 1, 3)


class NModalTripletLoss(nn.Module):
    """All-modality-triples triplet loss; see the module doc for the exact definition."""

    def __init__(
        self,
        margin: float | None = None,
        distance: Distance = "euclidean",
        negatives: Negatives = "cyclic",
        alpha: float = 0.001,
        reduction: Reduction = "sum",
        include_same_modality: bool = True,
    ) -> None:
        super().__init__()
        if margin is not None and not float(margin) >= 0:
            raise InputError(f"margin must be None (soft margin) or >= 0, got {margin!r}")
        for name, value, allowed in (
            ("distance", distance, DISTANCES),
            ("negatives", negatives, NEGATIVES),
            ("reduction", reduction, REDUCTIONS),
        ):
            if value not in allowed:
                raise InputError(f"unknown triplet {name} {value!r}; use one of {list(allowed)}")
        self.margin = None if margin is None else float(margin)
        self.distance: Distance = distance
        self.negatives: Negatives = negatives
        self.alpha = float(alpha)
        self.reduction: Reduction = reduction
        self.include_same_modality = include_same_modality

    def forward(
        self,
        embeddings: Sequence[torch.Tensor],
        masks: Sequence[torch.Tensor] | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Loss of a list of ``(B, D)`` tensors, one per modality (row ``i``: item ``i``);
        ``masks``: optional ``(B,)`` bool presence per modality (see the module doc)."""
        z, present = stack_inputs(embeddings, masks)
        num_modalities, batch = z.shape[0], z.shape[1]
        d_ap = positive_distances(z, self.distance)  # (a, p, i)
        if self.negatives == "cyclic":
            d_an = cyclic_negative_distances(z, self.distance)[:, None]  # (a, 1, q, i)
        else:
            full = pairwise_distances(z, self.distance)  # (a, q, i, j)
            d_an = self._mined_negatives(full, d_ap, present)
        d_ap_b = d_ap[:, :, None, :]  # (a, p, 1, i)
        if self.negatives == "all":
            d_ap_b = d_ap_b[..., None]  # (a, p, 1, i, 1)
        gap = d_ap_b - d_an  # (a, p, q, i[, j])
        terms = F.softplus(gap) if self.margin is None else F.relu(gap + self.margin)
        if present is not None:
            zero = torch.zeros((), dtype=terms.dtype, device=terms.device)
            terms = torch.where(self._valid_terms(present), terms, zero)
        if not self.include_same_modality:
            keep = ~torch.eye(num_modalities, dtype=torch.bool, device=z.device)
            terms = terms[keep]  # (a != p, q, i[, j])
        if self.negatives == "all":
            off_diagonal = ~torch.eye(batch, dtype=torch.bool, device=z.device)
            terms = terms[..., off_diagonal]  # drop j == i
        if present is None:
            total = terms.sum() if self.reduction == "sum" else terms.mean()
        else:
            total = terms.sum()
            if self.reduction == "mean":
                total = total / self._count_terms(present).clamp_min(1)
        return self.alpha * total

    def _valid_terms(self, present: torch.Tensor) -> torch.Tensor:
        """Bool, broadcastable to the ``(a, p, q, i[, j])`` terms: every artifact present."""
        has_ap = present[:, None, None, :] & present[None, :, None, :]  # (a, p, 1, i)
        if self.negatives == "cyclic":
            return has_ap & present.roll(-1, dims=1)[None, None]  # (a, p, q, i)
        if self.negatives == "all":
            return has_ap[..., None] & present[None, None, :, None, :]  # (a, p, q, i, j)
        # mined: some present negative j != i of modality q must exist
        others = present.sum(-1, keepdim=True) - present.long()  # (q, i)
        return has_ap & (others > 0)[None, None]

    def _count_terms(self, present: torch.Tensor) -> torch.Tensor:
        """Number of existing terms (for ``reduction="mean"``)."""
        num_modalities, batch = present.shape
        valid = self._valid_terms(present)
        shape: tuple[int, ...] = (num_modalities, num_modalities, num_modalities, batch)
        if self.negatives == "all":
            shape = (*shape, batch)
        valid = valid.expand(shape)
        if not self.include_same_modality:
            valid = valid[~torch.eye(num_modalities, dtype=torch.bool, device=present.device)]
        if self.negatives == "all":
            valid = valid[..., ~torch.eye(batch, dtype=torch.bool, device=present.device)]
        return valid.sum()

    def _mined_negatives(
        self, full: torch.Tensor, d_ap: torch.Tensor, present: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Negative distances for the mined modes, shaped to broadcast with ``(a, p, 1, i)``."""
        if self.negatives == "all":
            return full[:, None]  # (a, 1, q, i, j); j == i dropped by the caller
        batch = full.shape[-1]
        # excluded[q, i, j]: j is not a negative for item i in modality q
        excluded = torch.eye(batch, dtype=torch.bool, device=full.device)
        if present is not None:
            excluded = excluded | ~present[:, None, :]
        if self.negatives == "hardest":
            return full.masked_fill(excluded, float("inf")).amin(-1)[:, None]  # (a, 1, q, i)
        # semihard: per (a, p, q, i) the closest negative with d_an > d_ap, else the farthest.
        with torch.no_grad():
            neg = full[:, None]  # (a, 1, q, i, j)
            pos = d_ap[:, :, None, :, None]  # (a, p, 1, i, 1)
            farther = (neg > pos) & ~excluded
            inf = torch.tensor(float("inf"), dtype=full.dtype, device=full.device)
            closest_farther = torch.where(farther, neg, inf).argmin(-1)
            farthest = torch.where(excluded, -inf, neg).argmax(-1)
            choice = torch.where(farther.any(-1), closest_farther, farthest)  # (a, p, q, i)
        num_modalities = full.shape[0]
        expanded = full[:, None].expand(num_modalities, num_modalities, *full.shape[1:])
        return expanded.gather(-1, choice[..., None]).squeeze(-1)  # (a, p, q, i)

    def extra_repr(self) -> str:
        return (
            f"margin={self.margin}, distance={self.distance!r}, negatives={self.negatives!r}, "
            f"alpha={self.alpha:g}, reduction={self.reduction!r}, "
            f"include_same_modality={self.include_same_modality}"
        )
