"""Cheap deterministic encoders for pipeline tests (the real ones are tested in tests/encoders)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from nmodal.encoders import Encoder, register_encoder, register_encoder_set


class _Fake(Encoder):
    def __init__(self, delay: float = 0.0, **runtime: Any) -> None:
        super().__init__(settings={"delay": delay}, **runtime)

    @property
    def dim(self) -> int:
        return 4

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        time.sleep(self.settings["delay"])
        return (
            np.stack([self.one(x) for x in batch]).astype(np.float32)
            if batch
            else np.zeros((0, 4), np.float32)
        )

    def one(self, x: Any) -> np.ndarray:
        raise NotImplementedError


@register_encoder("fake-text")
class FakeText(_Fake):
    modality = "text"

    def one(self, x: Any) -> np.ndarray:
        if "explode" in x:
            raise ValueError("this text makes the encoder fail")
        return np.array([len(x), x.count(" "), ord(x[0]), ord(x[-1])], np.float32)


@register_encoder("fake-image")
class FakeImage(_Fake):
    modality = "image"
    input_size = (16, 16)

    def one(self, x: Any) -> np.ndarray:
        return np.array([*x.reshape(-1, 3).mean(axis=0), x.shape[0]], np.float32)


@register_encoder("fake-video")
class FakeVideo(_Fake):
    modality = "video"
    input_size = (16, 16)

    def one(self, x: Any) -> np.ndarray:
        return np.array([x.shape[0], x.mean(), x[0].mean(), x[-1].mean()], np.float32)


@register_encoder("fake-audio")
class FakeAudio(_Fake):
    modality = "audio"

    def one(self, x: Any) -> np.ndarray:
        return np.array([len(x), np.abs(x).mean(), x.std(), x.max(initial=0)], np.float32)


register_encoder_set("fake", {m: (f"fake-{m}", {}) for m in ("text", "image", "video", "audio")})
register_encoder_set(
    "fake-slow", {m: (f"fake-{m}", {"delay": 0.15}) for m in ("text", "image", "video", "audio")}
)


def crashing_decode(job: Any, spec: Any) -> Any:
    """``decode_post``, except that the decoding process dies on posts whose text says "segfault"."""
    import os

    from nmodal.features.decode import decode_post

    if job.text and "segfault" in job.text:
        os._exit(139)  # what a crash inside a native decoder looks like to the pool
    return decode_post(job, spec)


def hanging_decode(job: Any, spec: Any) -> Any:
    """``decode_post``, except that decoding hangs on posts whose text says "hang": a regular
    expression that backtracks for ages inside C code holding the GIL, as a looping native
    decoder would (nothing inside the worker can interrupt it)."""
    import re

    from nmodal.features.decode import decode_post

    if job.text and "hang" in job.text:
        re.match(r"(a+)+$", "a" * 64 + "b")
    return decode_post(job, spec)
