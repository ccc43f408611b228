"""``nmodal collect``: fetch public Telegram channels with Telethon, then ingest them.

Needs the ``collect`` extra (``pip install nmodal[collect]``) and API credentials from
https://my.telegram.org (``--api-id``/``--api-hash`` or ``TELEGRAM_API_ID``/``TELEGRAM_API_HASH``).
Reruns fetch only new messages.

Example::

    nmodal collect channel_a channel_b --out data/raw --limit 5000
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from nmodal.cli._help import add_examples
from nmodal.cli.ingest import add_filter_arguments, filter_config
from nmodal.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "collect",
        help="collect public Telegram channels (Telethon) into a dataset",
        description=(
            "Fetch new messages of public channels (incremental), download the media of posts "
            "that can pass the filter, and write OUT/messages.ndjson, OUT/media/ and "
            "OUT/posts.parquet."
        ),
    )
    add_examples(
        p,
        "nmodal collect channel_a channel_b --out data/raw --limit 5000",
        "nmodal collect channel_a --out data/raw --require none   # keep text-only posts too",
    )
    p.add_argument("channels", nargs="+", metavar="CHANNEL", help="channel usernames")
    p.add_argument("--out", required=True, metavar="DIR", help="collection folder")
    p.add_argument("--api-id", type=int, default=None, help="default: $TELEGRAM_API_ID")
    p.add_argument("--api-hash", default=None, help="default: $TELEGRAM_API_HASH")
    p.add_argument("--session", default=None, help="Telethon session file (default OUT/collect)")
    p.add_argument("--limit", type=int, default=None, help="at most this many messages per channel")
    p.add_argument("--workers", type=int, default=None, help="probe processes for the ingest")
    add_filter_arguments(p)
    p.set_defaults(handler=run_collect)


def run_collect(args: argparse.Namespace) -> int:
    from nmodal.sources import format_summary, ingest, read_telethon_ndjson  # lazy: --help start-up
    from nmodal.sources.collector import MESSAGES_FILE, collect  # lazy: --help start-up

    try:
        from telethon import TelegramClient
    except ImportError:
        raise InputError("nmodal collect needs Telethon: pip install 'nmodal[collect]'") from None
    api_id = args.api_id or os.environ.get("TELEGRAM_API_ID")
    api_hash = args.api_hash or os.environ.get("TELEGRAM_API_HASH")
    if not api_id or not api_hash:
        raise InputError("give --api-id and --api-hash (or TELEGRAM_API_ID / TELEGRAM_API_HASH)")
    if not str(api_id).strip().isdigit():
        raise InputError(f"the API id must be a number (from my.telegram.org), got {api_id!r}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = filter_config(args)
    session = args.session or str(out / "collect")
    client = TelegramClient(session, int(api_id), api_hash)

    async def run() -> None:
        async with client:
            stats = await collect(client, args.channels, out, cfg, limit=args.limit)
        print(
            f"messages: {stats.messages}  media downloaded: {stats.downloaded}  "
            f"flood waits: {len(stats.flood_waits)}"
        )

    client.loop.run_until_complete(run())
    records = read_telethon_ndjson(out / MESSAGES_FILE, media_dir=out / "media")
    result = ingest(records, out, cfg, overwrite=True, workers=args.workers)
    print(format_summary(result))
    return 0
