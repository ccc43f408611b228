"""Video probing and frame sampling with PyAV.

The video model sees ``num_frames`` frames sampled uniformly over the clip (the centre of
each of ``num_frames`` equal segments, by frame index); one further frame that the video
model does not see becomes the post's image (the paper's trimodal construction). Its index
is drawn from the frames not sampled with a generator seeded by ``seed`` and the file's
*name* (not its directory), so moving a dataset does not change it.

Short clips are decoded sequentially, converting only the frames kept; long clips with a
keyframe index (mp4/mov) are sampled with keyframe seeks when that decodes fewer frames.
Rotation stored in the display matrix is applied.

Example:
    >>> s = sample_video("clip.mp4", num_frames=16, seed=0)
    >>> s.frames.shape, s.image.shape, s.image_index in s.frame_indices
    ((16, 48, 64, 3), (48, 64, 3), False)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
from PIL import Image

from nmodal.errors import MediaError
from nmodal.media._container import AV_ERRORS, check_file, media_errors, open_input
from nmodal.media.image import SWSCALE_INTERPOLATION, frame_to_rgb

SEEK_MIN_FRAMES = 600  # below this, sequential decoding is always cheap enough
SEEK_COST_FRAMES = 8  # a seek is charged like decoding this many frames
# Limits from the data, not the header: a frame count the container claims is recounted
# from the packets when it exceeds MAX_FRAMES or the file's size in bytes (every frame costs
# at least one byte), and frames larger than MAX_PIXELS are refused before decoding.
MAX_FRAMES = 1 << 24  # 6.5 days at 30 fps
MAX_PIXELS = 1 << 26  # 8192 x 8192

# FFmpeg's decoding threads for video: None = its automatic frame/slice threading (the
# fastest wall clock for one clip), 1 = one thread. Extraction workers, which already run
# one per core, set 1: frame threading costs more core-seconds a clip (0.184 vs 0.126 s
# for the typical 30 s 640x360 H.264 clip, measured side by side on a shared 2-core VM). The decoded frames are the same bytes
# either way (FFmpeg's decoders are bit-exact whatever their threading; tests check it).
_DECODE_THREADS: int | None = None


def set_decode_threads(threads: int | None) -> None:
    """Decode video with ``threads`` FFmpeg threads in this process (``None``: FFmpeg's
    automatic threading, the default; ``1`` in extraction workers). Frames are unchanged."""
    global _DECODE_THREADS
    if threads is not None and int(threads) < 1:
        raise ValueError(f"threads must be None or >= 1, got {threads}")
    _DECODE_THREADS = None if threads is None else int(threads)


def _set_threading(stream: av.video.stream.VideoStream) -> None:
    if _DECODE_THREADS is None:
        stream.thread_type = "AUTO"
        return
    stream.codec_context.thread_count = _DECODE_THREADS
    stream.thread_type = "NONE" if _DECODE_THREADS == 1 else "AUTO"


@dataclass(frozen=True)
class MediaInfo:
    """What a media file holds, from its container metadata (and its first frame).

    ``width``/``height`` are the displayed size, i.e. after ``rotation`` (degrees
    counter-clockwise from the display matrix) is applied. ``num_frames`` is 0 without
    video; ``frame_count`` says where it came from: ``container`` (the index),
    ``packets`` (counted by demuxing) or ``decoded``.
    """

    path: str
    has_video: bool
    has_audio: bool
    num_frames: int
    fps: float
    duration: float
    width: int
    height: int
    rotation: int
    video_codec: str | None
    audio_codec: str | None
    container: str
    frame_count: str = "container"

    @property
    def is_still_image(self) -> bool:
        """True for single pictures that PyAV opens as one-frame videos (jpg, png)."""
        return self.has_video and ("image" in self.container or self.container.endswith("_pipe"))


@dataclass(frozen=True)
class VideoSample:
    """``frames`` (T, H, W, 3) uint8 RGB for the video model and ``image`` (H, W, 3) uint8,
    a frame the video model does not see; ``frame_indices`` (T,) and ``image_index`` are
    0-based frame numbers in presentation order; ``frames_decoded`` counts the frames the
    decoder produced (a cost measure: keyframe seeks keep it low on long clips)."""

    frames: np.ndarray
    image: np.ndarray
    frame_indices: np.ndarray
    image_index: int
    info: MediaInfo
    frames_decoded: int = 0


def sample_indices(total: int, num_frames: int) -> np.ndarray:
    """Indices of ``num_frames`` frames spread uniformly over ``total`` (segment centres).

    >>> sample_indices(64, 4).tolist()
    [8, 24, 40, 56]
    """
    if total < num_frames:
        raise ValueError(f"cannot sample {num_frames} distinct frames from {total}")
    return np.floor((np.arange(num_frames) + 0.5) * total / num_frames).astype(np.int64)


def held_out_index(total: int, sampled: np.ndarray, seed: int, key: str) -> int:
    """A frame index in ``[0, total)`` not in ``sampled``, chosen from ``seed`` and ``key``.

    >>> held_out_index(64, sample_indices(64, 16), seed=0, key="a.mp4") in sample_indices(64, 16)
    False
    """
    # The r-th frame number not in ``sampled``, found in O(len(sampled)): memory and time
    # never grow with ``total`` (a header may claim 2**31 frames).
    taken = np.unique(np.asarray(sampled, dtype=np.int64))
    taken = taken[(taken >= 0) & (taken < total)]
    free = total - taken.size
    if free <= 0:
        raise ValueError(f"no frame left out of {total} for the image")
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    rng = np.random.default_rng([seed & 0xFFFFFFFF, int.from_bytes(digest, "little")])
    index = int(rng.integers(free))
    for t in taken.tolist():
        if t > index:
            break
        index += 1
    return index


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream | None:
    return container.streams.audio[0] if container.streams.audio else None


def _index_end(stream: av.video.stream.VideoStream) -> int:
    """The byte offset where the stream's last indexed packet ends (0 without an index)."""
    entries = stream.index_entries
    if entries is None or len(entries) == 0:
        return 0
    last = entries[len(entries) - 1]
    return int(last.pos + last.size) if last.pos >= 0 else 0


def _count_packets(path: Path, stage: str) -> int:
    with open_input(path, stage) as container:
        stream = _video_stream(container)
        if stream is None:
            return 0
        try:
            return sum(1 for packet in container.demux(stream) if packet.size > 0)
        except AV_ERRORS as exc:
            raise MediaError(str(path), f"corrupt video data ({exc})", stage) from None


def _codec_name(stream: av.stream.Stream) -> str | None:
    """The stream's codec name; None for a codec FFmpeg does not know (no codec context)."""
    ctx = getattr(stream, "codec_context", None)
    name = getattr(ctx, "name", None) if ctx is not None else None
    return str(name) if name else None


def _stream_size(stream: av.video.stream.VideoStream) -> tuple[int, int]:
    """Stored width and height (0, 0 when the codec is unknown)."""
    ctx = getattr(stream, "codec_context", None)
    width = int(getattr(ctx, "width", 0) or 0) if ctx is not None else 0
    height = int(getattr(ctx, "height", 0) or 0) if ctx is not None else 0
    return width, height


def _rotation(frame: av.VideoFrame) -> int:
    try:
        rot = float(frame.rotation)
    except (AttributeError, TypeError, ValueError):
        return 0
    return round(rot / 90.0) * 90 % 360


@media_errors("probe")
def probe(path: str | Path, decode_first_frame: bool = True) -> MediaInfo:
    """Container metadata of ``path``; with ``decode_first_frame`` also the rotation, and a
    check that the video decodes at all.

    Frame counts come from the container's index when it has one, else from counting
    packets. A file whose index points past its end raises ``MediaError("truncated ...")``.

    >>> probe("clip.mp4").num_frames
    80
    """
    p = check_file(path, "probe")
    frame_count = "container"
    with open_input(p, "probe") as container:
        vstream = _video_stream(container)
        astream = _audio_stream(container)
        fmt = container.format.name
        if vstream is None and astream is None:
            raise MediaError(str(p), "no audio or video stream", "probe")
        cduration = float(container.duration) / 1e6 if container.duration else 0.0
        audio_codec = _codec_name(astream) if astream is not None else None
        if vstream is None:
            return MediaInfo(
                str(p), False, True, 0, 0.0, cduration, 0, 0, 0, None, audio_codec, fmt
            )
        rate = vstream.average_rate or vstream.guessed_rate or vstream.base_rate
        fps = float(rate) if rate else 0.0
        num = int(vstream.frames or 0)
        size = p.stat().st_size
        if num > min(size, MAX_FRAMES):
            num = 0  # an implausible claim: count what the file holds (below)
        end = _index_end(vstream)
        if num > 0 and end > size:
            raise MediaError(
                str(p), f"truncated: {size} bytes, but the index refers to {end}", "probe"
            )
        sduration = (
            float(vstream.duration * vstream.time_base)
            if vstream.duration and vstream.time_base
            else 0.0
        )
        duration = sduration or cduration
        width, height = _stream_size(vstream)
        if width * height > MAX_PIXELS:
            raise MediaError(str(p), f"frames too large: {width}x{height} pixels", "probe")
        rotation = 0
        if decode_first_frame:
            try:
                first = next(iter(container.decode(vstream)), None)
            except AV_ERRORS as exc:
                raise MediaError(str(p), f"corrupt video data ({exc})", "probe") from None
            if first is None:
                raise MediaError(str(p), "no decodable video frames", "probe")
            rotation = _rotation(first)
            width, height = first.width, first.height
        video_codec = _codec_name(vstream)
    if num <= 0:
        num = _count_packets(p, "probe")
        frame_count = "packets"
        if num == 0:
            raise MediaError(str(p), "no video frames", "probe")
    if not duration and fps:
        duration = num / fps
    if not fps and duration:
        fps = num / duration
    if rotation in (90, 270):
        width, height = height, width
    return MediaInfo(
        str(p),
        True,
        astream is not None,
        num,
        fps,
        duration,
        int(width),
        int(height),
        rotation,
        video_codec,
        audio_codec,
        fmt,
        frame_count,
    )


class _Converter:
    """Frame -> RGB uint8 array: early downscale (``max_side``), rotation, final resize
    (Pillow bicubic after the conversion, or swscale during it with ``resize="swscale"``)."""

    def __init__(
        self,
        max_side: int | None,
        size: tuple[int, int] | None,
        autorotate: bool,
        resize: str = "pillow",
    ):
        if resize not in ("pillow", "swscale"):
            raise ValueError(f"resize must be 'pillow' or 'swscale', got {resize!r}")
        self.max_side = max_side
        self.size = size
        self.autorotate = autorotate
        self.resize = resize
        self.rotation = 0  # display rotation of the last frame converted

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        kwargs: dict[str, Any] = {"format": "rgb24"}
        w, h = frame.width, frame.height
        if self.resize == "swscale" and self.size is not None:
            # straight from the decoder's YUV to the model's size in one swscale pass
            rotation = _rotation(frame) if self.autorotate else 0
            th, tw = self.size if rotation not in (90, 270) else self.size[::-1]
            kwargs.update(width=tw, height=th, interpolation=SWSCALE_INTERPOLATION)
        elif self.max_side is not None and max(w, h) > self.max_side:
            scale = self.max_side / max(w, h)
            kwargs.update(
                width=max(1, round(w * scale)),
                height=max(1, round(h * scale)),
                interpolation="AREA",
            )
        arr = frame_to_rgb(frame, **kwargs)
        self.rotation = _rotation(frame)
        if self.autorotate:
            k = self.rotation // 90
            if k:
                arr = np.ascontiguousarray(np.rot90(arr, k=k))
        if self.size is not None and arr.shape[:2] != tuple(self.size):
            img = Image.fromarray(arr).resize(
                (self.size[1], self.size[0]), Image.Resampling.BICUBIC
            )
            arr = np.asarray(img)
        return arr


def _decode_sequential(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    wanted: np.ndarray,
    convert: _Converter,
) -> tuple[dict[int, np.ndarray], int, bool]:
    """Decode from the start, converting only ``wanted`` frames. Returns the kept frames,
    the number of frames decoded and whether the stream ended (or broke) early."""
    wanted_set = set(wanted.tolist())
    last = int(wanted.max())
    kept: dict[int, np.ndarray] = {}
    i = 0
    try:
        for frame in container.decode(stream):
            if i in wanted_set:
                kept[i] = convert(frame)
            i += 1
            if i > last:
                return kept, i, False
    except AV_ERRORS:
        if i == 0:
            raise
    return kept, i, True


def _keyframe_positions(stream: av.video.stream.VideoStream, total: int) -> np.ndarray | None:
    entries = stream.index_entries
    if entries is None or len(entries) != total:
        return None
    flags = np.fromiter((e.is_keyframe for e in entries), dtype=bool, count=total)
    positions = np.flatnonzero(flags)
    return positions if positions.size and positions[0] == 0 else None


def _seek_plan(targets: np.ndarray, keyframes: np.ndarray) -> tuple[np.ndarray, int]:
    """For sorted ``targets``: which ones need a seek (vs. decoding on), and the cost in
    decoded frames of that plan."""
    kf = keyframes[np.searchsorted(keyframes, targets, side="right") - 1]
    prev = np.concatenate([[-1], targets[:-1]])
    seek = kf > prev
    cost = np.where(seek, targets - kf + 1 + SEEK_COST_FRAMES, targets - prev)
    return seek, int(cost.sum())


def _decode_seeking(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    targets: np.ndarray,
    seek: np.ndarray,
    keyframes: np.ndarray,
    total: int,
    convert: _Converter,
) -> tuple[dict[int, np.ndarray], int]:
    """Keyframe seeks to sorted ``targets`` of a constant-frame-rate stream, where a
    frame's index follows from its pts. Stops early (fewer frames kept) when a frame lands
    anywhere unexpected, so the caller can fall back to sequential decoding."""
    entries = stream.index_entries
    start = stream.start_time or 0
    step = float(stream.duration or 0) / total
    kept: dict[int, np.ndarray] = {}
    decoded = 0
    frames = None
    for target, do_seek in zip(targets.tolist(), seek.tolist(), strict=True):
        if do_seek or frames is None:
            kf = int(keyframes[np.searchsorted(keyframes, target, side="right") - 1])
            container.seek(int(entries[kf].timestamp), stream=stream, backward=True)
            frames = container.decode(stream)
        for frame in frames:
            decoded += 1
            if frame.pts is None:
                return kept, decoded
            index = round((frame.pts - start) / step)
            if index == target:
                kept[target] = convert(frame)
                break
            if index > target:
                return kept, decoded
        else:
            break
    return kept, decoded


def _constant_rate(stream: av.video.stream.VideoStream, total: int) -> bool:
    """True when the index's timestamps are evenly spaced (so pts gives the frame index)."""
    entries = stream.index_entries
    if not stream.duration or entries is None or len(entries) != total or total < 2:
        return False
    stamps = np.sort(np.fromiter((e.timestamp for e in entries), dtype=np.int64, count=total))
    gaps = np.diff(stamps)
    return bool(gaps.min() > 0 and gaps.max() - gaps.min() <= 1)


@media_errors("decode")
def sample_video(
    path: str | Path,
    num_frames: int = 16,
    seed: int = 0,
    size: tuple[int, int] | None = None,
    max_side: int | None = None,
    min_frames: int | None = None,
    autorotate: bool = True,
    mode: Literal["auto", "sequential", "seek"] = "auto",
    resize: Literal["pillow", "swscale"] = "pillow",
) -> VideoSample:
    """Sample ``num_frames`` frames uniformly and one held-out image frame from a video.

    ``size=(h, w)`` resizes every returned frame (``resize="pillow"``: Pillow bicubic after
    converting to RGB; ``"swscale"``: FFmpeg's swscale while converting, bilinear, much
    cheaper, ``max_side`` then unused); ``max_side`` downscales
    while decoding (bounded memory for huge videos); ``min_frames`` (default
    ``num_frames + 1``) is the shortest clip accepted. Raises :class:`MediaError` with a
    reason for anything that cannot be sampled.

    >>> s = sample_video("clip.mp4", num_frames=16, seed=0)
    >>> s.frames.shape
    (16, 48, 64, 3)
    """
    info = probe(path, decode_first_frame=False)
    if not info.has_video:
        raise MediaError(info.path, "no video stream", "decode")
    need = max(num_frames + 1, min_frames or 0)
    return _sample(
        Path(info.path), info, info.num_frames, num_frames, seed, need, mode,
        _Converter(max_side, size, autorotate, resize),
    )  # fmt: skip


def _try_seeking(
    p: Path, total: int, targets: np.ndarray, mode: str, convert: _Converter
) -> tuple[dict[int, np.ndarray], int] | None:
    """Frames by keyframe seeks when that is cheaper (or forced); None to decode in order."""
    if mode == "sequential" or (mode == "auto" and total < SEEK_MIN_FRAMES):
        return None
    with open_input(p, "decode") as container:
        stream = _video_stream(container)
        if stream is None:
            return None
        _set_threading(stream)
        keyframes = _keyframe_positions(stream, total)
        if keyframes is None or not _constant_rate(stream, total):
            return None
        seek, cost = _seek_plan(targets, keyframes)
        if mode == "auto" and 3 * cost >= 2 * (int(targets[-1]) + 1):
            return None
        try:
            kept, decoded = _decode_seeking(
                container, stream, targets, seek, keyframes, total, convert
            )
        except AV_ERRORS:
            return None
    return (kept, decoded) if len(kept) == targets.size else None


def _sample(
    p: Path,
    info: MediaInfo,
    total: int,
    num_frames: int,
    seed: int,
    need: int,
    mode: str,
    convert: _Converter,
) -> VideoSample:
    if total < need:
        raise MediaError(str(p), f"too short: {total} frames < {need}", "decode")
    indices = sample_indices(total, num_frames)
    image_index = held_out_index(total, indices, seed, p.name)
    targets = np.unique(np.append(indices, image_index))
    seeking = _try_seeking(p, total, targets, mode, convert)
    if seeking is not None:
        kept, decoded = seeking
    else:
        with open_input(p, "decode") as container:
            stream = _video_stream(container)
            if stream is None:
                raise MediaError(str(p), "no video stream", "decode")
            _set_threading(stream)
            try:
                kept, decoded, ended = _decode_sequential(container, stream, targets, convert)
            except AV_ERRORS as exc:
                raise MediaError(str(p), f"corrupt video data ({exc})", "decode") from None
        if decoded == 0:
            raise MediaError(str(p), "no decodable video frames", "decode")
        if ended and decoded < total:
            # Fewer frames than the container claimed: resample over what decodes.
            if decoded < need:
                raise MediaError(
                    str(p), f"truncated: only {decoded} of {total} frames decode", "decode"
                )
            return _sample(p, info, decoded, num_frames, seed, need, "sequential", convert)
    missing = [t for t in targets.tolist() if t not in kept]
    if missing:
        raise MediaError(str(p), f"could not decode frames {missing[:5]}", "decode")
    if convert.rotation in (90, 270):  # probe without a decoded frame saw the stored size
        info = replace(info, width=info.height, height=info.width)
    return VideoSample(
        frames=np.stack([kept[int(i)] for i in indices]),
        image=kept[image_index],
        frame_indices=indices,
        frames_decoded=decoded,
        image_index=image_index,
        info=replace(info, num_frames=total, rotation=convert.rotation),
    )
