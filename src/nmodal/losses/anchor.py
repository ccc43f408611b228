"""Anchor-based ("ImageBind-style") CLIP loss: every modality aligned to one anchor only.

ImageBind binds each modality to images; here any modality can be the anchor. The loss is
:class:`~nmodal.losses.NModalCLIPLoss` restricted to the pairs ``(anchor, m)`` for every
``m != anchor`` (logits ``Z_anchor Z_m^T / tau``, symmetric cross-entropy, mean over the
pairs); pairs between two non-anchor modalities are never contrasted, so they are aligned
only through the anchor ("emergent" alignment). For two modalities it is the standard CLIP
loss, whichever the anchor. Targets, temperature, normalisation and missing-modality masks
behave exactly as in ``NModalCLIPLoss`` (an item without the anchor artifact takes part in
no pair).

``anchor`` is a modality index, or a modality name together with ``modalities`` (the
trainer passes the model's modality order).

Example:
    >>> loss = AnchorCLIPLoss(anchor="text", modalities=["image", "text", "video"])
    >>> loss.anchor_index(3)
    1
    >>> loss([torch.randn(8, 16) for _ in range(3)]).ndim
    0
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nmodal.errors import InputError
from nmodal.losses.clip import CLIPTargets, NModalCLIPLoss


def check_anchor(anchor: int | str, modalities: Sequence[str] | None) -> None:
    """Raise InputError unless ``anchor`` is an index >= 0 or one of ``modalities``."""
    if isinstance(anchor, str):
        if modalities is None:
            raise InputError(
                f"anchor {anchor!r} is a modality name: also pass modalities=[...] "
                "(or give the anchor as an index)"
            )
        if anchor not in modalities:
            raise InputError(f"anchor {anchor!r} is not one of the modalities {list(modalities)}")
    elif not isinstance(anchor, int) or isinstance(anchor, bool) or anchor < 0:
        raise InputError(f"anchor must be a modality index >= 0 or a name, got {anchor!r}")


def anchor_position(
    anchor: int | str, modalities: Sequence[str] | None, num_modalities: int
) -> int:
    """The anchor's position among ``num_modalities`` embeddings (checked)."""
    if isinstance(anchor, str):
        assert modalities is not None
        if len(modalities) != num_modalities:
            raise InputError(
                f"the loss knows modalities {list(modalities)} but got {num_modalities} embeddings"
            )
        return list(modalities).index(anchor)
    if anchor >= num_modalities:
        raise InputError(f"anchor index {anchor} but only {num_modalities} modalities")
    return anchor


class AnchorCLIPLoss(NModalCLIPLoss):
    """CLIP loss over the pairs ``(anchor, m)`` only; see the module doc."""

    def __init__(
        self,
        anchor: int | str = 0,
        modalities: Sequence[str] | None = None,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        targets: CLIPTargets = "identity",
        normalize: bool = True,
        max_logit_scale: float = 100.0,
    ) -> None:
        super().__init__(
            temperature=temperature,
            learn_temperature=learn_temperature,
            targets=targets,
            normalize=normalize,
            max_logit_scale=max_logit_scale,
        )
        self.modalities = list(modalities) if modalities is not None else None
        check_anchor(anchor, self.modalities)
        self.anchor = anchor

    def anchor_index(self, num_modalities: int) -> int:
        """The anchor's position among ``num_modalities`` embeddings."""
        return anchor_position(self.anchor, self.modalities, num_modalities)

    def pairs(self, num_modalities: int, device: torch.device) -> torch.Tensor:
        """``(2, M - 1)``: ``(anchor, m)`` for every other modality ``m``, in order."""
        a = self.anchor_index(num_modalities)
        others = [m for m in range(num_modalities) if m != a]
        return torch.tensor([[a] * len(others), others], dtype=torch.long, device=device)

    def extra_repr(self) -> str:
        return f"anchor={self.anchor!r}, " + super().extra_repr()
