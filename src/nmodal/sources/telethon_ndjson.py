"""Telethon ``Message.to_dict()`` records (NDJSON or a JSON array) -> raw post records.

This is what OSINT collectors such as telegram-tracker and 4CAT write (and what
``nmodal collect`` writes): per message ``id``, ``date``, ``message`` (the text),
``peer_id`` (``{"_": "PeerChannel", "channel_id": ...}``), ``media`` (``MessageMediaDocument``
with ``mime_type`` and ``attributes``, or ``MessageMediaPhoto``), ``grouped_id`` (albums)
and ``_`` = ``"MessageService"`` for service messages.

The account is, in order: ``--account``; a collector's chat field (``_chat.username``,
``chat.username``, ``channel_name``, ``_chat.title``); ``channel<id>`` from ``peer_id``.
Media files are found from a path field in the record (``media_path``, ``file_path``,
``local_path``) or in ``media_dir`` as ``<account>/<id>.*``, ``<account>_<id>.*`` or
``<id>.*``.

Example:
    >>> records = read_telethon_ndjson("messages.ndjson", media_dir="media")
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nmodal.errors import InputError

SOURCE = "telethon-ndjson"
PATH_FIELDS = ("media_path", "file_path", "local_path", "media_file")


def iter_json_records(path: Path) -> Iterator[dict[str, Any]]:
    """Objects of an NDJSON file, or of a file holding one JSON array."""
    with path.open(encoding="utf-8") as fh:
        head = fh.read(1)
        while head and head.isspace():
            head = fh.read(1)
        if head == "[":
            fh.seek(0)
            try:
                data = json.load(fh)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: not JSON ({exc.msg})") from None
            yield from (r for r in data if isinstance(r, dict))
            return
        fh.seek(0)
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: not JSON ({exc.msg})") from None
            if isinstance(row, dict):
                yield row


def _get(d: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def account_of(msg: dict[str, Any]) -> str | None:
    """The channel a Telethon message dict belongs to (see the module docs)."""
    for keys in (
        ("_chat", "username"),
        ("chat", "username"),
        ("channel_name",),
        ("channel_username",),
        ("_chat", "title"),
        ("chat", "title"),
    ):
        value = _get(msg, *keys)
        if value:
            return str(value)
    peer = msg.get("peer_id") or msg.get("to_id")
    if isinstance(peer, dict):
        for key, prefix in (("channel_id", "channel"), ("chat_id", "chat"), ("user_id", "user")):
            if peer.get(key) is not None:
                return f"{prefix}{peer[key]}"
    return None


def media_kind(media: Any) -> tuple[str | None, str | None]:
    """``(kind, media_type)`` of a Telethon media dict: kind is video/image/audio/None,
    media_type follows the Telegram Desktop names (video_file, animation, ...)."""
    if not isinstance(media, dict):
        return None, None
    if media.get("_") == "MessageMediaPhoto":
        return "image", "photo"
    doc = media.get("document")
    if media.get("_") != "MessageMediaDocument" or not isinstance(doc, dict):
        return None, None
    mime = str(doc.get("mime_type") or "")
    attrs = {a.get("_"): a for a in doc.get("attributes") or [] if isinstance(a, dict)}
    if "DocumentAttributeSticker" in attrs:
        return None, "sticker"
    video = attrs.get("DocumentAttributeVideo")
    if video is not None or mime.startswith("video/"):
        if video is not None and video.get("round_message"):
            return "video", "video_message"
        if "DocumentAttributeAnimated" in attrs:
            return "video", "animation"
        return "video", "video_file"
    audio = attrs.get("DocumentAttributeAudio")
    if audio is not None or mime.startswith("audio/"):
        return "audio", "voice_message" if audio and audio.get("voice") else "audio_file"
    if mime.startswith("image/"):
        return "image", "photo"
    return None, None


class _MediaIndex:
    """Files under a media folder by stem, for lookups by message id."""

    def __init__(self, media_dir: Path | None) -> None:
        self.by_name: dict[str, list[Path]] = defaultdict(list)
        if media_dir is not None:
            for f in media_dir.rglob("*"):
                if f.is_file() and not f.name.startswith("."):
                    self.by_name[f.stem].append(f)
                    self.by_name[f"{f.parent.name}/{f.stem}"].append(f)

    def find(self, account: str | None, msg_id: Any, file_name: str | None) -> Path | None:
        keys = [f"{account}/{msg_id}", f"{account}_{msg_id}", str(msg_id)]
        if file_name:
            keys.append(Path(file_name).stem)
        for key in keys:
            hits = [h for h in self.by_name.get(key, []) if not h.name.endswith("_thumb.jpg")]
            if hits:
                return sorted(hits)[0]
        return None


def read_telethon_ndjson(
    path: str | Path, media_dir: str | Path | None = None, account: str | None = None
) -> list[dict[str, Any]]:
    """Raw post records (see :mod:`nmodal.sources.filtering`); albums (``grouped_id``)
    merged into one post. A relative path field is looked up in ``path``'s folder, then
    in ``media_dir``."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    root = p.parent.resolve()
    index = _MediaIndex(Path(media_dir).resolve() if media_dir is not None else None)
    if media_dir is not None and not Path(media_dir).is_dir():
        raise InputError(f"{media_dir}: media folder not found")
    records: list[dict[str, Any]] = []
    albums: dict[tuple[str, Any], dict[str, Any]] = {}
    for msg in iter_json_records(p):
        acct = account or account_of(msg) or p.stem
        msg_id = msg.get("id")
        text = msg.get("message") or ""
        rec: dict[str, Any] = {
            "post_id": f"{acct}/{msg_id}",
            "source": SOURCE,
            "account": acct,
            "message_id": msg_id,
            "date": msg.get("date"),
            "text": text if isinstance(text, str) else str(text),
            "problems": [],
        }
        if msg.get("_") == "MessageService":
            action = _get(msg, "action", "_") or "unknown action"
            rec["drop"] = f"service message ({action})"
            records.append(rec)
            continue
        kind, media_type = media_kind(msg.get("media"))
        rec["media_type"] = media_type
        if kind is not None:
            local = next((msg[f] for f in PATH_FIELDS if isinstance(msg.get(f), str)), None)
            file_name = None
            for a in _get(msg, "media", "document", "attributes") or []:
                if isinstance(a, dict) and a.get("_") == "DocumentAttributeFilename":
                    file_name = a.get("file_name")
            if local:
                bases = [root] + ([Path(media_dir).resolve()] if media_dir is not None else [])
                found = next(
                    (b / local for b in bases if (b / local).is_file()), (root / local).resolve()
                )
            else:
                found = index.find(acct, msg_id, file_name)
            if found is not None and found.is_file():
                rec[f"{kind}_path"] = str(found)
            else:
                rec["problems"].append(f"{kind}: media file not downloaded")
        group = msg.get("grouped_id")
        if group is not None and (acct, group) in albums:
            lead = albums[(acct, group)]
            lead["media_type"] = "album"
            if rec["text"].strip() and not lead["text"].strip():
                for key in ("post_id", "message_id", "text", "date"):
                    lead[key] = rec[key]
            for col in ("video_path", "image_path", "audio_path"):
                if col in rec and col not in lead:
                    lead[col] = rec[col]
            lead["problems"] += rec["problems"]
            continue
        if group is not None:
            albums[(acct, group)] = rec
        records.append(rec)
    return records
