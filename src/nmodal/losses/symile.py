"""Symile (Saporta et al., 2024): contrast whole tuples through the multilinear inner product.

The multilinear inner product of ``M`` vectors is ``MIP(x_1, ..., x_M) = sum_d prod_m
x_m[d]`` (for two vectors: the dot product). Each modality ``a`` serves as the anchor in
turn: item ``i``'s anchor artifact ``z_a[i]`` must pick its own tuple of non-anchor artifacts
out of a set of candidate tuples, a cross-entropy over ``logits = MIP(z_a[i], tuple) / tau``;
the loss is the mean over anchors (and items) of these cross-entropies. Candidates:

* ``negative_sampling="n"`` (O(N), ``B`` candidates per anchor item): Symile mixes the
  non-anchor items by shuffling each non-anchor modality independently; nmodal uses fixed
  cyclic shifts instead, so the loss is deterministic (and equal on every DDP rank): the
  ``k``-th non-anchor modality (``k = 0, 1, ...`` in modality order) of candidate ``j``
  comes from item ``(j + k) mod B``, and candidate ``i`` is replaced by the positive tuple
  (item ``i`` in every modality), as Symile puts the positives on the diagonal.
* ``negative_sampling="n_squared"`` (O(N^2)): for three modalities, all ``B^2``
  combinations ``(z_b[j], z_c[k])`` of the two non-anchor modalities, the positive being
  ``j = k = i``. For ``M > 3`` (nmodal's generalisation): one non-anchor modality ``s``
  takes item ``j`` and the product of the others item ``k`` (``B^2`` candidates), averaged
  over the choice of ``s`` (for ``M = 3`` both choices give the same candidates, so one is
  computed). Costs ``O(B^3 D)`` per anchor.

For two modalities both modes reduce to the standard CLIP loss. ``normalize=True``
L2-normalises each embedding first (the MIP of unit vectors is at most 1 and usually much
smaller, so the learnable temperature matters). The MIPs are computed in float32 even
under mixed precision.

Missing modalities: the MIP needs the whole tuple, so with ``masks`` only the items having
every artifact take part (as anchors and as candidates); other items contribute nothing.

Example:
    >>> loss = SymileLoss(negative_sampling="n_squared")
    >>> loss([torch.randn(8, 16) for _ in range(3)]).ndim
    0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from nmodal.errors import InputError
from nmodal.losses._temperature import TemperatureLoss
from nmodal.losses._validate import at_least_float32, stack_inputs

NegativeSampling = Literal["n", "n_squared"]


def complete_items(z: torch.Tensor, present: torch.Tensor | None) -> torch.Tensor:
    """The ``(M, B', D)`` embeddings of the items that have every artifact."""
    return z if present is None else z[:, present.all(0)]


def symile_logits_n(z: torch.Tensor, anchor: int) -> torch.Tensor:
    """``(B, B)`` MIPs of anchor items against shifted candidate tuples, positives on the
    diagonal (see the module doc)."""
    batch = z.shape[1]
    others = [m for m in range(z.shape[0]) if m != anchor]
    candidates = torch.stack([z[m].roll(-k, dims=0) for k, m in enumerate(others)]).prod(0)
    logits = z[anchor] @ candidates.T
    positive = z.prod(0).sum(-1)  # MIP of every item's full tuple
    eye = torch.eye(batch, dtype=torch.bool, device=z.device)
    return torch.where(eye, positive[:, None], logits)


def symile_logits_n_squared(z: torch.Tensor, anchor: int, split: int) -> torch.Tensor:
    """``(B, B * B)`` MIPs ``(z_a[i], z_split[j], prod_rest z[k])``, flattened over (j, k)."""
    batch = z.shape[1]
    rest = [m for m in range(z.shape[0]) if m not in (anchor, split)]
    tied = z[rest].prod(0)  # (B, D)
    logits = torch.einsum("id,jd,kd->ijk", z[anchor], z[split], tied)
    return logits.reshape(batch, batch * batch)


class SymileLoss(TemperatureLoss):
    """Symile's multilinear-inner-product contrastive loss; see the module doc."""

    def __init__(
        self,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        normalize: bool = True,
        negative_sampling: NegativeSampling = "n",
        max_logit_scale: float = 100.0,
    ) -> None:
        super().__init__(temperature, learn_temperature, normalize, max_logit_scale)
        if negative_sampling not in ("n", "n_squared"):
            raise InputError(
                f"unknown negative_sampling {negative_sampling!r}; use 'n' or 'n_squared'"
            )
        self.negative_sampling: NegativeSampling = negative_sampling

    def forward(
        self,
        embeddings: Sequence[torch.Tensor],
        masks: Sequence[torch.Tensor] | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Loss of a list of ``(B, D)`` tensors, one per modality (row ``i``: item ``i``);
        ``masks``: optional ``(B,)`` bool presence per modality (complete items only)."""
        z, present = stack_inputs(embeddings, masks)
        z = complete_items(z, present)
        if z.shape[1] < 2:  # no complete pair of items: nothing to contrast
            return z.sum() * 0.0 + self.log_logit_scale.to(z.dtype) * 0.0
        with torch.autocast(z.device.type, enabled=False):  # products of M small numbers
            z = at_least_float32(z)
            if self.normalize:
                z = F.normalize(z, dim=-1)
            return self._loss(z)

    def _loss(self, z: torch.Tensor) -> torch.Tensor:
        num_modalities, batch = z.shape[0], z.shape[1]
        scale = self.logit_scale().to(z.dtype)
        labels = torch.arange(batch, device=z.device)
        terms = []
        for a in range(num_modalities):
            if self.negative_sampling == "n" or num_modalities == 2:
                terms.append(F.cross_entropy(scale * symile_logits_n(z, a), labels))
                continue
            splits = [m for m in range(num_modalities) if m != a]
            if num_modalities == 3:
                splits = splits[:1]  # the other choice gives the same candidates
            for s in splits:
                logits = scale * symile_logits_n_squared(z, a, s)
                terms.append(F.cross_entropy(logits, labels * (batch + 1)) / len(splits))
        return torch.stack(terms).sum() / num_modalities

    def extra_repr(self) -> str:
        return f"negative_sampling={self.negative_sampling!r}, " + super().extra_repr()
