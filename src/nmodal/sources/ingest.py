"""Records -> filtered posts table -> ``DATASET_DIR/posts.parquet``.

Example:
    >>> result = ingest(read_telegram_export("export"), "data/ds", FilterConfig())  # doctest: +SKIP
    >>> result.summary["kept"], result.path  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from nmodal.errors import InputError, OutputExistsError
from nmodal.sources.filtering import FilterConfig, apply_filter, summarize
from nmodal.sources.posts import COLUMNS, POSTS_FILE, write_posts


@dataclass
class IngestResult:
    """The written table, where it went, and the kept/dropped counts."""

    posts: pd.DataFrame
    path: Path
    summary: dict[str, Any]


def read_account_labels(path: str | Path) -> pd.DataFrame:
    """A CSV or JSONL table with an ``account`` column and one column per label
    (e.g. ``stance``): labels that hold for every post of an account."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: account labels file not found")
    if p.suffix.lower() == ".csv":
        df = pd.read_csv(p, dtype=str)
    else:
        df = pd.read_json(p, lines=True, dtype=False)
    if "account" not in df.columns:
        raise InputError(f"{p}: needs an account column")
    clash = [c for c in df.columns if c in COLUMNS and c != "account"]
    if clash:
        raise InputError(f"{p}: label columns {clash} clash with the posts table's own columns")
    if df["account"].duplicated().any():
        raise InputError(f"{p}: an account is listed twice")
    df["account"] = df["account"].astype(str)
    return df


def ingest(
    records: Sequence[dict[str, Any]],
    out_dir: str | Path,
    cfg: FilterConfig | None = None,
    overwrite: bool = False,
    workers: int | None = None,
    progress: bool = True,
    account_labels: pd.DataFrame | None = None,
) -> IngestResult:
    """Filter ``records`` (probing media), add account labels, write ``posts.parquet``.

    Duplicate post ids (overlapping exports) keep their first occurrence.
    """
    out = Path(out_dir)
    target = out / POSTS_FILE
    if target.exists() and not overwrite:
        raise OutputExistsError(f"{target}: exists (pass --overwrite to replace it)")
    seen: set[str] = set()
    unique = []
    for rec in records:
        if rec["post_id"] not in seen:
            seen.add(rec["post_id"])
            unique.append(rec)
    if not unique:
        raise InputError("no posts found in the input")
    df = apply_filter(unique, cfg, workers=workers, progress=progress)
    labelled = None
    if account_labels is not None:
        labels = account_labels.set_index("account")
        for col in labels.columns:
            df[col] = df["account"].astype(str).map(labels[col])
        accounts = set(df["account"].dropna().astype(str))
        labelled = {
            "accounts_in_file": len(labels.index),
            "matched": sorted(accounts & set(labels.index.astype(str))),
            "collection_accounts": sorted(accounts),
        }
    path = write_posts(df, out, overwrite=True)
    summary = summarize(df)
    if labelled is not None:
        summary["account_labels"] = labelled
    summary["duplicates_skipped"] = len(records) - len(unique)
    return IngestResult(posts=df, path=path, summary=summary)


def format_summary(result: IngestResult) -> str:
    """Human-readable lines: read / kept / dropped by reason, bad records, media missing per
    modality, skipped kinds, and the output path."""
    s = result.summary
    lines = [f"posts read: {s['posts']}  kept: {s['kept']}  dropped: {s['dropped']}"]
    with_ = s.get("kept_with") or {}
    if with_:
        lines.append("kept posts with " + ", ".join(f"{k}: {v}" for k, v in with_.items()))
    if s["dropped_by_reason"]:
        lines.append("dropped, by reason:")
    for reason, n in s["dropped_by_reason"].items():
        lines.append(f"  {n:6d}  {reason}")
    if s.get("bad_records"):
        lines.append(
            f"bad records (unreadable, each one row with file and line): {s['bad_records']}"
        )
    if s.get("media_missing"):
        lines.append(
            "posts with a media file missing or unusable: "
            + ", ".join(f"{k}: {v}" for k, v in s["media_missing"].items())
        )
    if s.get("skipped_kinds"):
        lines.append(
            "posts with content not encoded: "
            + ", ".join(f"{k}: {v}" for k, v in s["skipped_kinds"].items())
        )
    if s.get("account_labels"):
        info = s["account_labels"]
        matched = info["matched"]
        if matched:
            lines.append(f"account labels: {len(matched)} of the collection's accounts labelled")
        else:
            shown = ", ".join(info["collection_accounts"][:20]) or "(none)"
            lines.append(
                f"WARNING: the account labels name none of this collection's accounts "
                f"({info['accounts_in_file']} accounts in the file; the collection's: {shown}): "
                "every label is empty"
            )
    if s.get("duplicates_skipped"):
        lines.append(f"duplicate post ids skipped: {s['duplicates_skipped']}")
    lines.append(f"wrote {result.path}")
    return "\n".join(lines)
