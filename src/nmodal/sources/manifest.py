"""A plain JSONL or CSV manifest (any platform) -> raw post records.

One row per post. Columns: ``post_id`` (required, unique), ``account``, ``text``,
``date``, ``video_path``, ``image_path``, ``audio_path`` (``video``, ``image``, ``audio``
are accepted too); relative paths are relative to the manifest's folder. Every other
column (``stance``, ``language``, ...) is carried through as a label column.

Example manifest.jsonl::

    {"post_id": "tw/1", "account": "kyiv_news", "text": "...", "video_path": "media/1.mp4", "stance": "pro-ua"}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from nmodal.errors import InputError
from nmodal.sources.posts import COLUMNS

SOURCE = "manifest"
ALIASES = {"video": "video_path", "image": "image_path", "audio": "audio_path", "id": "post_id"}
RESERVED = ("status", "reason", "notes", "num_frames", "duration", "width", "height", "has_audio")


def _load(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        if suffix == ".tsv":
            return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        rows = []
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}:{lineno}: not JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise InputError(f"{path}:{lineno}: expected a JSON object per line")
                rows.append(row)
        return pd.DataFrame.from_records(rows)
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(f"{path}: cannot read manifest ({exc})") from None


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    """Raw post records of a ``.jsonl``/``.json`` (one object per line) or ``.csv`` manifest."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: manifest not found")
    df = _load(p)
    for alias, canon in ALIASES.items():
        if alias not in df.columns:
            continue
        if canon in df.columns:  # both spellings used: the canonical one wins where set
            empty = df[canon].isna() | (df[canon].astype(str) == "")
            df[canon] = df[canon].where(~empty, df[alias])
            df = df.drop(columns=[alias])
        else:
            df = df.rename(columns={alias: canon})
    if "post_id" not in df.columns:
        raise InputError(f"{p}: the manifest needs a post_id column")
    df = df.drop(columns=[c for c in RESERVED if c in df.columns])
    root = p.parent.resolve()
    records: list[dict[str, Any]] = []
    for row in df.to_dict("records"):
        rec: dict[str, Any] = {k: (None if v == "" or v is pd.NA else v) for k, v in row.items()}
        rec = {k: (None if isinstance(v, float) and v != v else v) for k, v in rec.items()}
        if rec["post_id"] is None:
            raise InputError(f"{p}: a row without post_id")
        rec["post_id"] = str(rec["post_id"])
        rec["source"] = rec.get("source") or SOURCE
        rec["account"] = str(rec["account"]) if rec.get("account") is not None else None
        problems = []
        for col in ("video_path", "image_path", "audio_path"):
            value = rec.get(col)
            if value is None:
                continue
            full = (root / str(value)).resolve()
            if full.is_file():
                rec[col] = str(full)
            else:
                problems.append(f"{col.split('_')[0]}: file not found ({value})")
                rec[col] = None
        rec["problems"] = problems
        records.append(rec)
    labels = [c for c in df.columns if c not in COLUMNS]
    for rec in records:
        for col in labels:
            rec.setdefault(col, None)
    return records
