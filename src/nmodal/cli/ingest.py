"""``nmodal ingest``: collections of posts -> ``DATASET_DIR/posts.parquet``.

Examples::

    nmodal ingest telegram-export exports/ChatExport_A exports/ChatExport_B --out data/ds
    nmodal ingest telegram-export exports/ChatExport_A --out data/paper --filter paper
    nmodal ingest manifest posts.jsonl --out data/ds --require video,text --min-frames 32
    nmodal ingest ndjson messages.ndjson --media-dir media --out data/ds --overwrite
"""

from __future__ import annotations

import argparse
from typing import Any

from nmodal.cli._help import add_examples
from nmodal.errors import InputError


def add_filter_arguments(p: argparse.ArgumentParser) -> None:
    """The post filter's options (shared with ``nmodal collect``)."""
    g = p.add_argument_group(
        "filter (default: every post with text or a usable media file; "
        "--filter paper: video >= 64 frames and text >= 5 words)"
    )
    g.add_argument(
        "--filter",
        choices=["all", "paper"],
        default="all",
        help="preset: all (default: every post with at least one usable artifact) or paper "
        "(the paper's trimodal posts); the options below override single settings",
    )
    g.add_argument("--min-frames", type=int, default=None, help="shortest video kept")
    g.add_argument("--min-words", type=int, default=None, help="shortest text kept")
    g.add_argument(
        "--require",
        default=None,
        help="modalities a post must have, comma-separated from text,video,image,audio; "
        "'none' for no requirement",
    )


def filter_config(args: argparse.Namespace) -> Any:
    from nmodal.sources import FilterConfig  # lazy: --help start-up

    return FilterConfig.preset(
        args.filter,
        min_frames=args.min_frames,
        min_words=args.min_words,
        require=None if args.require is None else FilterConfig.parse_require(args.require),
    )


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="DATASET_DIR", help="dataset folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing posts.parquet")
    p.add_argument(
        "--account-labels",
        metavar="FILE",
        help="CSV/JSONL with an account column and label columns (e.g. stance) for every post",
    )
    p.add_argument(
        "--workers", type=int, default=None, help="probe processes (default: CPUs, max 8)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_filter_arguments(p)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ingest",
        help="read posts (Telegram export, manifest, NDJSON) into a dataset's posts.parquet",
        description=(
            "Read a collection of posts, probe every media file, apply the filter and write "
            "DATASET_DIR/posts.parquet with a status (kept/dropped) and a reason per post, "
            "provenance (forwards, replies, authors, t.me links) included. By default every "
            "post with text or a usable media file is kept; --filter paper keeps the paper's "
            "trimodal posts. Media stay where they are, read only inside the export / media "
            "folder named; paths are stored relative to DATASET_DIR. Ends with a summary."
        ),
    )
    add_examples(
        p,
        "nmodal ingest telegram-export exports/ChatExport_A --out data/ds",
        "nmodal ingest manifest posts.jsonl --out data/ds --require none",
        "nmodal ingest ndjson messages.ndjson --media-dir media --out data/ds",
    )
    sub = p.add_subparsers(dest="source", metavar="SOURCE", required=True)

    t = sub.add_parser(
        "telegram-export",
        help="Telegram Desktop JSON export folder(s)",
        description="One or more Telegram Desktop exports (Export chat history, format "
        "JSON): each folder holds result.json and the media it names (photos/, video_files/, "
        "voice_messages/, ...). A full-account export (every chat in one result.json) works "
        "too. Albums merge into one post (--no-albums keeps one post per message); media "
        "that the export left out, or that lie outside the folder, are noted on the post. "
        "Post ids are <chat id>/<message id>.",
    )
    t.add_argument("export_dirs", nargs="+", metavar="EXPORT_DIR", help="folder with result.json")
    t.add_argument("--no-albums", action="store_true", help="do not merge album messages")
    t.add_argument(
        "--username",
        action="append",
        default=None,
        help="the public channel's @username (exports do not record it) for t.me/<name>/<id> "
        "links; default links are t.me/c/<channel id>/<id>. With several exports give one "
        "per export, in the same order ('-' for one without)",
    )
    _add_common(t)
    add_examples(
        t,
        "nmodal ingest telegram-export exports/ChatExport_A exports/ChatExport_B --out data/ds",
        "nmodal ingest telegram-export exports/ChatExport_A --out data/ds --require none",
    )
    t.set_defaults(handler=run_ingest)

    m = sub.add_parser(
        "manifest",
        help="JSONL or CSV manifest, one post per row",
        description="A JSONL (one JSON object per line), a JSON array of objects, or a CSV "
        "file, one post per row. "
        "Columns: post_id (required, unique), account, date (ISO 8601), text, image_path, "
        "video_path, audio_path (image, video and audio are accepted too; relative paths are "
        "relative to the manifest's folder). Every other column (stance, language, ...) is "
        "carried through as a label column.",
    )
    m.add_argument("file", metavar="FILE")
    m.add_argument(
        "--media-root",
        default=None,
        help="folder media files must lie in (default: the manifest's folder)",
    )
    _add_common(m)
    add_examples(
        m,
        "nmodal ingest manifest posts.jsonl --out data/ds --require none   # keep every post",
        "nmodal ingest manifest posts.csv --out data/ds --require video,text --min-frames 32",
    )
    m.set_defaults(handler=run_ingest)

    n = sub.add_parser(
        "ndjson",
        help="Telethon to_dict NDJSON (telegram-tracker, 4CAT, collect)",
        description="Telethon messages as dicts (Message.to_dict()): one JSON object per line "
        "(NDJSON), or files holding one JSON array of them, as telegram-tracker, 4CAT and "
        "nmodal collect write. Media are looked up in --media-dir by the message's file "
        "name; albums (grouped_id) merge into one post.",
    )
    n.add_argument("files", nargs="+", metavar="FILE")
    n.add_argument("--media-dir", help="folder with the downloaded media files")
    n.add_argument("--account", help="account name for every message (default: from the data)")
    _add_common(n)
    add_examples(
        n,
        "nmodal ingest ndjson messages.ndjson --media-dir media --out data/ds --overwrite",
        "nmodal ingest ndjson a.ndjson b.ndjson --account rybar --out data/ds --require none",
    )
    n.set_defaults(handler=run_ingest)


def run_ingest(args: argparse.Namespace) -> int:
    from nmodal.sources import (  # lazy: --help start-up
        format_summary,
        ingest,
        read_account_labels,
        read_posts_manifest,
        read_telegram_export,
        read_telethon_ndjson,
    )

    cfg = filter_config(args)
    records: list[dict[str, Any]] = []
    if args.source == "telegram-export":
        names = args.username or [None] * len(args.export_dirs)
        if len(names) != len(args.export_dirs):
            raise InputError(
                f"{len(args.export_dirs)} exports but {len(names)} --username: give one per "
                "export, in the same order ('-' for one without), so that each channel's links "
                "name that channel"
            )
        for d, name in zip(args.export_dirs, names, strict=True):
            records += read_telegram_export(
                d, merge_albums=not args.no_albums, username=None if name in (None, "-") else name
            )
    elif args.source == "manifest":
        records = read_posts_manifest(args.file, media_root=args.media_root)
    else:
        for f in args.files:
            records += read_telethon_ndjson(f, media_dir=args.media_dir, account=args.account)
    if not records:
        inputs = args.export_dirs if args.source == "telegram-export" else (
            [args.file] if args.source == "manifest" else args.files)  # fmt: skip
        raise InputError(f"{', '.join(map(str, inputs))}: no posts found in the input")
    labels = read_account_labels(args.account_labels) if args.account_labels else None
    result = ingest(
        records,
        args.out,
        cfg,
        overwrite=args.overwrite,
        workers=args.workers,
        progress=not args.no_progress,
        account_labels=labels,
    )
    print(format_summary(result))
    return 0
