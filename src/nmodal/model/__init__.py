"""Projection heads and the N-modal model (save/load as config.json + model.safetensors)."""

from nmodal.model.heads import HeadConfig, ProjectionHead
from nmodal.model.nmodal_model import ModelConfig, NModalModel

__all__ = ["HeadConfig", "ModelConfig", "NModalModel", "ProjectionHead"]
