"""The posts table: one row per post, written as ``DATASET_DIR/posts.parquet``.

Columns (always present, in this order; label columns such as ``stance`` follow):

==============  ===============================================================
post_id         unique id, ``"<chat id>/<message id>"`` for Telegram
source          adapter that produced the row (``telegram-export``, ``manifest``, ...)
account         the channel / account the post belongs to
message_id      platform message id (nullable integer)
date            timestamp, UTC
text            the post's text ("" when none)
media_type      ``video_file``, ``animation``, ``video_message``, ``voice_message``,
                ``photo``, ``album`` or null
video_path      the video file
image_path      a still image of the post (a photo); for video posts the image
                modality is a frame of the video (``nmodal.media.sample_video``)
audio_path      the audio: a voice message, or the video itself when its video has
                an audio track
num_frames      frames in the video (nullable)
duration        seconds of video or audio (nullable)
width, height   displayed video size (nullable)
has_audio       whether the post has audio (nullable boolean)
status          ``kept`` or ``dropped``
reason          why a post was dropped (null when kept)
notes           problems with media that did not decide the status (nullable)
media_root      the folder the post's media were found in (the boundary: every media
                path lies inside it; see :mod:`nmodal.sources.paths`)
skipped_media   kinds the post carries that are not encoded (``document``,
                ``sticker``, ``poll``, ...; comma-separated)
==============  ===============================================================

Provenance columns (null where the source does not say; ``docs/post-schema.md``):
``channel_id``, ``channel_username``, ``url`` (the t.me link), ``from_name``, ``from_id``,
``author`` (a channel post's signature), ``forwarded_from`` (name), ``forwarded_from_id``,
``forwarded_date``, ``forwarded_message_id``, ``reply_to_message_id``, ``edited``,
``views``, ``forwards``, ``reactions`` (JSON ``{reaction: count}``), ``album_id``.

On disk, media paths are stored **relative to DATASET_DIR** (POSIX separators) so a
dataset and its media can be moved together; :func:`read_posts` returns absolute paths
by default and :func:`write_posts` accepts either.

Example:
    >>> write_posts(df, "data/ds")  # doctest: +SKIP
    >>> read_posts("data/ds").loc[0, "video_path"]  # doctest: +SKIP
    '/abs/path/export/video_files/clip.mp4'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from nmodal.atomic import writing_file
from nmodal.errors import InputError, OutputExistsError
from nmodal.sources.records import clean_str, safe_int

POSTS_FILE = "posts.parquet"
PATH_COLUMNS = ("video_path", "image_path", "audio_path")
COLUMNS: dict[str, str] = {
    "post_id": "string",
    "source": "string",
    "account": "string",
    "message_id": "Int64",
    "date": "datetime64[us, UTC]",
    "text": "string",
    "media_type": "string",
    "video_path": "string",
    "image_path": "string",
    "audio_path": "string",
    "num_frames": "Int64",
    "duration": "Float64",
    "width": "Int64",
    "height": "Int64",
    "has_audio": "boolean",
    "status": "string",
    "reason": "string",
    "notes": "string",
    "media_root": "string",
    "skipped_media": "string",
    "channel_id": "string",
    "channel_username": "string",
    "url": "string",
    "from_name": "string",
    "from_id": "string",
    "author": "string",
    "forwarded_from": "string",
    "forwarded_from_id": "string",
    "forwarded_date": "datetime64[us, UTC]",
    "forwarded_message_id": "Int64",
    "reply_to_message_id": "Int64",
    "edited": "datetime64[us, UTC]",
    "views": "Int64",
    "forwards": "Int64",
    "reactions": "string",
    "album_id": "string",
}
#: the provenance columns (see the module docs)
PROVENANCE_COLUMNS = (
    "channel_id", "channel_username", "url", "from_name", "from_id", "author",
    "forwarded_from", "forwarded_from_id", "forwarded_date", "forwarded_message_id",
    "reply_to_message_id", "edited", "views", "forwards", "reactions", "album_id",
)  # fmt: skip
STATUSES = ("kept", "dropped")


def posts_frame(records: list[dict] | pd.DataFrame) -> pd.DataFrame:
    """A posts table with every standard column in its dtype (missing ones null)."""
    df = records.copy() if isinstance(records, pd.DataFrame) else pd.DataFrame.from_records(records)
    for col, dtype in COLUMNS.items():
        if col not in df.columns:
            df[col] = pd.Series([None] * len(df), dtype="object")
        if dtype.startswith("datetime"):
            df[col] = _dates(df[col]).astype(dtype)
        elif dtype == "Int64":
            df[col] = pd.array([safe_int(v) for v in df[col]], dtype="Int64")
        elif col == "text":
            df[col] = df[col].map(_as_text, na_action="ignore").fillna("").astype(dtype)
        elif dtype == "string":
            df[col] = df[col].map(_as_text, na_action="ignore").astype(dtype)
        else:
            df[col] = df[col].astype(dtype)
    extra = [c for c in df.columns if c not in COLUMNS]
    return df[list(COLUMNS) + extra].reset_index(drop=True)


def _as_text(value: Any) -> Any:
    """A string cell: strings cleaned, numbers as text, None kept."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and value != value:
        return None
    return clean_str(value if isinstance(value, str) else str(value))


def utc_timestamp(v: Any) -> Any:
    """One cell of the ``date`` column as a UTC timestamp; NaT for anything that is not a
    date (or is out of range)."""
    if v is None or v is pd.NA or (isinstance(v, float) and v != v):
        return pd.NaT
    if isinstance(v, (list, dict, bool)):
        return pd.NaT
    try:
        ts = pd.Timestamp(v)
    except (ValueError, TypeError, OverflowError):
        return pd.NaT
    if ts is pd.NaT:
        return pd.NaT
    try:
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    except (ValueError, OverflowError):
        return pd.NaT


def _dates(values: pd.Series) -> pd.Series:
    """UTC timestamps; anything that is not a date (or out of range) becomes NaT."""
    return pd.Series([utc_timestamp(v) for v in values], index=values.index, dtype="object").pipe(
        lambda s: pd.to_datetime(s, utc=True, errors="coerce")
    )


def _relative(path: object, base: Path) -> object:
    if path is None or path is pd.NA or (isinstance(path, float) and path != path):
        return None
    p = Path(str(path))
    if not p.is_absolute():
        return p.as_posix()
    try:
        return Path(os.path.relpath(p, base)).as_posix()
    except ValueError:  # another drive on Windows
        return p.as_posix()


def _absolute(path: object, base: Path) -> object:
    if path is None or path is pd.NA:
        return None
    return os.path.normpath(base / str(path))


def validate_posts(df: pd.DataFrame, where: str = "posts") -> None:
    """InputError unless ``df`` has unique non-empty post ids and valid statuses."""
    missing = [c for c in ("post_id", "status") if c not in df.columns]
    if missing:
        raise InputError(f"{where}: missing columns {missing}")
    ids = df["post_id"]
    if ids.isna().any() or (ids.astype(str) == "").any():
        raise InputError(f"{where}: empty post_id")
    dup = ids[ids.duplicated()]
    if len(dup):
        raise InputError(f"{where}: duplicate post_id {dup.iloc[0]!r} ({len(dup)} duplicates)")
    bad = ~df["status"].isin(STATUSES)
    if bad.any():
        raise InputError(
            f"{where}: status must be kept or dropped, got {df['status'][bad].iloc[0]!r}"
        )
    no_reason = (df["status"] == "dropped") & df["reason"].isna()
    if no_reason.any():
        raise InputError(
            f"{where}: dropped post {df['post_id'][no_reason].iloc[0]!r} has no reason"
        )


def write_posts(df: pd.DataFrame, dataset_dir: str | Path, overwrite: bool = True) -> Path:
    """Write ``df`` to ``dataset_dir/posts.parquet`` atomically (temp file + rename).

    Absolute media paths are stored relative to ``dataset_dir``.
    """
    base = Path(dataset_dir).resolve()
    out = base / POSTS_FILE
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out}: exists (pass --overwrite)")
    df = posts_frame(df)
    validate_posts(df, str(out))
    for col in PATH_COLUMNS:
        df[col] = df[col].map(lambda p: _relative(p, base), na_action="ignore").astype("string")
    base.mkdir(parents=True, exist_ok=True)
    with writing_file(out) as tmp:
        df.to_parquet(tmp, index=False)
    return out


def read_posts(
    dataset_dir: str | Path, absolute: bool = True, status: str | None = None
) -> pd.DataFrame:
    """The posts table of ``dataset_dir`` (media paths absolute unless ``absolute=False``).

    ``status="kept"`` returns only the posts that passed the filter.
    """
    base = Path(dataset_dir).resolve()
    path = base / POSTS_FILE
    if not path.is_file():
        raise InputError(f"{path}: no posts table (run `nmodal ingest ... --out {dataset_dir}`)")
    df = posts_frame(pd.read_parquet(path))
    if absolute:
        for col in PATH_COLUMNS:
            df[col] = df[col].map(lambda p: _absolute(p, base), na_action="ignore").astype("string")
    if status is not None:
        df = df[df["status"] == status].reset_index(drop=True)
    return df
