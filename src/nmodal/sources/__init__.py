"""Sources: adapters that turn collections of posts into the posts table.

- :func:`read_telegram_export` -- Telegram Desktop JSON exports (single chat or full account)
- :func:`read_posts_manifest` -- a JSONL/CSV manifest for any platform
- :func:`read_telethon_ndjson` -- Telethon ``to_dict`` NDJSON (telegram-tracker, 4CAT)
- :mod:`nmodal.sources.collector` -- a Telethon collector for public channels (extra ``collect``)

Each adapter returns raw records; :func:`ingest` applies the filter (the paper's: video
>= 64 frames and text >= 5 words) and writes ``posts.parquet``; :func:`read_posts` reads it.

Example:
    >>> from nmodal.sources import FilterConfig, ingest, read_posts, read_telegram_export  # doctest: +SKIP
    >>> ingest(read_telegram_export("export"), "data/ds", FilterConfig())  # doctest: +SKIP
    >>> read_posts("data/ds", status="kept")  # doctest: +SKIP
"""

from nmodal.sources.filtering import FilterConfig, apply_filter, count_words, summarize
from nmodal.sources.ingest import IngestResult, format_summary, ingest, read_account_labels
from nmodal.sources.manifest import read_manifest, read_posts_manifest
from nmodal.sources.posts import COLUMNS, POSTS_FILE, posts_frame, read_posts, write_posts
from nmodal.sources.telegram_export import read_telegram_export
from nmodal.sources.telethon_ndjson import read_telethon_ndjson

__all__ = [
    "COLUMNS",
    "POSTS_FILE",
    "FilterConfig",
    "IngestResult",
    "apply_filter",
    "count_words",
    "format_summary",
    "ingest",
    "posts_frame",
    "read_account_labels",
    "read_manifest",
    "read_posts",
    "read_posts_manifest",
    "read_telegram_export",
    "read_telethon_ndjson",
    "summarize",
    "write_posts",
]
