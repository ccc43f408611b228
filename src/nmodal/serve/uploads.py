"""Upload safety: a request body size limit (ASGI middleware) and file type checks.

The size limit applies to every request body: a declared ``Content-Length`` above the limit
is refused before anything is parsed, and a body streamed without one is counted as it
arrives. The rest of an oversized body is read and discarded (up to ``drain_max`` bytes,
never kept) before the 413 answer, so ordinary HTTP clients that send the whole body before
reading the answer see the 413 instead of a reset connection.

File types are recognised from their first bytes (magic numbers), never from the name alone;
a declared content type that contradicts them is refused.

Example:
    >>> sniff(b"\\x89PNG\\r\\n\\x1a\\n....")
    ('png', ('image',))
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class UploadTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than the limit of {limit} bytes")


class BodySizeLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int, drain_max: int | None = None) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)
        self.drain_max = (
            int(drain_max) if drain_max is not None else max(4 * self.max_bytes, 256 << 20)
        )

    async def _drain(self, receive: Receive, seen: int) -> None:
        more = True
        while more and seen <= self.drain_max:
            message = await receive()
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            more = bool(message.get("more_body", False))

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {"detail": f"request body larger than the limit of {self.max_bytes} bytes"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
        if declared is not None and declared > self.max_bytes:
            if declared <= self.drain_max:
                await self._drain(receive, 0)
            await self._refuse(send)
            return

        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    if message.get("more_body", False):
                        await self._drain(receive, seen)
                    raise UploadTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except UploadTooLarge:
            if not started:
                await self._refuse(send)


# (offset, magic, format, query kinds it can be used as, first = default)
_MAGIC: tuple[tuple[int, bytes, str, tuple[str, ...]], ...] = (
    (0, b"\xff\xd8\xff", "jpeg", ("image",)),
    (0, b"\x89PNG\r\n\x1a\n", "png", ("image",)),
    (0, b"GIF87a", "gif", ("image",)),
    (0, b"GIF89a", "gif", ("image",)),
    (0, b"BM", "bmp", ("image",)),
    (0, b"\x1a\x45\xdf\xa3", "matroska", ("video", "audio")),
    (0, b"OggS", "ogg", ("audio", "video")),
    (0, b"fLaC", "flac", ("audio",)),
    (0, b"ID3", "mp3", ("audio",)),
    (0, b"\xff\xfb", "mp3", ("audio",)),
    (0, b"\xff\xf3", "mp3", ("audio",)),
    (0, b"\xff\xf2", "mp3", ("audio",)),
)

_AUDIO_BRANDS = (b"M4A ", b"M4B ", b"M4P ")

SUFFIX = {
    "jpeg": ".jpg", "png": ".png", "gif": ".gif", "bmp": ".bmp", "webp": ".webp",
    "matroska": ".mkv", "ogg": ".ogg", "flac": ".flac", "mp3": ".mp3", "mp4": ".mp4",
    "avi": ".avi", "wav": ".wav",
}  # fmt: skip


def sniff(head: bytes) -> tuple[str, tuple[str, ...]] | None:
    """``(format, possible query kinds)`` from a file's first bytes, or None if unknown."""
    if head[:4] == b"RIFF" and len(head) >= 12:
        kind = head[8:12]
        if kind == b"WEBP":
            return "webp", ("image",)
        if kind == b"WAVE":
            return "wav", ("audio",)
        if kind == b"AVI ":
            return "avi", ("video",)
        return None
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _AUDIO_BRANDS:
            return "mp4", ("audio",)
        if brand in (b"avif", b"avis", b"heic", b"heix", b"mif1"):
            return None  # still-image containers the decoders here do not read
        return "mp4", ("video", "audio")
    for offset, magic, fmt, kinds in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return fmt, kinds
    return None


def declared_family(content_type: str | None) -> str | None:
    """``image``/``video``/``audio`` from a MIME type; None when it says nothing useful."""
    if not content_type:
        return None
    family = content_type.split(";")[0].strip().lower().split("/")[0]
    return family if family in ("image", "video", "audio") else None
