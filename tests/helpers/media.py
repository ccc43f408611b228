"""Real media files for tests, written with PyAV (video, audio) and Pillow (images).

Every video frame carries its own index as a barcode (:func:`frame_pattern`), so a test
can read back which frame a decoder returned (:func:`read_frame_index`) instead of
trusting the decoder's own bookkeeping. Sizes are tiny (64x48 by default) so tests stay
fast.

Example:
    >>> import nmodal.media
    >>> p = write_video(tmp / "clip.mp4", num_frames=80, fps=25, audio=True)
    >>> read_frame_index(nmodal.media.sample_video(p).frames[0])
    2
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

BITS = 8  # stripes per barcode row; two rows -> indices up to 2**16 - 1


def frame_pattern(index: int, height: int = 48, width: int = 64) -> np.ndarray:
    """An RGB frame whose top half encodes bits 0-7 and bottom half bits 8-15 of ``index``.

    Each bit is a vertical stripe ``width // 8`` pixels wide: white for 1, black for 0.
    A red corner marker (top-left 1/4 x 1/4) makes orientation visible.
    """
    if not 0 <= index < 2 ** (2 * BITS):
        raise ValueError(f"index {index} out of range")
    bits = (index >> np.arange(2 * BITS)) & 1
    cols = np.minimum(np.arange(width) * BITS // width, BITS - 1)
    rows_low = np.arange(height) < height // 2
    bit_of_pixel = np.where(rows_low[:, None], bits[cols][None, :], bits[BITS + cols][None, :])
    img = np.repeat((bit_of_pixel * 255).astype(np.uint8)[:, :, None], 3, axis=2)
    img[: max(1, height // 8), : max(1, width // 16)] = (255, 0, 0)
    return img


def read_frame_index(frame: np.ndarray) -> int:
    """Decode the barcode of :func:`frame_pattern` from a (possibly lossy) RGB frame."""
    h, w = frame.shape[:2]
    grey = frame.astype(np.float32).mean(axis=2)
    centres = ((np.arange(BITS) + 0.5) * w / BITS).astype(int)
    low = grey[h // 4 + h // 16 : h // 2 - h // 16, :][:, centres].mean(axis=0) > 127
    high = grey[h // 2 + h // 16 : 3 * h // 4 + h // 16, :][:, centres].mean(axis=0) > 127
    bits = np.concatenate([low, high]).astype(np.int64)
    return int((bits << np.arange(2 * BITS)).sum())


def _add_audio_stream(
    container: av.container.OutputContainer, codec: str, sample_rate: int
) -> av.audio.stream.AudioStream:
    stream = container.add_stream(codec, rate=sample_rate)
    stream.layout = "mono"
    return stream


def _encode_audio(
    container: av.container.OutputContainer,
    stream: av.audio.stream.AudioStream,
    seconds: float,
    sample_rate: int,
    freq: float,
    amplitude: float,
    codec: str,
) -> None:
    fmt = "s16" if codec.startswith("pcm_s16") else "fltp"
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    wave = (amplitude * np.sin(2 * math.pi * freq * t)).astype(np.float32)
    frame_size = 1024
    for start in range(0, n, frame_size):
        chunk = wave[start : start + frame_size]
        data = (chunk * 32767).round().astype(np.int16) if fmt == "s16" else chunk
        frame = av.AudioFrame.from_ndarray(data[None, :], format=fmt, layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def write_video(
    path: str | Path,
    num_frames: int = 80,
    fps: int = 25,
    width: int = 64,
    height: int = 48,
    audio: bool = False,
    audio_seconds: float | None = None,
    audio_freq: float = 440.0,
    audio_amplitude: float = 0.5,
    sample_rate: int = 16000,
    codec: str = "libx264",
    rotation: int = 0,
    gop: int | None = None,
    timestamps_ms: list[int] | None = None,
    faststart: bool = False,
    preset: str = "veryfast",
) -> Path:
    """Write an mp4 (H.264 + optional AAC) whose frame ``i`` is ``frame_pattern(i)``.

    ``rotation``: counter-clockwise display rotation stored in the display matrix.
    ``timestamps_ms``: explicit presentation times (variable frame rate), one per frame.
    ``faststart``: put the index (moov) before the data, as streaming-ready files do.
    ``preset``: the x264 speed preset ("ultrafast" for big frames).
    """
    path = Path(path)
    options = {"crf": "12", "preset": preset} if codec == "libx264" else {}
    if gop is not None:
        options["g"] = str(gop)
        options["keyint_min"] = str(gop)
    container_options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=container_options) as container:
        stream = container.add_stream(codec, rate=fps, options=options)
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        if timestamps_ms is not None:
            if len(timestamps_ms) != num_frames:
                raise ValueError("one timestamp per frame")
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        audio_stream = _add_audio_stream(container, "aac", sample_rate) if audio else None
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(frame_pattern(i, height, width), format="rgb24")
            if timestamps_ms is not None:
                frame.pts = timestamps_ms[i]
                frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        if audio_stream is not None:
            seconds = num_frames / fps if audio_seconds is None else audio_seconds
            _encode_audio(
                container, audio_stream, seconds, sample_rate, audio_freq, audio_amplitude, "aac"
            )
    return path


def write_vfr_video(path: str | Path, num_frames: int = 80, seed: int = 0) -> Path:
    """An mp4 with irregular frame durations (20-120 ms), i.e. variable frame rate."""
    rng = np.random.default_rng(seed)
    gaps = rng.integers(20, 121, size=num_frames)
    stamps = np.concatenate([[0], np.cumsum(gaps[:-1])]).tolist()
    return write_video(path, num_frames=num_frames, fps=1000, timestamps_ms=stamps)


def write_round_video(path: str | Path, num_frames: int = 80, side: int = 64) -> Path:
    """A Telegram "round video" (video message): square, with sound."""
    return write_video(path, num_frames=num_frames, width=side, height=side, audio=True)


def write_gif(
    path: str | Path, num_frames: int = 20, fps: int = 10, width: int = 64, height: int = 48
) -> Path:
    """A real GIF file (palette frames), frame ``i`` = ``frame_pattern(i)``."""
    path = Path(path)
    with av.open(str(path), "w", format="gif") as container:
        stream = container.add_stream("gif", rate=fps)
        stream.width = width
        stream.height = height
        stream.pix_fmt = "rgb8"
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(frame_pattern(i, height, width), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def write_audio(
    path: str | Path,
    seconds: float = 2.0,
    freq: float = 440.0,
    amplitude: float = 0.5,
    sample_rate: int = 16000,
    codec: str | None = None,
) -> Path:
    """An audio-only file with a sine wave (``amplitude=0`` for silence).

    The codec follows the suffix: ``.m4a`` -> AAC, ``.wav`` -> PCM s16, ``.ogg`` -> Opus.
    """
    path = Path(path)
    default = {".wav": "pcm_s16le", ".ogg": "libopus", ".mp3": "libmp3lame"}
    codec = codec or default.get(path.suffix.lower(), "aac")
    fmt = "mp4" if path.suffix.lower() == ".m4a" else None
    with av.open(str(path), "w", format=fmt) as container:
        stream = _add_audio_stream(container, codec, sample_rate)
        _encode_audio(container, stream, seconds, sample_rate, freq, amplitude, codec)
    return path


def write_truncated(src: str | Path, dst: str | Path, keep: float = 0.5) -> Path:
    """Copy the first ``keep`` fraction of ``src``'s bytes to ``dst`` (an interrupted download)."""
    data = Path(src).read_bytes()
    dst = Path(dst)
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def write_corrupt(path: str | Path, kind: str = "garbage", seed: int = 0) -> Path:
    """A file that is not media: ``garbage`` (random bytes), ``text`` or ``empty``."""
    path = Path(path)
    if kind == "garbage":
        path.write_bytes(np.random.default_rng(seed).integers(0, 256, 4096, np.uint8).tobytes())
    elif kind == "text":
        path.write_text("<html><body>404 Not Found</body></html>\n")
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        raise ValueError(kind)
    return path


def write_image(
    path: str | Path,
    width: int = 64,
    height: int = 48,
    mode: str = "RGB",
    exif_orientation: int | None = None,
    index: int = 5,
) -> Path:
    """A jpg/png/gif/webp image of ``frame_pattern(index)`` in the given Pillow ``mode``.

    ``exif_orientation`` (1-8) is written into the EXIF of a JPEG.
    """
    path = Path(path)
    img = Image.fromarray(frame_pattern(index, height, width))
    if mode == "RGBA":
        img = img.convert("RGBA")
    elif mode != "RGB":
        img = img.convert(mode)
    kwargs: dict[str, object] = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    if path.suffix.lower() in (".jpg", ".jpeg"):
        kwargs["quality"] = 95
    img.save(path, **kwargs)
    return path
