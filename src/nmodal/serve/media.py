"""Serving a collection's media safely: path containment and thumbnails.

Media paths in the posts table are relative to the dataset directory or absolute. A path is
served only if, after resolving ``..`` and symbolic links, it lies inside the dataset
directory: anything else is refused, whatever the table says.

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

from nmodal.errors import MediaError

THUMB_SIZE = 320


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


def _image_thumbnail(path: Path, size: int) -> bytes:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            im = (ImageOps.exif_transpose(opened) or opened).convert("RGB")
            im.thumbnail((size, size))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=80)
            return buf.getvalue()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise MediaError(str(path), f"cannot make a thumbnail ({exc})", stage="thumbnail") from exc


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
        raise MediaError(str(path), f"cannot make a thumbnail ({exc})", stage="thumbnail") from exc
    raise MediaError(str(path), "no decodable video frame", stage="thumbnail")


@lru_cache(maxsize=2048)
def _cached_thumbnail(path: str, mtime_ns: int, kind: str, size: int) -> bytes:
    if kind == "video":
        return _video_thumbnail(Path(path), size)
    return _image_thumbnail(Path(path), size)


def thumbnail(path: Path, kind: str, size: int = THUMB_SIZE) -> bytes:
    """JPEG thumbnail of an image, or of a frame a third into a video (cached)."""
    return _cached_thumbnail(str(path), path.stat().st_mtime_ns, kind, size)
