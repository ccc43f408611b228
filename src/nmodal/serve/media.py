"""Serving a collection's media safely: path containment and thumbnails.

Thumbnails are JPEGs of an image or of a video frame, or PNG waveforms of an audio track
(decoded with :func:`nmodal.media.load_audio` to 16 kHz mono, its first
``WAVE_MAX_SECONDS``). A file that cannot be decoded raises :class:`MediaError` with the
reason.

The files that may be served are exactly the ones the index recorded at build time
(:mod:`nmodal.index.build`): each post's media paths, resolved once and kept only inside the
post's ``media_root`` (the boundary decided at ingest, wherever the export lies), with the
roots listed in the index manifest. :func:`served_file` serves a post's recorded file only
if, resolved again now (a symlink may have changed since), it still lies inside that root
and the root is one the manifest lists; a path from a request is never used. Indexes from
before ``media_root`` was recorded fall back to the old rule: inside the dataset directory.

Example:
    >>> resolve_inside(Path("/data/tg"), "media/1.jpg")  # doctest: +SKIP
    PosixPath('/data/tg/media/1.jpg')
    >>> resolve_inside(Path("/data/tg"), "../../etc/passwd")  # doctest: +SKIP
    Traceback (most recent call last):
    PermissionError: ../../etc/passwd: outside the collection directory
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np

from nmodal.errors import MediaError

THUMB_SIZE = 320
#: the media type of each kind's thumbnail
THUMB_TYPES = {"image": "image/jpeg", "video": "image/jpeg", "audio": "image/png"}
WAVE_RATE = 16_000
#: a waveform shows at most the first this many seconds of a recording
WAVE_MAX_SECONDS = 300.0
#: peaks below this level are not amplified to full height: near-silence stays flat
WAVE_FLOOR = 1 / 32
WAVE_BACKGROUND = (233, 236, 241)
WAVE_AXIS = (184, 192, 204)
WAVE_PEAK = (31, 95, 191)
WAVE_RMS = (16, 52, 110)


def resolve_inside(root: Path, value: str) -> Path:
    """The real path of media ``value`` if it is a file inside ``root``.

    Raises PermissionError when it points outside ``root``, FileNotFoundError when missing.
    """
    if "\x00" in value:
        raise PermissionError(f"{value!r}: invalid path")
    base = root.resolve()
    raw = Path(value)
    resolved = (raw if raw.is_absolute() else base / raw).resolve()
    if not resolved.is_relative_to(base):
        raise PermissionError(f"{value}: outside the collection directory")
    if not resolved.is_file():
        raise FileNotFoundError(f"{value}: no such file")
    return resolved


def served_file(
    value: str, media_root: str | None, roots: list[str], dataset_dir: Path | None
) -> Path:
    """The real path of a post's recorded media file ``value`` (see the module docs).

    Raises PermissionError when it lies outside its root (or the root is not one of the
    index's ``roots``), FileNotFoundError when the file is gone.
    """
    if media_root:
        if media_root not in roots or not Path(value).is_absolute():
            raise PermissionError(f"{value}: not a file this index serves")
        return resolve_inside(Path(media_root), value)
    if dataset_dir is None:
        raise PermissionError(f"{value}: this index records no media root")
    return resolve_inside(dataset_dir, value)


def _reason(exc: BaseException, path: Path) -> str:
    """Why decoding failed, without the file's path (the page and the API never show
    server paths): PyAV's and Pillow's messages often end with the file name."""
    text = str(getattr(exc, "strerror", None) or exc or type(exc).__name__)
    for spelled in {str(path), str(path.resolve()), repr(str(path))}:
        text = text.replace(spelled, "the file")
    return text.replace("'the file'", "the file").rstrip(": ")


def _image_thumbnail(path: Path, size: int) -> bytes:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            im = (ImageOps.exif_transpose(opened) or opened).convert("RGB")
            im.thumbnail((size, size))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=80)
            return buf.getvalue()
    except UnidentifiedImageError as exc:
        raise MediaError(str(path), "not an image file Pillow can read", "thumbnail") from exc
    except Image.DecompressionBombError as exc:
        raise MediaError(str(path), "picture too large to decode", "thumbnail") from exc
    except (OSError, ValueError) as exc:
        reason = f"cannot make a thumbnail ({_reason(exc, path)})"
        raise MediaError(str(path), reason, stage="thumbnail") from exc


def _video_thumbnail(path: Path, size: int) -> bytes:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(str(path), "no video stream", stage="thumbnail")
            stream = container.streams.video[0]
            if container.duration and container.duration > 0:
                # a frame a third into the clip: first frames are often black titles
                container.seek(container.duration // 3, any_frame=False, backward=True)
            for frame in container.decode(stream):
                im = frame.to_image()
                im.thumbnail((size, size))
                buf = io.BytesIO()
                im.convert("RGB").save(buf, "JPEG", quality=80)
                return buf.getvalue()
    except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
        reason = f"cannot make a thumbnail ({_reason(exc, path)})"
        raise MediaError(str(path), reason, stage="thumbnail") from exc
    raise MediaError(str(path), "no decodable video frame", stage="thumbnail")


def waveform_png(wave: np.ndarray, width: int, height: int) -> bytes:
    """A PNG of ``wave`` (float32 in [-1, 1]): per pixel column the min/max envelope, the
    RMS inside it, on a centre line. Scaled to its peak (at least ``WAVE_FLOOR``)."""
    from PIL import Image, ImageDraw

    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    im = Image.new("RGB", (width, height), WAVE_BACKGROUND)
    draw = ImageDraw.Draw(im)
    mid = (height - 1) / 2
    draw.line([(0, round(mid)), (width - 1, round(mid))], fill=WAVE_AXIS)
    if wave.size:
        # column x covers samples [starts[x], starts[x + 1]): at least one sample each
        starts = (np.arange(width) * wave.size) // width
        lows = np.minimum.reduceat(wave, starts)
        highs = np.maximum.reduceat(wave, starts)
        counts = np.diff(np.append(starts, wave.size)).clip(min=1)
        rms = np.sqrt(np.add.reduceat(wave.astype(np.float64) ** 2, starts) / counts)
        gain = (mid - 1) / max(float(np.abs(wave).max()), WAVE_FLOOR)
        top = np.round(mid - highs * gain).astype(int)
        bottom = np.round(mid - lows * gain).astype(int)
        band = np.round(rms * gain).astype(int)
        for x in range(width):
            if bottom[x] > top[x]:
                draw.line([(x, top[x]), (x, bottom[x])], fill=WAVE_PEAK)
            if band[x] > 0:
                draw.line([(x, round(mid) - band[x]), (x, round(mid) + band[x])], fill=WAVE_RMS)
    buf = io.BytesIO()
    im.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _audio_thumbnail(path: Path, size: int) -> bytes:
    from nmodal.media import load_audio  # lazy: PyAV only for audio thumbnails

    try:
        wave = load_audio(path, sample_rate=WAVE_RATE, max_seconds=WAVE_MAX_SECONDS)
    except MediaError as exc:
        raise MediaError(
            str(path), f"cannot make a waveform ({exc.reason})", stage="thumbnail"
        ) from None
    return waveform_png(wave, size, size * 3 // 4)


@lru_cache(maxsize=2048)
def _cached_thumbnail(path: str, mtime_ns: int, kind: str, size: int) -> bytes:
    if kind == "video":
        return _video_thumbnail(Path(path), size)
    if kind == "audio":
        return _audio_thumbnail(Path(path), size)
    return _image_thumbnail(Path(path), size)


def thumbnail(path: Path, kind: str, size: int = THUMB_SIZE) -> bytes:
    """Thumbnail of a media file (cached): a JPEG of an image or of a frame a third into a
    video, or a ``size`` x ``3/4 size`` PNG waveform of an audio track (``THUMB_TYPES``)."""
    return _cached_thumbnail(str(path), path.stat().st_mtime_ns, kind, size)
