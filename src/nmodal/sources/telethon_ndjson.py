"""Telethon ``Message.to_dict()`` records (NDJSON or a JSON array) -> raw post records.

This is what OSINT collectors such as telegram-tracker and 4CAT write (and what
``nmodal collect`` writes): per message ``id``, ``date``, ``message`` (the text),
``peer_id`` (``{"_": "PeerChannel", "channel_id": ...}``), ``media`` (``MessageMediaDocument``
with ``mime_type`` and ``attributes``, or ``MessageMediaPhoto``), ``grouped_id`` (albums),
``fwd_from``, ``reply_to``, ``edit_date``, ``post_author``, ``views``, ``forwards``,
``reactions``, and ``_`` = ``"MessageService"`` for service messages.

The account is, in order: ``--account``; a collector's chat field (``_chat.username``,
``chat.username``, ``channel_name``, ``_chat.title``); ``channel<id>`` from ``peer_id``.
Media files are found from a path field in the record (``media_path``, ``file_path``,
``local_path``) or in ``media_dir`` as ``<account>/<id>.*``, ``<account>_<id>.*``,
``<id>.*``, the document's own file name, or Telethon ``download_media``'s default name
(``photo_2022-05-08_16-41-19.jpg``: the kind and the message's UTC date). Every file must lie
inside the dump's folder or ``media_dir`` (:mod:`nmodal.sources.paths`).

A line that is not JSON, not UTF-8, nested too deeply or otherwise unreadable becomes one
``bad record`` row naming the file and line; the other lines are read. A byte-order mark is
ignored.

Example:
    >>> records = read_telethon_ndjson("messages.ndjson", media_dir="media")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nmodal.errors import InputError
from nmodal.sources.paths import MediaRoot
from nmodal.sources.provenance import is_username, peer_key, reactions_json, telegram_url
from nmodal.sources.records import (
    bad_record,
    clean_str,
    dedup_notes,
    holds_too_deep,
    load_json_document,
    load_json_text,
    safe_int,
    safe_key,
    safe_text,
)

SOURCE = "telethon-ndjson"
PATH_FIELDS = ("media_path", "file_path", "local_path", "media_file")
#: media Telethon records that nmodal does not encode -> the kind in ``skipped_media``
SKIPPED_MEDIA = {
    "MessageMediaPoll": "poll", "MessageMediaGeo": "location", "MessageMediaGeoLive": "location",
    "MessageMediaVenue": "venue", "MessageMediaContact": "contact", "MessageMediaGame": "game",
    "MessageMediaInvoice": "invoice", "MessageMediaDice": "dice", "MessageMediaStory": "story",
    "MessageMediaGiveaway": "giveaway", "MessageMediaPaidMedia": "paid media",
}  # fmt: skip
#: Telethon download_media's default name prefix of each media type
DEFAULT_PREFIX = {"photo": "photo", "video_file": "video", "animation": "video",
                  "video_message": "video", "voice_message": "voice", "audio_file": "audio"}  # fmt: skip


def iter_json_records(path: Path) -> Iterator[tuple[int | str, dict[str, Any] | str]]:
    """``(line or item, object)`` for every record of an NDJSON file or of a file holding
    one JSON array; an unreadable record comes as ``(where, reason)`` instead."""
    with path.open("rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"["):
        raw = path.read_bytes()
        try:
            data, cut = load_json_document(raw, str(path))
        except ValueError as exc:
            if len(raw.strip().splitlines()) < 2:
                raise InputError(f"{path}: {exc}") from None
            data = None  # NDJSON whose first line happens to be an array: read line by line
        if data is not None:
            if not isinstance(data, list):
                raise InputError(f"{path}: not a JSON array of messages")
            for pos, row in enumerate(data):
                if not isinstance(row, dict):
                    yield f"item {pos}", "not an object"
                elif cut and holds_too_deep(row):
                    yield f"item {pos}", "JSON nested too deeply"
                else:
                    yield f"item {pos}", row
            return
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if lineno == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            if not raw.strip():
                continue
            try:
                row = load_json_text(raw.decode("utf-8"), f"{path}:{lineno}")
            except UnicodeDecodeError as exc:
                yield f"line {lineno}", f"not UTF-8 ({exc.reason} at byte {exc.start})"
                continue
            except ValueError as exc:
                yield f"line {lineno}", str(exc)
                continue
            yield (
                (f"line {lineno}", row)
                if isinstance(row, dict)
                else (f"line {lineno}", "not an object")
            )


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
        value = safe_text(_get(msg, *keys))
        if value:
            return value
    return peer_key(msg.get("peer_id") or msg.get("to_id"))


def username_of(msg: dict[str, Any], account: str | None) -> str | None:
    """The channel's public username, when the record (or the account name) gives one."""
    for keys in (("_chat", "username"), ("chat", "username"), ("channel_username",)):
        value = safe_text(_get(msg, *keys))
        if value and is_username(value.lstrip("@")):
            return value.lstrip("@")
    return (
        account
        if account and is_username(account) and not account.startswith(("channel", "chat", "user"))
        else None
    )


def media_kind(media: Any) -> tuple[str | None, str | None]:
    """``(kind, media_type)`` of a Telethon media dict: kind is video/image/audio/None,
    media_type follows the Telegram Desktop names (video_file, animation, ...)."""
    if not isinstance(media, dict):
        return None, None
    if media.get("_") == "MessageMediaPhoto":
        return "image", "photo"
    doc = media.get("document")
    if media.get("_") != "MessageMediaDocument" or not isinstance(doc, dict):
        return None, SKIPPED_MEDIA.get(str(media.get("_")))
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
    return None, "document"


class _MediaIndex:
    """Files under a media folder by stem, for lookups by message id or file name."""

    def __init__(self, media_dir: Path | None) -> None:
        self.by_name: dict[str, list[Path]] = defaultdict(list)
        if media_dir is not None:
            for f in media_dir.rglob("*"):
                if f.is_file() and not f.name.startswith("."):
                    self.by_name[f.stem].append(f)
                    self.by_name[f"{f.parent.name}/{f.stem}"].append(f)

    def find(self, keys: list[str]) -> Path | None:
        for key in keys:
            hits = [h for h in self.by_name.get(key, []) if not h.name.endswith("_thumb.jpg")]
            if hits:
                return sorted(hits)[0]
        return None


def _when(value: Any) -> datetime | None:
    """A Telethon date (ISO string, or seconds since the epoch) as an aware UTC datetime."""
    if isinstance(value, str) and value:
        try:
            d = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return d.astimezone(timezone.utc) if d.tzinfo else d.replace(tzinfo=timezone.utc)
    seconds = safe_int(value)
    if seconds is not None:
        try:
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def lookup_keys(account: str, msg_id: int, file_name: str | None, media_type: str | None,
                date: datetime | None) -> list[str]:  # fmt: skip
    """File stems a message's media may be saved under, most specific first: by message id,
    the document's own name, Telethon's default ``<kind>_<YYYY-mm-dd_HH-MM-SS>``."""
    keys = [f"{account}/{msg_id}", f"{account}_{msg_id}", str(msg_id)]
    if file_name:
        keys.append(Path(file_name).stem)
    prefix = DEFAULT_PREFIX.get(media_type or "")
    if prefix and date is not None:
        keys.append(f"{prefix}_{date:%Y-%m-%d_%H-%M-%S}")
    return keys


def _fwd(msg: dict[str, Any]) -> dict[str, Any]:
    """The ``forwarded_*`` columns from a Telethon ``fwd_from`` header."""
    fwd = msg.get("fwd_from")
    if not isinstance(fwd, dict):
        return {}
    origin = peer_key(fwd.get("from_id"))
    return {
        "forwarded_from": safe_text(fwd.get("from_name")) or origin or "unknown origin",
        "forwarded_from_id": origin,
        "forwarded_date": _when(fwd.get("date")),
        "forwarded_message_id": safe_int(fwd.get("channel_post")),
    }


def _record(msg: dict[str, Any], acct: str, root: MediaRoot, index: _MediaIndex) -> dict[str, Any]:
    """One message's raw record (albums are merged by the caller)."""
    msg_id = safe_int(msg.get("id"))
    if msg_id is None:
        raise ValueError(f"message id {clean_str(str(msg.get('id')))[:40]!r} is not an integer")
    text = msg.get("message")
    date = _when(msg.get("date"))
    peer = msg.get("peer_id") or msg.get("to_id")
    channel = peer_key(peer)
    username = username_of(msg, acct)
    rec: dict[str, Any] = {
        "post_id": f"{acct}/{msg_id}",
        "source": SOURCE,
        "account": acct,
        "message_id": msg_id,
        "date": date,
        "text": clean_str(text) if isinstance(text, str) else "",
        "media_root": str(root),
        "problems": [],
        "channel_id": channel.removeprefix("channel") if channel else None,
        "channel_username": username,
        "url": telegram_url(
            username,
            channel,
            msg_id,
            "channel" if channel and channel.startswith("channel") else "chat",
        ),
        "from_id": peer_key(msg.get("from_id")),
        "author": safe_text(msg.get("post_author")),
        "reply_to_message_id": safe_int(_get(msg, "reply_to", "reply_to_msg_id")),
        "edited": _when(msg.get("edit_date")),
        "views": safe_int(msg.get("views")),
        "forwards": safe_int(msg.get("forwards")),
        "reactions": reactions_json(msg.get("reactions")),
        **_fwd(msg),
    }
    group = msg.get("grouped_id")
    if group is not None:
        gid = safe_key(group)
        if gid is None:
            rec["problems"].append("grouped_id is not an id; not merged into an album")
        rec["album_id"] = gid
    if msg.get("_") == "MessageService":
        action = safe_text(_get(msg, "action", "_")) or "unknown action"
        rec["drop"] = f"service message ({action})"
        return rec
    kind, media_type = media_kind(msg.get("media"))
    rec["media_type"] = media_type if kind is not None else None
    if kind is None and media_type is not None:
        rec["skipped_media"] = media_type
        rec["problems"].append(f"{media_type} not encoded")
    if kind is not None:
        local = next((msg[f] for f in PATH_FIELDS if isinstance(msg.get(f), str)), None)
        file_name = None
        for a in _get(msg, "media", "document", "attributes") or []:
            if isinstance(a, dict) and a.get("_") == "DocumentAttributeFilename":
                file_name = safe_text(a.get("file_name"))
        if local:
            found, problem = root.resolve(local)
        else:
            hit = index.find(lookup_keys(acct, msg_id, file_name, media_type, date))
            found, problem = root.check(hit) if hit is not None else (None, None)
        if found is not None:
            rec[f"{kind}_path"] = str(found)
        elif problem and not problem.startswith("file missing"):
            rec["problems"].append(f"{kind}: {problem}")
        else:
            rec["problems"].append(f"{kind}: media file not downloaded")
    return rec


def _merge(lead: dict[str, Any], rec: dict[str, Any]) -> None:
    """Fold album member ``rec`` into the album's first record ``lead``."""
    lead["media_type"] = "album"
    lead.setdefault("_members", [lead["message_id"]]).append(rec["message_id"])
    if rec["text"].strip() and not lead["text"].strip():
        for key in ("post_id", "message_id", "text", "date", "url", "edited", "reactions"):
            lead[key] = rec.get(key)
    for col in ("video_path", "image_path", "audio_path"):
        if col in rec and col not in lead:
            lead[col] = rec[col]
    if rec.get("skipped_media"):
        kinds = {
            *filter(None, str(lead.get("skipped_media") or "").split(",")),
            rec["skipped_media"],
        }
        lead["skipped_media"] = ",".join(sorted(kinds))
    lead["problems"] += rec["problems"]


def read_telethon_ndjson(
    path: str | Path, media_dir: str | Path | None = None, account: str | None = None
) -> list[dict[str, Any]]:
    """Raw post records (see :mod:`nmodal.sources.filtering`); albums (``grouped_id``)
    merged into one post. A relative path field is looked up in ``path``'s folder, then
    in ``media_dir``; files outside both are refused."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    if media_dir is not None and not Path(media_dir).is_dir():
        raise InputError(f"{media_dir}: media folder not found")
    bases = (p.parent,) + ((Path(media_dir),) if media_dir is not None else ())
    # the boundary: the dump's folder, or the media folder the user named
    root = MediaRoot(media_dir if media_dir is not None else p.parent, bases=bases)
    if media_dir is not None and not Path(os.path.realpath(p.parent)).is_relative_to(root.root):
        roots = [root, MediaRoot(p.parent, bases=bases)]
    else:
        roots = [root]
    index = _MediaIndex(root.root if media_dir is not None else None)
    records: list[dict[str, Any]] = []
    albums: dict[tuple[str, str], dict[str, Any]] = {}
    for where, msg in iter_json_records(p):
        if isinstance(msg, str):
            records.append(bad_record(p, where, msg, SOURCE))
            continue
        try:
            acct = account or account_of(msg) or p.stem
            rec = _record(msg, acct, _pick_root(roots, msg), index)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            records.append(
                bad_record(
                    p, f"{where}, message {clean_str(str(msg.get('id')))[:40]}", str(exc), SOURCE
                )
            )
            continue
        gid = rec.get("album_id")
        if gid is not None and (acct, gid) in albums:
            _merge(albums[(acct, gid)], rec)
            continue
        if gid is not None:
            albums[(acct, gid)] = rec
        records.append(rec)
    for lead in albums.values():
        members = lead.pop("_members", None)
        if members:
            lead["problems"].append(
                f"album of messages {','.join(str(m) for m in sorted(members))}"
            )
        lead["problems"] = dedup_notes(lead["problems"])
    return records


def _pick_root(roots: list[MediaRoot], msg: dict[str, Any]) -> MediaRoot:
    """The media root a message's path field resolves in (the first that holds it)."""
    local = next((msg[f] for f in PATH_FIELDS if isinstance(msg.get(f), str)), None)
    if local is None or len(roots) == 1:
        return roots[0]
    for r in roots:
        if r.resolve(local)[0] is not None:
            return r
    return roots[0]
