"""Telegram Desktop "Export chat history" (JSON) -> raw post records.

Handles exports as they really are:

- single-chat exports (``result.json`` is one chat with ``messages``) and full-account
  exports (``chats.list[]``, plus ``left_chats.list[]``); the account is the chat;
- ``text`` as a string or a list mixing strings and entity objects; every field optional;
- ``type: "service"`` / ``"unsupported"`` messages (kept as dropped rows with a reason);
- skip strings in place of paths: ``"(File not included. ...)"``,
  ``"(File exceeds maximum size. ...)"``; missing files;
- ``media_type`` ``video_file`` / ``animation`` (GIF, stored as mp4) / ``video_message``
  (round video) / ``voice_message`` / ``audio_file``; photos (``photo``) and images sent
  as files;
- albums: messages sharing a ``grouped_id`` -- or, since Telegram Desktop does not write
  one, consecutive media messages from the same sender with the same timestamp -- are
  merged into one post (the caption's message id, its text, the first video and photo).

Dates come from ``date_unixtime`` (UTC) when present; ``date`` is local time and is read
as UTC otherwise.

Example:
    >>> records = read_telegram_export("exports/ChatExport_2024-03-01")
    >>> df = apply_filter(records)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nmodal.errors import InputError

SOURCE = "telegram-export"
VIDEO_TYPES = ("video_file", "animation", "video_message")
AUDIO_TYPES = ("voice_message", "audio_file")


def find_result_json(path: str | Path) -> Path:
    """``path`` itself when it is a JSON file, else ``path/result.json``."""
    p = Path(path)
    if p.is_file():
        return p
    candidate = p / "result.json"
    if candidate.is_file():
        return candidate
    raise InputError(f"{p}: no result.json (export the chat as JSON from Telegram Desktop)")


def message_text(text: Any) -> str:
    """The plain text of an export's ``text`` field (string, or list of strings and
    entity objects with a ``text`` key).

    >>> message_text(["Look ", {"type": "bold", "text": "here"}, "!"])
    'Look here!'
    """
    if text is None:
        return ""
    if isinstance(text, str):
        return text
    if isinstance(text, list):
        return "".join(
            part if isinstance(part, str) else str(part.get("text", ""))
            for part in text
            if isinstance(part, (str, dict))
        )
    return str(text)


def _skip_reason(value: str) -> str | None:
    """Why an export wrote a placeholder instead of a path (None for a path)."""
    v = value.strip()
    if not (v.startswith("(") and v.endswith(")")):
        return None
    low = v.lower()
    if "not included" in low:
        return "not included in export"
    if "exceeds maximum size" in low:
        return "exceeds the export's maximum file size"
    if "unavailable" in low:
        return "unavailable in export"
    return f"not in export {v}"


def _date(msg: dict[str, Any]) -> datetime | None:
    unix = msg.get("date_unixtime")
    if unix not in (None, ""):
        try:
            return datetime.fromtimestamp(int(unix), tz=timezone.utc)
        except (TypeError, ValueError, OverflowError):
            pass
    date = msg.get("date")
    if isinstance(date, str) and date:
        try:
            d = datetime.fromisoformat(date)
        except ValueError:
            return None
        return d if d.tzinfo else d.replace(tzinfo=timezone.utc)
    return None


def _kind(msg: dict[str, Any]) -> str | None:
    """``video``, ``audio``, ``image`` or None for the message's ``file``."""
    media_type = msg.get("media_type")
    mime = str(msg.get("mime_type") or "")
    if media_type in VIDEO_TYPES or (media_type is None and mime.startswith("video/")):
        return "video"
    if media_type in AUDIO_TYPES or (media_type is None and mime.startswith("audio/")):
        return "audio"
    if media_type is None and mime.startswith("image/"):
        return "image"
    return None


def _media(msg: dict[str, Any], root: Path) -> dict[str, Any]:
    """Absolute media paths of one message and the problems met finding them."""
    found: dict[str, Any] = {"problems": []}

    def take(kind: str, value: Any) -> None:
        if not isinstance(value, str) or not value.strip():
            return
        skip = _skip_reason(value)
        if skip is not None:
            found["problems"].append(f"{kind}: {skip}")
            return
        path = (root / value).resolve()
        if not path.is_file():
            found["problems"].append(f"{kind}: file missing from export ({value})")
            return
        found.setdefault(f"{kind}_path", str(path))

    if "photo" in msg:
        take("image", msg["photo"])
    if "file" in msg:
        kind = _kind(msg)
        if kind is None:
            if msg.get("media_type") == "sticker":
                found["problems"].append("sticker ignored")
        else:
            take(kind, msg["file"])
    media_type = msg.get("media_type") or ("photo" if "photo" in msg else None)
    found["media_type"] = media_type
    return found


def _chats(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if isinstance(data.get("messages"), list):
        yield data
    for key in ("chats", "left_chats"):
        block = data.get(key)
        if isinstance(block, dict) and isinstance(block.get("list"), list):
            yield from (c for c in block["list"] if isinstance(c, dict))


def _album_groups(messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Messages grouped into posts: albums merged, everything else alone."""
    groups: list[list[dict[str, Any]]] = []
    prev_key: tuple[Any, ...] | None = None
    for msg in messages:
        key: tuple[Any, ...] | None = None
        has_media = any(k in msg for k in ("photo", "file"))
        if msg.get("type", "message") == "message" and has_media:
            if msg.get("grouped_id") is not None:
                key = ("g", msg["grouped_id"])
            else:
                stamp = msg.get("date_unixtime") or msg.get("date")
                key = ("t", stamp, msg.get("from_id")) if stamp else None
        same = key is not None and key == prev_key
        if same and key is not None:
            texts = sum(1 for m in groups[-1] + [msg] if message_text(m.get("text")).strip())
            same = texts <= 1 or key[0] == "g"
        if same:
            groups[-1].append(msg)
        else:
            groups.append([msg])
        prev_key = key
    return groups


def _record(
    group: list[dict[str, Any]], chat: dict[str, Any], account: str, key: str, root: Path
) -> dict[str, Any]:
    texts = [message_text(m.get("text")) for m in group]
    captioned = next((i for i, t in enumerate(texts) if t.strip()), 0)
    lead = group[captioned]
    rec: dict[str, Any] = {
        "post_id": f"{key}/{lead.get('id')}",
        "source": SOURCE,
        "account": account,
        "message_id": lead.get("id"),
        "date": _date(lead),
        "text": texts[captioned],
        "problems": [],
    }
    mtype = lead.get("type", "message")
    if mtype == "service":
        rec["drop"] = f"service message ({lead.get('action', 'unknown action')})"
        return rec
    if mtype != "message":
        rec["drop"] = f"{mtype} message"
        return rec
    media_types = []
    extra = 0
    for msg in group:
        found = _media(msg, root)
        rec["problems"] += found["problems"]
        for col in ("video_path", "image_path", "audio_path"):
            if col in found:
                if col in rec:
                    extra += 1
                else:
                    rec[col] = found[col]
        if found["media_type"]:
            media_types.append(found["media_type"])
    if len(group) > 1:
        rec["media_type"] = "album"
        ids = ",".join(str(m.get("id")) for m in group)
        rec["problems"].append(f"album of messages {ids}")
        if extra:
            rec["problems"].append(f"album: {extra} more media files not used")
    else:
        rec["media_type"] = media_types[0] if media_types else None
    return rec


def read_telegram_export(path: str | Path, merge_albums: bool = True) -> list[dict[str, Any]]:
    """Raw post records (see :mod:`nmodal.sources.filtering`) of one export.

    ``path`` is the export folder or its ``result.json``. Media paths are absolute.
    """
    result = find_result_json(path)
    try:
        data = json.loads(result.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{result}: not a Telegram JSON export ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{result}: not a Telegram JSON export (top level is not an object)")
    root = result.parent.resolve()
    records: list[dict[str, Any]] = []
    chats = list(_chats(data))
    if not chats:
        raise InputError(f"{result}: no messages and no chats.list in this export")
    for chat in chats:
        name = chat.get("name")
        chat_id = chat.get("id")
        account = (
            str(name) if name else (f"chat{chat_id}" if chat_id is not None else result.parent.name)
        )
        key = str(chat_id) if chat_id is not None else account
        messages = [m for m in chat.get("messages", []) if isinstance(m, dict)]
        groups = _album_groups(messages) if merge_albums else [[m] for m in messages]
        records.extend(_record(g, chat, account, key, root) for g in groups)
    return records
