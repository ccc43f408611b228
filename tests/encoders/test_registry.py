"""Registry, named sets, provenance round trips, user-defined encoders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from nmodal.encoders import (
    Encoder,
    available_encoders,
    build_encoder,
    encoder_set,
    encoder_sets,
    from_provenance,
    register_encoder,
    register_encoder_set,
)
from nmodal.encoders.torch_utils import AdaptiveBatcher
from nmodal.errors import InputError


@register_encoder("test-text-length")
class TextLength(Encoder):
    modality = "text"
    version = "2"

    def __init__(self, scale: float = 1.0, **runtime: Any) -> None:
        super().__init__(settings={"scale": scale}, **runtime)

    @property
    def dim(self) -> int:
        return 1

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        return (np.array([len(t) for t in batch], np.float32) * self.settings["scale"])[:, None]


def test_custom_encoder_registers_builds_and_round_trips() -> None:
    enc = build_encoder("test-text-length", scale=0.5)
    assert enc.name == "test-text-length" and enc.modality == "text"
    np.testing.assert_array_equal(enc.encode(["abcd", "ab"]), [[2.0], [1.0]])
    info = enc.provenance()
    assert info == {
        "name": "test-text-length", "version": "2", "modality": "text", "dim": 1,
        "settings": {"scale": 0.5}, "details": {}, "packages": {},
    }  # fmt: skip
    again = from_provenance(info)
    assert isinstance(again, TextLength) and again.settings == {"scale": 0.5}
    assert "test-text-length" in available_encoders()


def test_version_mismatch_warns() -> None:
    info = build_encoder("test-text-length").provenance() | {"version": "1"}
    with pytest.warns(UserWarning, match="version 1"):
        from_provenance(info)


def test_registry_errors() -> None:
    with pytest.raises(InputError, match="unknown encoder"):
        build_encoder("no-such-encoder")
    with pytest.raises(InputError, match="unknown setting"):
        build_encoder("test-text-length", colour="red")
    with pytest.raises(InputError, match="already registered"):

        @register_encoder("test-text-length")
        class Other(TextLength):
            pass

    with pytest.raises(InputError, match="modality"):

        @register_encoder("test-smell")
        class Smell(TextLength):
            modality = "smell"


def test_named_sets() -> None:
    assert encoder_sets()["offline"] == {
        "text": "e5-small", "image": "efficientnet-lite0", "video": "efficientnet-lite0-frames", "audio": "logmel-stats",
    }  # fmt: skip
    assert encoder_sets()["paper"] == {
        "text": "distilbert",
        "image": "vit-mae",
        "video": "videomae",
        "audio": "wav2vec2",
    }
    encs = encoder_set("offline", modalities=("audio",), settings={"audio": {"n_mels": 32}})
    assert list(encs) == ["audio"] and encs["audio"].dim == 128
    register_encoder_set("lengths", {"text": ("test-text-length", {"scale": 2.0})})
    assert encoder_set("lengths")["text"].encode(["abc"])[0, 0] == 6.0
    with pytest.raises(InputError, match="unknown encoder set"):
        encoder_set("nope")
    with pytest.raises(InputError, match="no encoder for"):
        encoder_set("lengths", modalities=("video",))
    with pytest.raises(InputError, match="not extracted"):
        encoder_set("offline", modalities=("audio",), settings={"video": {}})


def test_adaptive_batcher_halves_on_out_of_memory() -> None:
    calls: list[int] = []

    def fn(items: list[int]) -> np.ndarray:
        calls.append(len(items))
        if len(items) > 3:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return np.array(items, np.float32)[:, None]

    batcher = AdaptiveBatcher(16)
    out = batcher.map(fn, list(range(10)))
    np.testing.assert_array_equal(out[:, 0], np.arange(10))
    assert batcher.batch_size == 2 and calls[:3] == [10, 5, 2]
    with pytest.raises(ValueError, match="other"):
        AdaptiveBatcher(4).map(lambda items: (_ for _ in ()).throw(ValueError("other")), [1])
