"""N-modal losses: each an ``nn.Module`` taking a list of ``(B, D)`` tensors, one per modality.

``build_loss`` turns the ``loss`` entry of a model config (``{"name": ..., **kwargs}``) into
a module, so that a saved model records and restores its loss.

Example:
    >>> import torch
    >>> loss = build_loss({"name": "triplet", "negatives": "hardest"})
    >>> loss([torch.randn(8, 16), torch.randn(8, 16), torch.randn(8, 16)]).ndim
    0
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from nmodal.errors import InputError
from nmodal.losses.anchor import AnchorCLIPLoss
from nmodal.losses.clip import NModalCLIPLoss
from nmodal.losses.gram import GramLoss
from nmodal.losses.siglip import SigLIPLoss
from nmodal.losses.symile import SymileLoss
from nmodal.losses.triplet import NModalTripletLoss

__all__ = [
    "LOSS_NAMES",
    "AnchorCLIPLoss",
    "GramLoss",
    "NModalCLIPLoss",
    "NModalTripletLoss",
    "SigLIPLoss",
    "SymileLoss",
    "build_loss",
    "with_modalities",
]

LOSS_NAMES: dict[str, str] = {
    # config name -> class name in nmodal.losses
    "clip": "NModalCLIPLoss",
    "triplet": "NModalTripletLoss",
    "symile": "SymileLoss",
    "gram": "GramLoss",
    "anchor": "AnchorCLIPLoss",
    "siglip": "SigLIPLoss",
}


def build_loss(spec: Mapping[str, Any] | str) -> nn.Module:
    """``build_loss({"name": "clip", "temperature": 0.07})`` -> ``NModalCLIPLoss(...)``."""
    import nmodal.losses as losses  # lazy: this package's own registry

    cfg = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = cfg.pop("name", None)
    if name not in LOSS_NAMES:
        raise InputError(f"unknown loss {name!r}; known: {sorted(LOSS_NAMES)}")
    cls = getattr(losses, LOSS_NAMES[name])
    try:
        module: nn.Module = cls(**cfg)
    except TypeError as exc:  # an unknown keyword
        raise InputError(f"loss {name!r}: {exc}") from exc
    return module


def with_modalities(spec: Mapping[str, Any] | str, modalities: Sequence[str]) -> dict[str, Any]:
    """The loss spec plus ``modalities`` when the loss takes them (to name its anchor).

    Example:
        >>> with_modalities({"name": "anchor", "anchor": "text"}, ["image", "text"])
        {'name': 'anchor', 'anchor': 'text', 'modalities': ['image', 'text']}
        >>> with_modalities("clip", ["image", "text"])
        {'name': 'clip'}
    """
    import nmodal.losses as losses  # lazy: this package's own registry

    cfg: dict[str, Any] = {"name": spec} if isinstance(spec, str) else dict(spec)
    cls = getattr(losses, LOSS_NAMES.get(cfg.get("name", ""), ""), None)
    if cls is not None and "modalities" in inspect.signature(cls).parameters:
        cfg.setdefault("modalities", list(modalities))
    return cfg
