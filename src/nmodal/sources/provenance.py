"""Provenance fields shared by the Telegram adapters: peers, reactions, t.me links.

Example:
    >>> telegram_url("rybar", "1326223284", 42, "public_channel")
    'https://t.me/rybar/42'
    >>> telegram_url(None, "1326223284", 42, "public_channel")
    'https://t.me/c/1326223284/42'
    >>> peer_key({"_": "PeerChannel", "channel_id": 7})
    'channel7'
    >>> reactions_json([{"type": "emoji", "count": 2, "emoji": "❤"}])
    '{"❤": 2}'
"""

from __future__ import annotations

import json
import re
from typing import Any

from nmodal.sources.records import safe_int, safe_key, safe_text

_USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")
#: chat types whose posts have a t.me/c/<id>/<msg> link (channels and supergroups)
CHANNEL_TYPES = ("public_channel", "private_channel", "public_supergroup", "private_supergroup",
                 "channel", "supergroup")  # fmt: skip
PEERS = (("channel_id", "channel"), ("chat_id", "chat"), ("user_id", "user"))


def is_username(value: object) -> bool:
    """Whether ``value`` is a valid public Telegram username."""
    return isinstance(value, str) and bool(_USERNAME.match(value))


def telegram_url(
    username: str | None, channel_id: str | None, message_id: int | None, chat_type: str = ""
) -> str | None:
    """The post's link: ``https://t.me/<username>/<id>`` for a public username, else
    ``https://t.me/c/<channel id>/<id>`` for channels and supergroups (opens in Telegram for
    anyone who can see the chat); None for private chats and unknown ids."""
    if message_id is None or message_id <= 0:
        return None
    if username and is_username(username.lstrip("@")):
        return f"https://t.me/{username.lstrip('@')}/{message_id}"
    bare = (channel_id or "").removeprefix("channel")
    if bare.isdigit() and (not chat_type or chat_type in CHANNEL_TYPES):
        return f"https://t.me/c/{bare}/{message_id}"
    return None


def peer_key(peer: Any) -> str | None:
    """``channel123`` / ``chat5`` / ``user9`` for a Telethon peer dict (None otherwise)."""
    if not isinstance(peer, dict):
        return safe_key(peer) if isinstance(peer, int) else None
    for key, prefix in PEERS:
        value = safe_int(peer.get(key))
        if value is not None:
            return f"{prefix}{value}"
    return None


def reactions_json(value: Any) -> str | None:
    """Reaction counts as a JSON object ``{emoji or reaction id: count}``, from a Telegram
    Desktop ``reactions`` list or a Telethon ``MessageReactions`` dict; None when there are
    none."""
    items = value.get("results") if isinstance(value, dict) else value
    if not isinstance(items, list):
        return None
    counts: dict[str, int] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        count = safe_int(item.get("count"))
        inner = item.get("reaction")
        reaction: dict[str, Any] = inner if isinstance(inner, dict) else item
        label = (
            safe_text(reaction.get("emoji"))
            or safe_text(reaction.get("emoticon"))
            or safe_text(reaction.get("document_id"))
            or safe_text(reaction.get("type"))
            or safe_text(reaction.get("_"))
        )
        if label and count is not None:
            counts[label] = counts.get(label, 0) + count
    return json.dumps(counts, ensure_ascii=False) if counts else None
