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
  one, Telegram's own rule: up to 10 consecutive message ids from the same sender, photos
  and videos together (or audio files, or documents), sent within ``ALBUM_SECONDS`` of each
  other, with at most one caption -- are merged into one post (the caption's message id,
  its text, the first video and photo; ``album_id`` names the album);
- provenance (:mod:`nmodal.sources.provenance`): ``forwarded_from`` / ``forwarded_from_id``,
  ``reply_to_message_id``, ``edited``, ``author`` (a channel's signature), ``from`` /
  ``from_id``, ``reactions``, and a t.me link;
- kinds nmodal does not encode (documents such as PDFs, stickers, polls, contacts,
  locations, games, invoices) are recorded per post in ``skipped_media``;
- every media path resolved inside the export folder (:mod:`nmodal.sources.paths`); a
  message that cannot be read becomes one ``bad record`` row naming the file and message.

Dates come from ``date_unixtime`` (UTC) when present; ``date`` is local time and is read
as UTC otherwise.

Example:
    >>> records = read_telegram_export("exports/ChatExport_2024-03-01")  # doctest: +SKIP
    >>> df = apply_filter(records)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nmodal.errors import InputError
from nmodal.sources.paths import MediaRoot
from nmodal.sources.provenance import reactions_json, telegram_url
from nmodal.sources.records import (
    bad_record,
    clean_str,
    dedup_notes,
    holds_too_deep,
    load_json_document,
    safe_int,
    safe_key,
    safe_text,
)

SOURCE = "telegram-export"
VIDEO_TYPES = ("video_file", "animation", "video_message")
AUDIO_TYPES = ("voice_message", "audio_file")
#: an album's messages are sent within this many seconds of each other (Telegram sends them
#: in one request; the export's timestamps of one album can straddle a second boundary)
ALBUM_SECONDS = 3
ALBUM_MAX = 10
#: message fields of kinds nmodal does not encode -> the kind counted in ``skipped_media``
SKIPPED_FIELDS = {
    "poll": "poll", "contact_information": "contact", "location_information": "location",
    "place_name": "venue", "game_title": "game", "invoice_information": "invoice",
    "todo_list": "checklist", "giveaway_information": "giveaway",
}  # fmt: skip


def find_result_json(path: str | Path) -> Path:
    """``path`` itself when it is a JSON file, else ``path/result.json``."""
    p = Path(path)
    if p.is_file():
        return p
    if not p.exists():
        raise InputError(f"{p}: no such folder")
    candidate = p / "result.json"
    if candidate.is_file():
        return candidate
    raise InputError(f"{p}: no result.json (export the chat as JSON from Telegram Desktop)")


def message_text(text: Any, depth: int = 0) -> str:
    """The plain text of an export's ``text`` field (string, or list of strings and
    entity objects with a ``text`` key); lone surrogates and NUL bytes cleaned.

    >>> message_text(["Look ", {"type": "bold", "text": "here"}, "!"])
    'Look here!'
    """
    if text is None or depth > 8:
        return ""
    if isinstance(text, str):
        return clean_str(text)
    if isinstance(text, list):
        return "".join(
            message_text(part, depth + 1)
            if isinstance(part, str)
            else message_text(part.get("text"), depth + 1)
            for part in text
            if isinstance(part, (str, dict))
        )
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return str(text)
    return ""


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


def _unix(value: Any) -> datetime | None:
    seconds = safe_int(value)
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        d = datetime.fromisoformat(value)
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def _date(msg: dict[str, Any], field: str = "date") -> datetime | None:
    """``<field>_unixtime`` (UTC) when present, else ``<field>`` read as UTC."""
    return _unix(msg.get(f"{field}_unixtime")) or _iso(msg.get(field))


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


def _skipped_kind(msg: dict[str, Any]) -> str | None:
    """The kind of content nmodal does not encode that the message carries, if any."""
    if "file" in msg and _kind(msg) is None:
        return "sticker" if msg.get("media_type") == "sticker" else "document"
    for key, kind in SKIPPED_FIELDS.items():
        if key in msg:
            return kind
    return None


def _media(msg: dict[str, Any], root: MediaRoot) -> dict[str, Any]:
    """Real media paths of one message and the problems met finding them."""
    found: dict[str, Any] = {"problems": []}

    def take(kind: str, value: Any) -> None:
        if not isinstance(value, str) or not value.strip():
            return
        skip = _skip_reason(value)
        if skip is not None:
            found["problems"].append(f"{kind}: {skip}")
            return
        path, problem = root.resolve(value)
        if path is None:
            if str(problem).startswith("file missing"):
                problem = f"file missing from export{str(problem)[len('file missing') :]}"
            found["problems"].append(f"{kind}: {problem}")
            return
        found.setdefault(f"{kind}_path", str(path))

    if "photo" in msg:
        take("image", msg["photo"])
    kind = _kind(msg) if "file" in msg else None
    if kind is not None:
        take(kind, msg["file"])
    media_type = msg.get("media_type") or ("photo" if "photo" in msg else None)
    found["media_type"] = media_type if isinstance(media_type, str) else None
    found["skipped"] = _skipped_kind(msg)
    return found


def _chats(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if isinstance(data.get("messages"), list):
        yield data
    for key in ("chats", "left_chats"):
        block = data.get(key)
        if isinstance(block, dict) and isinstance(block.get("list"), list):
            yield from (c for c in block["list"] if isinstance(c, dict))


def _album_family(msg: dict[str, Any]) -> str | None:
    """Which album a media message can belong to: Telegram groups photos and videos
    together, audio files only with audio files, documents only with documents."""
    if msg.get("type", "message") != "message":
        return None
    if "photo" in msg:
        return "visual"
    if "file" not in msg or msg.get("media_type") in ("sticker", "voice_message", "video_message"):
        return None
    kind = _kind(msg)
    if kind in ("video", "image"):
        return "visual"
    return "audio" if kind == "audio" else "document"


def _joins_album(group: list[dict[str, Any]], msg: dict[str, Any]) -> bool:
    """Whether ``msg`` continues the album ``group`` (see the module docs)."""
    lead, last = group[0], group[-1]
    gid = safe_key(msg.get("grouped_id"))
    if gid is not None or safe_key(lead.get("grouped_id")) is not None:
        return gid is not None and gid == safe_key(lead.get("grouped_id"))
    family = _album_family(msg)
    if family is None or family != _album_family(lead) or len(group) >= ALBUM_MAX:
        return False
    if msg.get("from_id") != lead.get("from_id") or msg.get("forwarded_from") != lead.get(
        "forwarded_from"
    ):
        return False
    prev_id, this_id = safe_int(last.get("id")), safe_int(msg.get("id"))
    if prev_id is None or this_id != prev_id + 1:
        return False
    t0, t1 = _date(lead), _date(msg)
    if t0 is None or t1 is None or abs((t1 - t0).total_seconds()) > ALBUM_SECONDS:
        return False
    captions = sum(1 for m in (*group, msg) if message_text(m.get("text")).strip())
    return captions <= 1


def _album_groups(messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Messages grouped into posts: albums merged, everything else alone."""
    groups: list[list[dict[str, Any]]] = []
    for msg in messages:
        if groups and _album_family(groups[-1][0]) and _joins_album(groups[-1], msg):
            groups[-1].append(msg)
        else:
            groups.append([msg])
    return groups


def _provenance(lead: dict[str, Any], chat: dict[str, Any], username: str | None) -> dict[str, Any]:
    """The provenance columns of a post led by message ``lead`` of ``chat``."""
    msg_id = safe_int(lead.get("id"))
    chat_id = safe_key(chat.get("id"))
    return {
        "channel_id": chat_id,
        "channel_username": username,
        "url": telegram_url(username, chat_id, msg_id, str(chat.get("type") or "")),
        "from_name": safe_text(lead.get("from")),
        "from_id": safe_key(lead.get("from_id")),
        "author": safe_text(lead.get("author")),
        "forwarded_from": safe_text(lead.get("forwarded_from") or lead.get("saved_from")),
        "forwarded_from_id": safe_key(lead.get("forwarded_from_id")),
        "reply_to_message_id": safe_int(lead.get("reply_to_message_id")),
        "edited": _date(lead, "edited"),
        "reactions": reactions_json(lead.get("reactions")),
    }


def _record(
    group: list[dict[str, Any]],
    chat: dict[str, Any],
    account: str,
    key: str,
    root: MediaRoot,
    username: str | None,
) -> dict[str, Any]:
    texts = [message_text(m.get("text")) for m in group]
    captioned = next((i for i, t in enumerate(texts) if t.strip()), 0)
    lead = group[captioned]
    msg_id = safe_int(lead.get("id"))
    if msg_id is None:
        raise ValueError(f"message id {str(lead.get('id'))[:40]!r} is not an integer")
    rec: dict[str, Any] = {
        "post_id": f"{key}/{msg_id}",
        "source": SOURCE,
        "account": account,
        "message_id": msg_id,
        "date": _date(lead),
        "text": texts[captioned],
        "media_root": str(root),
        "problems": [],
        **_provenance(lead, chat, username),
    }
    mtype = lead.get("type", "message")
    if mtype == "service":
        rec["drop"] = f"service message ({safe_text(lead.get('action')) or 'unknown action'})"
        return rec
    if mtype != "message":
        rec["drop"] = f"{safe_text(mtype) or 'unknown'} message"
        return rec
    media_types = []
    skipped: list[str] = []
    extra = 0
    for msg in group:
        found = _media(msg, root)
        rec["problems"] += found["problems"]
        if found["skipped"]:
            skipped.append(found["skipped"])
        for col in ("video_path", "image_path", "audio_path"):
            if col in found:
                if col in rec:
                    extra += 1
                else:
                    rec[col] = found[col]
        if found["media_type"]:
            media_types.append(found["media_type"])
    if skipped:
        rec["skipped_media"] = ",".join(sorted(set(skipped)))
        rec["problems"] += [f"{kind} not encoded" for kind in skipped]
    if len(group) > 1:
        rec["media_type"] = "album"
        ids = [safe_int(m.get("id")) for m in group]
        gid = safe_key(group[0].get("grouped_id"))
        rec["album_id"] = gid or f"{key}/{ids[0]}-{ids[-1]}"
        rec["problems"].append(f"album of messages {','.join(str(i) for i in ids)}")
        if extra:
            rec["problems"].append(f"album: {extra} more media files not used")
    else:
        rec["media_type"] = media_types[0] if media_types else None
    rec["problems"] = dedup_notes(rec["problems"])
    return rec


def load_export(result: Path) -> dict[str, Any]:
    """The parsed ``result.json``; InputError naming the file for any unreadable document.

    Damage inside one message costs only that message (:func:`load_json_document`): bytes
    that are not UTF-8 become U+FFFD, a value nested too deeply makes the message a bad
    record (:func:`read_telegram_export`)."""
    try:
        raw = result.read_bytes()
    except OSError as exc:
        raise InputError(f"{result}: cannot read ({exc.strerror})") from None
    try:
        data, _ = load_json_document(raw, str(result))
    except ValueError as exc:
        raise InputError(f"{result}: not a Telegram JSON export ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{result}: not a Telegram JSON export (top level is not an object)")
    return data


def read_telegram_export(
    path: str | Path, merge_albums: bool = True, username: str | None = None
) -> list[dict[str, Any]]:
    """Raw post records (see :mod:`nmodal.sources.filtering`) of one export.

    ``path`` is the export folder or its ``result.json``; media are read only inside that
    folder. Media paths are absolute. ``username``: the public channel's @name (exports do
    not record it), for t.me links ``https://t.me/<username>/<id>``.
    """
    result = find_result_json(path)
    data = load_export(result)
    root = MediaRoot(result.parent)
    records: list[dict[str, Any]] = []
    chats = list(_chats(data))
    if not chats:
        raise InputError(f"{result}: no messages and no chats.list in this export")
    for chat in chats:
        name = safe_text(chat.get("name"))
        chat_id = safe_key(chat.get("id"))
        account = name or (f"chat{chat_id}" if chat_id is not None else result.parent.name)
        key = chat_id if chat_id is not None else account
        raw = chat.get("messages")
        messages = raw if isinstance(raw, list) else []
        for pos, m in enumerate(messages):
            if not isinstance(m, dict):
                records.append(bad_record(result, f"{key} message #{pos}", "not an object", SOURCE))
            elif holds_too_deep(m):
                where = f"{key} message {clean_str(str(m.get('id')))[:40]}"
                records.append(bad_record(result, where, "JSON nested too deeply", SOURCE))
        valid = [m for m in messages if isinstance(m, dict) and not holds_too_deep(m)]
        groups = _album_groups(valid) if merge_albums else [[m] for m in valid]
        for g in groups:
            try:
                records.append(_record(g, chat, account, key, root, username))
            except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
                where = f"{key} message {clean_str(str(g[0].get('id')))[:40]}"
                records.append(bad_record(result, where, str(exc), SOURCE))
    return records
