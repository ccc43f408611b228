"""A Telethon collector for public channels (optional extra ``collect``).

For each channel it fetches messages newer than the last run (``min_id`` from
``state.json``), appends them as Telethon ``to_dict`` NDJSON to ``messages.ndjson``, and
downloads the media of messages that can pass the filter (``media/<channel>/<id>.<ext>``);
messages that cannot (no video, too little text) are still recorded, so their posts are
dropped with a reason. A ``FloodWaitError`` sleeps the requested time and resumes from
the last message saved. The result is ingested like any NDJSON collection.

The client is any object with Telethon's ``iter_messages`` (async iterator) and
``download_media`` (coroutine), so the logic is tested with a fake client and no network.

Example:
    >>> async with TelegramClient("s", api_id, api_hash) as client:  # doctest: +SKIP
    ...     stats = await collect(client, ["some_channel"], "data/raw", FilterConfig())
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from nmodal.atomic import write_text
from nmodal.sources.filtering import FilterConfig, count_words
from nmodal.sources.telethon_ndjson import media_kind

MESSAGES_FILE = "messages.ndjson"
STATE_FILE = "state.json"


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)


def is_flood_wait(exc: BaseException) -> bool:
    """Telethon's FloodWaitError (and its premium/test variants), by duck typing."""
    return type(exc).__name__.startswith("Flood") and isinstance(getattr(exc, "seconds", None), int)


def load_state(out_dir: Path) -> dict[str, int]:
    """``{channel: last message id collected}``."""
    path = out_dir / STATE_FILE
    return {k: int(v) for k, v in json.loads(path.read_text()).items()} if path.is_file() else {}


def save_state(out_dir: Path, state: dict[str, int]) -> None:
    """Write the state atomically."""
    write_text(out_dir / STATE_FILE, json.dumps(state, indent=1, sort_keys=True))


@dataclass
class CollectStats:
    """Per-run counts."""

    messages: int = 0
    downloaded: int = 0
    skipped_media: int = 0
    flood_waits: list[int] = field(default_factory=list)


def wants_media(message: dict[str, Any], cfg: FilterConfig) -> bool:
    """Whether a message's media are worth downloading: it can still pass the filter."""
    kind, _ = media_kind(message.get("media"))
    if kind is None:
        return False
    if "video" in cfg.require and kind != "video":
        return False
    text = message.get("message") or ""
    return not ("text" in cfg.require and count_words(text) < cfg.min_words)


async def collect_channel(
    client: Any,
    channel: str,
    out_dir: str | Path,
    cfg: FilterConfig | None = None,
    limit: int | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    max_flood_waits: int = 10,
    stats: CollectStats | None = None,
) -> CollectStats:
    """Collect one channel's new messages into ``out_dir`` (see the module docs)."""
    cfg = cfg or FilterConfig()
    out = Path(out_dir)
    media_dir = out / "media" / channel
    media_dir.mkdir(parents=True, exist_ok=True)
    stats = stats or CollectStats()
    state = load_state(out)
    done = 0
    while True:
        min_id = state.get(channel, 0)
        try:
            with (out / MESSAGES_FILE).open("a", encoding="utf-8") as fh:
                remaining = None if limit is None else limit - done
                if remaining is not None and remaining <= 0:
                    break
                async for msg in client.iter_messages(
                    channel, min_id=min_id, reverse=True, limit=remaining
                ):
                    record = msg.to_dict()
                    record["_chat"] = {"username": channel}
                    if wants_media(record, cfg):
                        got = await client.download_media(msg, file=str(media_dir / str(msg.id)))
                        if got:
                            record["media_path"] = (
                                Path(got).resolve().relative_to(out.resolve()).as_posix()
                            )
                            stats.downloaded += 1
                    elif record.get("media") is not None:
                        stats.skipped_media += 1
                    fh.write(json.dumps(record, default=_json_default, ensure_ascii=False) + "\n")
                    fh.flush()
                    state[channel] = max(state.get(channel, 0), int(msg.id))
                    save_state(out, state)
                    stats.messages += 1
                    done += 1
            break
        except Exception as exc:
            if not is_flood_wait(exc) or len(stats.flood_waits) >= max_flood_waits:
                raise
            seconds = int(exc.seconds)  # type: ignore[attr-defined]
            stats.flood_waits.append(seconds)
            await sleep(seconds + 1)
    return stats


async def collect(
    client: Any,
    channels: Sequence[str],
    out_dir: str | Path,
    cfg: FilterConfig | None = None,
    limit: int | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> CollectStats:
    """:func:`collect_channel` for each channel in turn; one shared :class:`CollectStats`."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    stats = CollectStats()
    for channel in channels:
        await collect_channel(client, channel, out_dir, cfg, limit=limit, sleep=sleep, stats=stats)
    return stats
