"""Decoding one post into the raw artifacts the encoders take (runs in worker processes).

For each wanted modality of a post:

- ``text``: the post's text; empty text means the post has no text (absent, no error).
- ``video``: ``num_frames`` frames sampled uniformly (:func:`nmodal.media.sample_video`),
  resized to the video encoder's input size here, in the worker.
- ``image``: the post's image file; without one, the frame of its video that the video
  model does not see (the paper's trimodal construction).
- ``audio``: the post's audio file; without one, the video's own audio track (a video
  without sound then simply has no audio, which is not an error).

A file that fails to decode never raises: the artifact is left out and an error record
``{post_id, modality, stage, reason, path}`` says why.

Example:
    >>> spec = DecodeSpec(modalities=("text", "video", "image"), video_size=(224, 224))
    >>> out = decode_post(PostJob("p1", "some words", "clip.mp4", None, None), spec)
    >>> out.items["video"].shape, out.errors
    ((16, 224, 224, 3), [])
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nmodal.errors import InputError, MediaError
from nmodal.lifeline import die_with_parent


@dataclass(frozen=True)
class DecodeSpec:
    """What to decode from every post, and how (the same for the whole run).

    The one place the decode defaults live: extraction, its CLI, ``classify`` and the
    index's queries take them from here (``DECODE_DEFAULTS``), and a store records them
    (:meth:`settings`) so a query or a new post is decoded as the store's posts were.
    """

    modalities: tuple[str, ...]
    num_frames: int = 16
    seed: int = 0
    video_size: tuple[int, int] | None = None
    image_size: tuple[int, int] | None = None
    sample_rate: int = 16000
    audio_seconds: float = 30.0
    max_side: int | None = 1024
    #: how pictures are resized to the encoders' input size: ``swscale-draft`` (the
    #: default of new stores: ``swscale``, and a JPEG photo is decoded at the smallest of
    #: libjpeg's 1/2, 1/4, 1/8 scales that still covers 1.5 times the encoder's input,
    #: not at ``max_side``), ``swscale`` (FFmpeg, while a video frame is converted from YUV; a
    #: photo decoded at ``max_side``, then resized) or ``torch`` (bilinear antialiased
    #: resize of the full-size RGB picture, what stores that record no ``resize`` were
    #: made with)
    resize: str = "swscale-draft"

    def __post_init__(self) -> None:
        if self.resize not in RESIZERS:
            raise InputError(f"resize must be one of {', '.join(RESIZERS)}, got {self.resize!r}")

    def settings(self) -> dict[str, Any]:
        """What a feature store records of this spec (beside each encoder's provenance), so
        that a query or a new post is decoded later exactly as the store's posts were.
        ``resize`` is recorded unless it is ``torch`` (so older stores keep their manifest)."""
        out: dict[str, Any] = {
            "num_frames": self.num_frames,
            "seed": self.seed,
            "sample_rate": self.sample_rate,
            "audio_seconds": self.audio_seconds,
            "max_side": self.max_side,
        }
        if self.resize != LEGACY_RESIZE:
            out["resize"] = self.resize
        return out


RESIZERS = ("swscale-draft", "swscale", "torch")
#: the resizers that resize with swscale (video frames while converting them from YUV)
SWSCALE_RESIZERS = ("swscale-draft", "swscale")
#: the resizers that decode JPEG photos at a reduced scale covering the encoder's input
DRAFT_RESIZERS = ("swscale-draft",)
#: how much larger than the encoder's input side a JPEG decoded at a reduced scale stays:
#: swscale's final shrink by less loses detail (median cosine of EfficientNet-Lite0
#: features to a full-size Lanczos reference, natural 512-720 pixel photos: 0.969 when
#: decoded to cover 224 pixels, 0.981 to cover 336 pixels, the same as the full
#: decode's 0.981; ``bench/bench_photo_decode.py``)
DRAFT_MARGIN = 1.5
#: the resizer of stores (and models) that record none: made before swscale resizing
LEGACY_RESIZE = "torch"
DECODE_KEYS = ("num_frames", "seed", "sample_rate", "audio_seconds", "max_side", "resize")
#: the default decode settings of new runs (stores that recorded none: these, with
#: ``resize=LEGACY_RESIZE``, see :func:`recorded_decode_settings`)
DECODE_DEFAULTS = DecodeSpec(modalities=())


def spec_for(encoders: Mapping[str, Any], recorded: Mapping[str, Any] | None = None) -> DecodeSpec:
    """The spec that decodes for ``encoders`` (``{modality: encoder}``, their input sizes)
    with the ``recorded`` decode settings (:func:`recorded_decode_settings`; defaults for
    what is not recorded)."""
    known = {k: v for k, v in dict(recorded or {}).items() if k in DECODE_KEYS}
    return DecodeSpec(
        modalities=tuple(encoders),
        video_size=getattr(encoders.get("video"), "input_size", None),
        image_size=getattr(encoders.get("image"), "input_size", None),
        **known,
    )


def recorded_decode_settings(provenance: Any) -> dict[str, Any]:
    """The decode settings recorded under ``"decode"`` in an encoder's provenance (a store
    manifest entry or a model config's ``encoders[m]``); for stores written before they
    were recorded, only ``resize`` (the defaults then apply to the rest). A store that
    records no ``resize`` was resized with ``torch`` (:data:`LEGACY_RESIZE`)."""
    recorded = dict(provenance.get("decode", {})) if hasattr(provenance, "get") else {}
    out = {k: recorded[k] for k in DECODE_KEYS if k in recorded}
    out.setdefault("resize", LEGACY_RESIZE)
    return out


@dataclass(frozen=True)
class PostJob:
    """One post's text and media paths (absolute, or None)."""

    post_id: str
    text: str | None
    video_path: str | None
    image_path: str | None
    audio_path: str | None
    #: the folder every media path must still lie in when it is opened (the ingest's
    #: ``media_root``; None: not checked, datasets from before it was recorded)
    media_root: str | None = None


@dataclass
class Decoded:
    """Decoded artifacts ``{modality: str | array}`` and error records of one post."""

    post_id: str
    items: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return not (isinstance(value, str) and not value.strip())


def _error(
    post_id: str, modality: str, exc: BaseException, path: str | None, stage: str
) -> dict[str, Any]:
    if isinstance(exc, MediaError):
        return {
            "post_id": post_id,
            "modality": modality,
            "stage": exc.stage,
            "reason": exc.reason,
            "path": path,
        }
    reason = f"{type(exc).__name__}: {exc}".strip()
    return {
        "post_id": post_id,
        "modality": modality,
        "stage": stage,
        "reason": reason,
        "path": path,
    }


def decode_post(job: PostJob, spec: DecodeSpec) -> Decoded:
    """Decode ``job``'s artifacts for ``spec.modalities``; never raises for bad media."""
    from nmodal.media import (  # lazy: PyAV and Pillow only when decoding
        load_audio,
        load_image,
        sample_video,
    )

    out = Decoded(job.post_id)
    want = set(spec.modalities)
    video_path = _contained(job, "video_path", out, want)
    image_path = _contained(job, "image_path", out, want)
    audio_path = _contained(job, "audio_path", out, want)
    resize = _resizer(spec.resize)

    if "text" in want and _present(job.text):
        out.items["text"] = str(job.text)

    held_out: np.ndarray | None = None
    needs_frame = "image" in want and image_path is None
    if video_path is not None and ("video" in want or needs_frame):
        try:
            sample = sample_video(
                video_path,
                num_frames=spec.num_frames,
                seed=spec.seed,
                max_side=spec.max_side,
                **_decode_time_size(spec, "video" in want, needs_frame),
            )
            if "video" in want:
                frames = sample.frames
                if spec.video_size is not None:
                    frames = resize(frames, spec.video_size)
                out.items["video"] = np.ascontiguousarray(frames)
            held_out = sample.image
        except Exception as exc:
            for m in ("video", "image") if needs_frame else ("video",):
                if m in want:
                    out.errors.append(_error(job.post_id, m, exc, video_path, "decode"))

    if "image" in want:
        picture: np.ndarray | None = held_out
        if image_path is not None:
            cover = (
                math.ceil(DRAFT_MARGIN * max(spec.image_size))
                if spec.image_size is not None and spec.resize in DRAFT_RESIZERS
                else None
            )
            try:
                picture = load_image(image_path, max_side=spec.max_side, cover=cover)
            except Exception as exc:
                out.errors.append(_error(job.post_id, "image", exc, image_path, "image"))
                picture = None
        if picture is not None:
            if spec.image_size is not None:
                picture = resize(picture, spec.image_size)
            out.items["image"] = np.ascontiguousarray(picture)

    if "audio" in want:
        source = audio_path or video_path
        if source is not None:
            try:
                out.items["audio"] = load_audio(
                    source, sample_rate=spec.sample_rate, max_seconds=spec.audio_seconds
                )
            except MediaError as exc:
                # a video without sound has no audio: absent, not an error
                if not (audio_path is None and exc.reason == "no audio track"):
                    out.errors.append(_error(job.post_id, "audio", exc, source, "audio"))
            except Exception as exc:
                out.errors.append(_error(job.post_id, "audio", exc, source, "audio"))
    return out


def _contained(job: PostJob, column: str, out: Decoded, want: set[str]) -> str | None:
    """``job``'s ``column`` path, or None when it has none or when it now resolves outside
    the post's media root (a file replaced by a symlink since ingest): that is recorded as
    an error of the modalities it feeds, and the file is never opened."""
    value = getattr(job, column)
    if not _present(value):
        return None
    path = str(value)
    if job.media_root is None:
        return path
    root = os.path.realpath(job.media_root)
    real = os.path.realpath(path)
    if real.startswith(root.rstrip(os.sep) + os.sep):
        return path
    feeds = {"image_path": ["image"], "audio_path": ["audio"]}.get(column)
    if feeds is None:  # a video also gives the image and the sound a post lacks otherwise
        feeds = ["video"]
        feeds += [] if _present(job.image_path) else ["image"]
        feeds += [] if _present(job.audio_path) else ["audio"]
    reason = "outside the collection's media root (replaced by a symlink or moved since ingest)"
    exc = MediaError(path, reason, "decode")
    for m in feeds:
        if m in want:
            out.errors.append(_error(job.post_id, m, exc, path, "decode"))
    return None


def _resizer(name: str) -> Callable[[np.ndarray, tuple[int, int]], np.ndarray]:
    if name in SWSCALE_RESIZERS:
        from nmodal.media.image import resize_swscale  # lazy: PyAV and Pillow only when decoding

        return resize_swscale
    from nmodal.encoders.torch_utils import resize_uint8  # lazy: torch only for the torch resizer

    return resize_uint8


def _decode_time_size(spec: DecodeSpec, video: bool, held_out: bool) -> dict[str, Any]:
    """``sample_video`` arguments that resize every frame while it is converted (swscale):
    when all the frames kept (the video's, and the held-out image frame when it is the
    image) go to one size; otherwise the frames come at ``max_side`` and are resized after."""
    if spec.resize not in SWSCALE_RESIZERS:
        return {}
    sizes = {s for s, used in ((spec.video_size, video), (spec.image_size, held_out)) if used}
    if len(sizes) != 1 or None in sizes:
        return {}
    return {"size": sizes.pop(), "resize": "swscale"}


def decode_raw(artifacts: Mapping[str, Any], spec: DecodeSpec, post_id: str = "input") -> Decoded:
    """One post given as raw artifacts (``text``: a string; ``image``, ``video``,
    ``audio``: file paths or None) decoded exactly as extraction decodes a post with
    ``spec``: the one function ``classify`` and the index's queries decode with."""
    paths = {
        m: None if artifacts.get(m) is None else str(artifacts[m])
        for m in ("video", "image", "audio")
    }
    text = artifacts.get("text")
    job = PostJob(post_id, None if text is None else str(text), paths["video"],
                  paths["image"], paths["audio"])  # fmt: skip
    return decode_post(job, spec)


def init_worker() -> None:
    """Process-pool initialiser: one torch and one FFmpeg thread per decoding worker (they
    run side by side), and the worker dies with its parent (no decoder outlives a killed
    ``extract``)."""

    die_with_parent()
    import torch

    from nmodal.media.video import set_decode_threads  # lazy: PyAV only in decode workers

    torch.set_num_threads(1)
    set_decode_threads(1)
