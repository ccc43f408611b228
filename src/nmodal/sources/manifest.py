"""A plain JSONL or CSV manifest (any platform) -> raw post records.

One row per post. Columns: ``post_id`` (required, unique), ``account``, ``text``,
``date``, ``video_path``, ``image_path``, ``audio_path`` (``video``, ``image``, ``audio``
are accepted too); relative paths are relative to the manifest's folder, and every media
file must lie inside that folder (or ``media_root`` when given: :mod:`nmodal.sources.paths`).
The provenance columns of the posts table (``forwarded_from``, ``reply_to_message_id``,
``url``, ... see ``docs/post-schema.md``) are read when present. Every other column
(``stance``, ``language``, ...) is carried through as a label column.

A JSONL line that is not JSON, not UTF-8 or not an object, and a row without a
``post_id``, becomes one ``bad record`` row naming the file and line; the other rows are
read. A byte-order mark is ignored (JSONL and CSV alike).

Example manifest.jsonl::

    {"post_id": "tw/1", "account": "kyiv_news", "text": "...", "video_path": "media/1.mp4", "stance": "pro-ua"}
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from nmodal.errors import InputError
from nmodal.sources.paths import MediaRoot
from nmodal.sources.posts import COLUMNS, utc_timestamp
from nmodal.sources.records import bad_record, clean_str, clean_value, load_json_text

SOURCE = "manifest"
ALIASES = {"video": "video_path", "image": "image_path", "audio": "audio_path", "id": "post_id"}
RESERVED = ("status", "reason", "notes", "num_frames", "duration", "width", "height",
            "has_audio", "media_root")  # fmt: skip


def _load(path: Path) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The manifest's rows (a ``_line`` column: where each is, ``"line 5"`` or ``"item 3"``)
    and bad-record rows."""
    suffix = path.suffix.lower()
    bad: list[dict[str, Any]] = []
    try:
        if suffix in (".csv", ".tsv"):
            df = pd.read_csv(
                path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False,
                encoding="utf-8-sig", encoding_errors="replace",
            )  # fmt: skip
            df["_line"] = [f"line {i}" for i in range(2, len(df) + 2)]
            return df, bad
        rows = []
        if suffix == ".json":
            array = _json_array(path, bad)
            if array is not None:
                return pd.DataFrame.from_records(array), bad
        with path.open("rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                if lineno == 1:
                    raw = raw.removeprefix(b"\xef\xbb\xbf")
                if not raw.strip():
                    continue
                try:
                    row = load_json_text(raw.decode("utf-8"), f"{path}:{lineno}")
                except UnicodeDecodeError as exc:
                    bad.append(
                        bad_record(path, f"line {lineno}", f"not UTF-8 ({exc.reason})", SOURCE)
                    )
                    continue
                except ValueError as exc:
                    bad.append(bad_record(path, f"line {lineno}", str(exc), SOURCE))
                    continue
                if not isinstance(row, dict):
                    bad.append(bad_record(path, f"line {lineno}", "not a JSON object", SOURCE))
                    continue
                row = {clean_str(str(k)): clean_value(v) for k, v in row.items()}
                row["_line"] = f"line {lineno}"
                rows.append(row)
        return pd.DataFrame.from_records(rows), bad
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path}: cannot read manifest ({exc})") from None


def _json_array(path: Path, bad: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The records of a ``.json`` manifest that is one JSON array of objects (element ``i``
    is "item i"); None when the file is not one array (then it is read as JSON lines)."""
    with path.open("rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"["):
        return None
    try:
        doc = load_json_text(path.read_bytes().decode("utf-8-sig"), str(path))
    except (UnicodeDecodeError, ValueError):
        return None  # not one valid array: line by line, each bad line reported
    if not isinstance(doc, list):
        return None
    rows = []
    for i, item in enumerate(doc, 1):
        if not isinstance(item, dict):
            bad.append(bad_record(path, f"item {i}", "not a JSON object", SOURCE))
            continue
        row = {clean_str(str(k)): clean_value(v) for k, v in item.items()}
        row["_line"] = f"item {i}"
        rows.append(row)
    return rows


def _cell(value: Any) -> Any:
    """A manifest cell: empty strings and NaN as None, strings cleaned."""
    if value is None or value is pd.NA or (isinstance(value, str) and value == ""):
        return None
    if isinstance(value, float) and value != value:
        return None
    return clean_value(value)


def read_posts_manifest(
    path: str | Path, media_root: str | Path | None = None
) -> list[dict[str, Any]]:
    """Raw post records of a ``.jsonl``/``.json`` (one object per line) or ``.csv`` manifest.

    Media are read only inside ``media_root`` (default: the manifest's folder); relative
    paths are relative to the manifest's folder.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"{p}: {'a folder, not a manifest file' if p.is_dir() else 'manifest not found'}"
        )
    df, bad = _load(p)
    if df.empty and bad:
        return bad
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
    root = MediaRoot(media_root if media_root is not None else p.parent, bases=(p.parent,))
    records: list[dict[str, Any]] = list(bad)
    for row in df.to_dict("records"):
        line = row.pop("_line", "?")
        rec: dict[str, Any] = {str(k): _cell(v) for k, v in row.items()}
        if rec["post_id"] is None or isinstance(rec["post_id"], (list, dict)):
            records.append(bad_record(p, line, "no post_id", SOURCE))
            continue
        rec["post_id"] = str(rec["post_id"])
        rec["source"] = str(rec.get("source") or SOURCE)
        rec["account"] = str(rec["account"]) if rec.get("account") is not None else None
        if not isinstance(rec.get("text"), (str, type(None))):
            rec["text"] = str(rec["text"])
        rec["media_root"] = str(root)
        problems = []
        for col in ("video_path", "image_path", "audio_path"):
            value = rec.get(col)
            if value is None:
                continue
            full, problem = root.resolve(str(value) if not isinstance(value, str) else value)
            if full is not None:
                rec[col] = str(full)
            else:
                if str(problem).startswith("file missing"):
                    problem = "file not found" + str(problem)[len("file missing") :]
                problems.append(f"{col.split('_')[0]}: {problem}")
                rec[col] = None
        date = rec.get("date")
        if date is not None and str(date).strip() and utc_timestamp(date) is pd.NaT:
            problems.append(f"date: not a date ({str(date)[:40]!r}), left empty")
            rec["date"] = None
        rec["problems"] = problems
        records.append(rec)
    labels = [c for c in df.columns if c not in COLUMNS and c != "_line"]
    for rec in records:
        for col in labels:
            rec.setdefault(col, None)
    for col in labels:
        _one_type(records, col)
    return records


def _one_type(records: list[dict[str, Any]], col: str) -> None:
    """Label column ``col`` of one type, so that it can be stored: a column whose values
    mix types (a number here, text or a list there) holds them all as text (JSON for
    lists and objects)."""
    kinds = {type(r[col]) for r in records if r.get(col) is not None}
    if len(kinds) <= 1 and not kinds & {list, dict}:
        return
    for r in records:
        v = r.get(col)
        if v is not None and not isinstance(v, str):
            r[col] = json.dumps(v, ensure_ascii=False) if isinstance(v, list | dict) else str(v)


def read_manifest(path: str | Path, media_root: str | Path | None = None) -> list[dict[str, Any]]:
    """Deprecated name of :func:`read_posts_manifest` (it emits a ``DeprecationWarning``).

    The library reads four different manifests (a posts manifest, a feature store's, an
    index's, the demo corpus's); each reader is now named after what it reads.
    """
    warnings.warn(
        "nmodal.sources.read_manifest is deprecated; use read_posts_manifest",
        DeprecationWarning,
        stacklevel=2,
    )
    return read_posts_manifest(path, media_root=media_root)
