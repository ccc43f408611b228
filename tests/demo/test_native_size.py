"""The demo encodes its 160x160 clips at native size: the offline encoders' ``size`` setting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nmodal.encoders.base import build_encoder, from_provenance
from nmodal.encoders.offline import load_efficientnet_lite0
from nmodal.errors import InputError


def _reference(pictures: np.ndarray) -> np.ndarray:
    """EfficientNet-Lite0 features without any resize: (x - 127) / 128, NCHW."""
    net = load_efficientnet_lite0(torch.device("cpu"))
    x = (torch.as_tensor(pictures, dtype=torch.float32).permute(0, 3, 1, 2) - 127.0) / 128.0
    with torch.inference_mode():
        return net.features(x.contiguous(memory_format=torch.channels_last)).numpy()


def test_size_setting_skips_the_upscale_and_is_recorded() -> None:
    rng = np.random.default_rng(0)
    pictures = rng.integers(0, 256, (2, 160, 160, 3), dtype=np.uint8)
    image = build_encoder("efficientnet-lite0", size=160)
    assert image.input_size == (160, 160)
    assert image.provenance()["settings"] == {"size": 160}
    np.testing.assert_allclose(image.encode(list(pictures)), _reference(pictures), atol=2e-4)

    video = build_encoder("efficientnet-lite0-frames", size=160)
    assert video.provenance()["settings"] == {"stats": ["mean", "absdiff"], "size": 160}
    ref = _reference(pictures)
    expected = np.concatenate([ref.mean(axis=0), np.abs(ref[1] - ref[0])])
    np.testing.assert_allclose(video.encode([pictures])[0], expected, atol=2e-4)

    again = from_provenance(video.provenance())
    assert again.input_size == (160, 160)


def test_default_size_is_224_and_unrecorded() -> None:
    enc = build_encoder("efficientnet-lite0")
    assert enc.input_size == (224, 224) and enc.provenance()["settings"] == {}
    with pytest.raises(InputError, match="size"):
        build_encoder("efficientnet-lite0", size=8)
