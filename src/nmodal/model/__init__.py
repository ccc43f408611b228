"""Projection heads and the N-modal model (save/load as config.json + model.safetensors)."""

from nmodal.model.heads import HeadConfig, ProjectionHead
from nmodal.model.nmodal_model import (
    ModelConfig,
    NModalModel,
    fingerprint_matches,
    model_fingerprint,
)

__all__ = [
    "HeadConfig",
    "ModelConfig",
    "NModalModel",
    "ProjectionHead",
    "fingerprint_matches",
    "model_fingerprint",
]
