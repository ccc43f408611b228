"""N-modal CLIP loss: the pairwise CLIP loss averaged over all modality pairs (paper Eq. 4).

Two target modes:

* ``targets="identity"`` (nmodal's default): item ``i`` of modality ``a`` matches item ``i``
  of modality ``b`` only. Embeddings are L2-normalised (``normalize=True``), logits are
  ``Z_a Z_b^T / tau`` with a learnable temperature ``tau`` (CLIP's parametrisation: a log
  logit scale initialised at ``log(1 / temperature)``, the scale clamped at
  ``max_logit_scale``), and the loss is the mean over unordered pairs ``a < b`` of the
  symmetric cross-entropy ``(CE(rows) + CE(columns)) / 2``. For two modalities this is
  exactly the standard CLIP loss.
* ``targets="soft"`` reproduces the authors' published code: for each pair ``a < b``,
  logits ``Z_a Z_b^T / tau`` and soft targets ``T = softmax((S_a + S_b) / 2 * tau)`` with
  ``S_m = Z_m Z_m^T`` (rows normalised), cross-entropy of the rows against ``T`` and of the
  columns against ``T^T`` (not renormalised), averaged over the ``2 * C(M, 2)``
  directional terms and the batch. The published settings are raw dot products and
  ``tau = 1``: ``NModalCLIPLoss(1.0, learn_temperature=False, targets="soft",
  normalize=False)``.

All pair logits come from one batched matmul over the stacked ``(M, B, D)`` embeddings.

Missing modalities (``loss(embeddings, masks=[...])``, one ``(B,)`` bool tensor per
modality): in the pair ``(a, b)`` only the items having both artifacts take part, as
rows and as columns (the others are neither anchors nor negatives); each such item's
symmetric cross-entropy is one term and the loss is the mean over all terms of all pairs,
i.e. pairs weighted by their number of valid items (a pair with fewer than 2 valid items
has no negative and contributes nothing). With every item valid this is the unmasked
loss; masks that are all True take the unmasked path and give exactly its value. Absent
rows are replaced by zeros before anything else, so their values never matter.

Example:
    >>> loss = NModalCLIPLoss()
    >>> z = [torch.randn(8, 16, requires_grad=True) for _ in range(3)]
    >>> value = loss(z)
    >>> value.backward()
    >>> round(loss.temperature, 2)
    0.07
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from nmodal.errors import InputError
from nmodal.losses._temperature import TemperatureLoss
from nmodal.losses._validate import stack_inputs
from nmodal.ops.cpu_matmul import matmul_nt

CLIPTargets = Literal["identity", "soft"]


def _kept(valid: torch.Tensor) -> torch.Tensor:
    """``(P, B, B)``: row ``i`` keeps the valid columns; an invalid row keeps all of them
    (finite values, discarded later, so no NaN can reach the gradient)."""
    return valid[:, None, :] | ~valid[:, :, None]


def masked_log_softmax(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Row log-softmax of ``(P, B, B)`` logits over the valid columns; 0 elsewhere."""
    kept = _kept(valid)
    return F.log_softmax(logits.masked_fill(~kept, float("-inf")), dim=-1).masked_fill(~kept, 0.0)


def masked_softmax(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Row softmax of ``(P, B, B)`` logits over the valid columns; 0 elsewhere."""
    return F.softmax(logits.masked_fill(~_kept(valid), float("-inf")), dim=-1)


def masked_item_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``(P, B)`` per-item terms over the valid items of the pairs with >= 2 of them."""
    usable = valid & (valid.sum(-1, keepdim=True) >= 2)
    total = torch.where(usable, values, torch.zeros((), dtype=values.dtype)).sum()
    return total / usable.sum().clamp_min(1)


class NModalCLIPLoss(TemperatureLoss):
    """Mean over modality pairs of the (symmetric) CLIP cross-entropy; see the module doc."""

    def __init__(
        self,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        targets: CLIPTargets = "identity",
        normalize: bool = True,
        max_logit_scale: float = 100.0,
    ) -> None:
        if targets not in ("identity", "soft"):
            raise InputError(f"unknown CLIP targets {targets!r}; use 'identity' or 'soft'")
        super().__init__(temperature, learn_temperature, normalize, max_logit_scale)
        self.targets: CLIPTargets = targets

    def pairs(self, num_modalities: int, device: torch.device) -> torch.Tensor:
        """``(2, P)``: the modality pairs ``(a, b)`` of the loss, here every ``a < b``."""
        return torch.triu_indices(num_modalities, num_modalities, offset=1, device=device)

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
        first, second = self.pairs(num_modalities, z.device)
        scale = self.logit_scale().to(z.dtype)
        # (P, B, B): logits[k] = Z_first[k] @ Z_second[k]^T * scale, one batched matmul
        # (index_select: its backward is an index_add, much cheaper than z[first]'s index_put)
        logits = scale * matmul_nt(z.index_select(0, first), z.index_select(0, second))
        if present is not None:
            return self._masked(z, logits, present[first] & present[second], first, second)
        if self.targets == "identity":
            labels = torch.arange(batch, device=z.device).repeat(len(first))
            rows = F.cross_entropy(logits.reshape(-1, batch), labels)
            cols = F.cross_entropy(logits.transpose(-1, -2).reshape(-1, batch), labels)
            return (rows + cols) / 2
        self_sim = torch.matmul(z, z.transpose(-1, -2))  # (M, B, B): S_m = Z_m Z_m^T
        soft = F.softmax((self_sim[first] + self_sim[second]) / 2 / scale, dim=-1)
        rows = -(soft * F.log_softmax(logits, dim=-1)).sum(-1)
        cols = -(soft.transpose(-1, -2) * F.log_softmax(logits.transpose(-1, -2), dim=-1)).sum(-1)
        return (rows.mean() + cols.mean()) / 2

    def _masked(
        self,
        z: torch.Tensor,
        logits: torch.Tensor,
        valid: torch.Tensor,
        first: torch.Tensor,
        second: torch.Tensor,
    ) -> torch.Tensor:
        """The loss over the valid items ``valid`` ``(P, B)`` of each pair."""
        logits_t = logits.transpose(-1, -2)
        if self.targets == "identity":
            rows = -masked_log_softmax(logits, valid).diagonal(dim1=-2, dim2=-1)
            cols = -masked_log_softmax(logits_t, valid).diagonal(dim1=-2, dim2=-1)
        else:
            scale = self.logit_scale().to(z.dtype)
            self_sim = torch.matmul(z, z.transpose(-1, -2))
            soft = masked_softmax((self_sim[first] + self_sim[second]) / 2 / scale, valid)
            rows = -(soft * masked_log_softmax(logits, valid)).sum(-1)
            cols = -(soft.transpose(-1, -2) * masked_log_softmax(logits_t, valid)).sum(-1)
        return masked_item_mean((rows + cols) / 2, valid)

    def extra_repr(self) -> str:
        return f"targets={self.targets!r}, {super().extra_repr()}"
