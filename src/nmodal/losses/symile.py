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
* ``negative_sampling="n_squared"`` (the Symile package's O(N^2) mode, for any ``M``): all
  ``B^(M-1)`` combinations ``(z_b[j], z_c[k], ...)`` of the non-anchor items are the
  candidates, the positive being ``j = k = ... = i`` (for ``M = 3``: ``B^2`` candidates, for
  ``M = 4``: ``B^3``). Costs ``O(B^M D)`` per anchor; above ``ALL_COMBINATIONS_CHUNK``
  logits it is computed in chunks of the first non-anchor modality's items, each
  recomputed in the backward pass (activation checkpointing), so memory stays bounded.
* ``negative_sampling="n_squared_tied"`` (nmodal's cheaper generalisation, ``B^2``
  candidates for any ``M``): one non-anchor modality ``s`` takes item ``j`` and all other
  non-anchor modalities are tied to one item ``k``; the cross-entropy is averaged over the
  choice of ``s``. Costs ``O(B^3 D)`` per anchor. For ``M = 3`` it *is* ``"n_squared"``
  (the same candidates); for ``M > 3`` it is a different, smaller candidate set, so its
  values differ from the Symile package's. (Earlier nmodal versions used this candidate set
  under the name ``"n_squared"``; a model saved then with ``M > 3`` records that name.)

For two modalities every mode reduces to the standard CLIP loss. ``normalize=True``
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
from torch.utils.checkpoint import checkpoint

from nmodal.errors import InputError
from nmodal.losses._temperature import TemperatureLoss
from nmodal.losses._validate import at_least_float32, stack_inputs

NegativeSampling = Literal["n", "n_squared", "n_squared_tied"]
NEGATIVE_SAMPLINGS = ("n", "n_squared", "n_squared_tied")
ALL_COMBINATIONS_CHUNK = 1 << 23  # logits per chunk of the all-combinations mode
MAX_COMBINATION_ENTRIES = 1 << 26  # entries of the (B^(M-2), D) products it keeps


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


def symile_logits_n_squared_tied(z: torch.Tensor, anchor: int, split: int) -> torch.Tensor:
    """``(B, B * B)`` MIPs ``(z_a[i], z_split[j], prod_rest z[k])``, flattened over (j, k)."""
    batch = z.shape[1]
    rest = [m for m in range(z.shape[0]) if m not in (anchor, split)]
    tied = z[rest].prod(0)  # (B, D)
    logits = torch.einsum("id,jd,kd->ijk", z[anchor], z[split], tied)
    return logits.reshape(batch, batch * batch)


def combination_products(z: torch.Tensor) -> torch.Tensor:
    """``(B^K, D)``: ``prod_k z[k, j_k]`` for every combination ``(j_1, ..., j_K)`` of the
    ``(K, B, D)`` embeddings' items, the last index varying fastest (``K = 0``: one row of
    ones)."""
    product = torch.ones_like(z[0, :1]) if z.shape[0] == 0 else z[0]
    for m in range(1, z.shape[0]):
        product = (product[:, None, :] * z[m][None, :, :]).reshape(-1, z.shape[-1])
    return product


def _chunk_logsumexp(
    scaled_anchor: torch.Tensor, first: torch.Tensor, rest: torch.Tensor
) -> torch.Tensor:
    """``(B,)`` log-sum-exp over the candidates whose first non-anchor item is in ``first``
    (``(C, D)``) and whose other items are any row of ``rest`` (``(R, D)`` products)."""
    left = (scaled_anchor[:, None, :] * first[None, :, :]).reshape(-1, first.shape[-1])
    logits = (left @ rest.T).reshape(scaled_anchor.shape[0], -1)  # (B, C * R)
    return torch.logsumexp(logits, dim=-1)


def symile_all_combinations_ce(z: torch.Tensor, anchor: int, scale: torch.Tensor) -> torch.Tensor:
    """Mean over anchor items ``i`` of the cross-entropy of ``scale * MIP(z_a[i], tuple)``
    over all ``B^(M-1)`` tuples of non-anchor items, the positive being item ``i``'s own."""
    others = [m for m in range(z.shape[0]) if m != anchor]
    batch, dim = z.shape[1], z.shape[2]
    if batch ** (len(others) - 1) * dim > MAX_COMBINATION_ENTRIES:
        raise InputError(
            f"negative_sampling='n_squared' with {z.shape[0]} modalities and a batch of {batch} "
            f"needs {batch}^{len(others)} candidates per anchor: too many; use a smaller "
            "batch, 'n' or 'n_squared_tied'"
        )
    scaled = scale * z[anchor]
    positive = (scaled * z[others].prod(0)).sum(-1)  # (B,)
    rest = combination_products(z[others[1:]])  # (B^(K-1), D)
    step = max(1, ALL_COMBINATIONS_CHUNK // (batch * rest.shape[0]))
    if step >= batch:
        return (_chunk_logsumexp(scaled, z[others[0]], rest) - positive).mean()
    parts = [
        checkpoint(_chunk_logsumexp, scaled, z[others[0]][j : j + step], rest, use_reentrant=False)
        for j in range(0, batch, step)
    ]
    return (torch.logsumexp(torch.stack(parts), dim=0) - positive).mean()


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
        if negative_sampling not in NEGATIVE_SAMPLINGS:
            raise InputError(
                f"unknown negative_sampling {negative_sampling!r}; use one of "
                f"{list(NEGATIVE_SAMPLINGS)}"
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
            elif self.negative_sampling == "n_squared":
                terms.append(symile_all_combinations_ce(z, a, scale))
            else:
                splits = [m for m in range(num_modalities) if m != a]
                if num_modalities == 3:
                    splits = splits[:1]  # the other choice gives the same candidates
                for s in splits:
                    logits = scale * symile_logits_n_squared_tied(z, a, s)
                    terms.append(F.cross_entropy(logits, labels * (batch + 1)) / len(splits))
        return torch.stack(terms).sum() / num_modalities

    def extra_repr(self) -> str:
        return f"negative_sampling={self.negative_sampling!r}, " + super().extra_repr()
