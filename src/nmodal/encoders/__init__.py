"""Frozen encoders: one small class per encoder, one interface, a registry, named sets.

Example:
    >>> from nmodal.encoders import encoder_set
    >>> encs = encoder_set("offline", modalities=("text", "audio"))
    >>> encs["text"].encode(["a post"]).shape
    (1, 384)

See :mod:`nmodal.encoders.base` for how to register your own encoder.
"""

from nmodal.encoders.base import (
    MODALITIES,
    Encoder,
    available_encoders,
    build_encoder,
    encoder_set,
    encoder_sets,
    from_provenance,
    load_plugins,
    register_encoder,
    register_encoder_set,
)

__all__ = [
    "MODALITIES",
    "Encoder",
    "available_encoders",
    "build_encoder",
    "encoder_set",
    "encoder_sets",
    "from_provenance",
    "load_plugins",
    "register_encoder",
    "register_encoder_set",
]
