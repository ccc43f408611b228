"""Opening media files with PyAV, turning every failure into a :class:`MediaError`."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ParamSpec, TypeVar

import av
import av.container

from nmodal.errors import MediaError

P = ParamSpec("P")
R = TypeVar("R")

# Exceptions PyAV raises for unreadable or undecodable input.
AV_ERRORS: tuple[type[BaseException], ...] = (av.FFmpegError, OSError, ValueError, EOFError)

_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftyp", "mp4"),
    (0, b"\x1a\x45\xdf\xa3", "matroska/webm"),
    (0, b"RIFF", "riff"),
    (0, b"GIF8", "gif"),
    (0, b"OggS", "ogg"),
    (0, b"ID3", "mp3"),
    (0, b"fLaC", "flac"),
)


def sniff_kind(path: Path) -> str | None:
    """The container kind recognised from the first bytes of ``path``, or None."""
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError:
        return None
    for offset, magic, kind in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return kind
    return None


def _contains(path: Path, needle: bytes, chunk: int = 1 << 20) -> bool:
    tail = b""
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            if needle in tail + block:
                return True
            tail = block[-len(needle) :]
    return False


def explain_open_error(path: Path, exc: BaseException) -> str:
    """A short human reason for why ``av.open`` failed on ``path``."""
    kind = sniff_kind(path)
    if kind is None:
        return "not a media file"
    if kind == "mp4" and not _contains(path, b"moov"):
        return "truncated: mp4 without its index (moov atom), e.g. an interrupted download"
    detail = str(exc).split(":")[0].strip() or type(exc).__name__
    return f"truncated or corrupt {kind} file ({detail})"


def check_file(path: str | Path, stage: str) -> Path:
    """``path`` as a Path; MediaError if it is missing, not a file or empty."""
    p = Path(path)
    if not p.exists():
        raise MediaError(str(p), "file not found", stage)
    if not p.is_file():
        raise MediaError(str(p), "not a file", stage)
    if p.stat().st_size == 0:
        raise MediaError(str(p), "empty file", stage)
    return p


@contextmanager
def open_input(path: str | Path, stage: str) -> Iterator[av.container.InputContainer]:
    """Open ``path`` for reading; any PyAV failure becomes a MediaError with a reason."""
    p = check_file(path, stage)
    try:
        container = av.open(str(p), mode="r", metadata_errors="ignore")
    except AV_ERRORS as exc:
        raise MediaError(str(p), explain_open_error(p, exc), stage) from None
    try:
        yield container
    finally:
        container.close()


def media_errors(stage: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a public media function (first argument: the path) so that any exception
    other than :class:`MediaError` (a PyAV or Pillow error, an ``AttributeError`` on a codec
    FFmpeg does not know, ``MemoryError``) becomes a :class:`MediaError` naming the file."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except MediaError:
                raise
            except (KeyboardInterrupt, SystemExit, GeneratorExit):
                raise
            except Exception as exc:
                path = args[0] if args else kwargs.get("path", "?")
                reason = f"unreadable ({type(exc).__name__}: {str(exc)[:200]})"
                raise MediaError(str(path), reason, stage) from exc

        return inner

    return wrap
