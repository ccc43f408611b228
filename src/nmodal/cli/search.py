"""``nmodal search``: ranked posts for a text, a media file, or another post.

A query artifact is compared with every artifact of a post, its own modality included (text
with post text, a photo with photos: reposts rank first), and a post's score is its best
pair's cosine similarity (``--collate max``, the default: a post's exact text or its own
photo ranks it first); ``--collate sum`` is the paper's sum over the pairs, ``mean`` their
mean. The per-modality scores are shown. ``--other-modalities --collate sum`` is the
paper's retrieval protocol: other modalities only, summed.

Example:
    nmodal search data/index --text "convoy on the highway" -k 10 --since 2024-01-01
    nmodal search data/index --video clip.mp4 --account rybar --json
    nmodal search data/index --post rybar/1234 --modality video
    nmodal search data/index --text "мост" --forwarded-from "Rybar" --other-modalities
    nmodal search data/index --image photo.jpg --forwards none
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from nmodal.cli._common import csv_list
from nmodal.cli._help import add_examples
from nmodal.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "search",
        help="search an index by text, image, video, audio or post id",
        description="Rank the posts of an index (nmodal index build) for one query.",
    )
    add_examples(
        p,
        'nmodal search data/index --text "convoy on the highway" -k 10 --since 2024-01-01',
        "nmodal search data/index --video clip.mp4 --account rybar --json",
        "nmodal search data/index --post rybar/1234 --modality video",
    )
    p.add_argument("index", type=Path, help="index directory")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--text", help="a text query")
    q.add_argument("--image", type=Path, help="an image file")
    q.add_argument("--video", type=Path, help="a video file")
    q.add_argument("--audio", type=Path, help="an audio file (or a video's audio track)")
    q.add_argument(
        "--post", metavar="POST_ID", help="more like this post (its artifacts are the query)"
    )
    p.add_argument("-k", type=int, default=20, help="number of posts (default 20)")
    p.add_argument(
        "--account",
        action="append",
        default=None,
        help="only posts of this account (repeatable or comma-separated)",
    )
    p.add_argument(
        "--since", default=None, help="only posts on/after this date (YYYY-MM-DD or ISO)"
    )
    p.add_argument("--until", default=None, help="only posts on/before this date (inclusive)")
    p.add_argument(
        "--modality",
        type=csv_list,
        default=None,
        help="candidate modalities to match, e.g. video,image (default: all; with "
        "--other-modalities, all but the query's)",
    )
    p.add_argument(
        "--collate",
        choices=["max", "sum", "mean"],
        default="max",
        help="post score from its pair similarities: max (default: the best-matching "
        "artifact; an exact copy of the query ranks first), sum (the paper) or mean",
    )
    p.add_argument(
        "--other-modalities",
        action="store_true",
        help="the paper's rule: compare the query only with the other modalities of a post "
        "(default: every modality, its own included)",
    )
    p.add_argument(
        "--forwarded-from",
        action="append",
        default=None,
        metavar="NAME_OR_ID",
        help="only forwards from this origin (its name or id, e.g. channel1374438247; "
        "repeatable or comma-separated)",
    )
    p.add_argument(
        "--forwards",
        choices=["any", "only", "none"],
        default="any",
        help="only forwards, no forwards, or any post (default)",
    )
    p.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model directory (default: the one recorded in the index; must match)",
    )
    p.add_argument(
        "--nprobe",
        type=int,
        default=None,
        help="IVF lists visited (approximate indexes; capped at the number of lists, more: "
        "better recall, slower; default: the value recorded in the index)",
    )
    p.add_argument(
        "--ef-search",
        type=int,
        default=None,
        help="HNSW indexes: candidates explored per query (more: better recall, slower; "
        "default: the value tuned at build time)",
    )
    p.add_argument(
        "--k-factor",
        type=float,
        default=None,
        help="refined (...,RFlat) indexes: candidates re-ranked exactly per result",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from nmodal.index import Filters, PostIndex, QueryEncoder  # lazy: --help start-up

    index = PostIndex.open(args.index)
    known_accounts, known_origins = index.accounts_list(), index.origins_list()
    accounts = split_names(args.account, known_accounts)
    check_accounts(accounts, known_accounts)
    origins = split_names(args.forwarded_from, known_origins)
    check_origins(origins, known_origins)
    filters = Filters(
        accounts=accounts, since=args.since, until=args.until, forwarded_from=origins,
        forwards=args.forwards,
    )  # fmt: skip
    options: dict[str, Any] = {
        "k": args.k,
        "filters": filters,
        "modalities": args.modality,
        "collation": args.collate,
        "include_same": not args.other_modalities,
        # per search, so that a knob the index type does not have is an error, as in the API
        "nprobe": args.nprobe,
        "params": {"efSearch": args.ef_search, "k_factor": args.k_factor},
    }
    if args.post is not None:
        result = index.more_like_this(args.post, **options)
    else:
        kind = next(k for k in ("text", "image", "video", "audio") if getattr(args, k) is not None)
        encoder = QueryEncoder.for_index(index.manifest, args.model)
        vector = encoder.encode(kind, getattr(args, kind))
        result = index.search([kind], vector, **options)
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=2, default=str)
        print()
        return 0
    print_table(result)
    return 0


def check_accounts(wanted: tuple[str, ...], known: list[str]) -> None:
    """An InputError naming the index's accounts when ``wanted`` has one it does not hold
    (a filter on a misspelt account would otherwise return no posts, silently)."""
    unknown = [a for a in wanted if a not in known]
    if not unknown:
        return
    raise InputError(
        f"--account: no posts of {', '.join(map(repr, unknown))} in this index; "
        f"its accounts are: {_listing(known) or '(none recorded: built without --posts)'}"
    )


def _listing(names: list[str], most: int = 50) -> str:
    """``names`` for an error message: the first ``most``, then how many in all."""
    more = f", ... ({len(names)} in all)" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def split_names(values: list[str] | None, known: list[str]) -> tuple[str, ...]:
    """Repeated or comma-separated names; a value that is itself a known name (``"Kyiv,
    Independent"``) is kept whole."""
    names = set(known)
    return tuple(
        n for value in (values or []) for n in ([value] if value in names else csv_list(value))
    )


def check_origins(wanted: tuple[str, ...], known: list[str]) -> None:
    """An InputError naming the index's forward origins when ``wanted`` has one no forward
    comes from (a misspelt origin would otherwise return no posts, silently)."""
    unknown = [o for o in wanted if o not in known]
    if not unknown:
        return
    raise InputError(
        f"--forwarded-from: no post of this index is forwarded from "
        f"{', '.join(map(repr, unknown))}; its forwards come from: "
        f"{_listing(known) or '(none: no post is a forward)'}"
    )


def print_table(result: Any) -> None:
    width = shutil.get_terminal_size((120, 20)).columns
    exact = "exact" if result.exact else "approximate"
    print(
        f"{len(result.hits)} posts ({result.collate} over {'/'.join(result.modalities)}, {exact})"
    )
    for hit in result.hits:
        post = hit.post
        date = (post.get("date") or "")[:16].replace("T", " ")
        # query -> artifact pairs when several artifacts query (nmodal search --post)
        several = len({m.get("query") for m in hit.matches}) > 1
        matched = " ".join(
            (f"{m['query']}→{m['artifact']}" if several else m["artifact"]) + f":{m['score']:.3f}"
            for m in hit.matches
        )
        print(
            f"{hit.rank:>3}  {hit.score:7.3f}  {hit.post_id}  {post.get('account') or '-'}  {date}  [{matched}]"
        )
        text = " ".join(str(post.get("text") or "").split())
        if text:
            room = max(width - 7, 20)
            print(f"       {text[: room - 1] + '…' if len(text) > room else text}")
        origin = provenance_line(post)
        if origin:
            print(f"       {origin}")


def provenance_line(post: dict[str, Any]) -> str:
    """``forwarded from X (channel1, msg 12) · reply to 7 · by Ann · edited · t.me link``."""
    parts = []
    if post.get("forwarded_from"):
        ids = [str(post[c]) for c in ("forwarded_from_id",) if post.get(c)]
        if post.get("forwarded_message_id"):
            ids.append(f"msg {post['forwarded_message_id']}")
        parts.append(
            f"forwarded from {post['forwarded_from']}" + (f" ({', '.join(ids)})" if ids else "")
        )
    if post.get("reply_to_message_id"):
        parts.append(f"reply to {post['reply_to_message_id']}")
    if post.get("author"):
        parts.append(f"by {post['author']}")
    if post.get("views") is not None:
        parts.append(f"{post['views']} views")
    if post.get("url"):
        parts.append(str(post["url"]))
    return " · ".join(parts)
