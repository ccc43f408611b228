"""Which posts are kept, and media inspection.

The default keeps every post with at least one usable artifact: some text, or a media file
that was found and decodes. The paper's filter (a video of >= 64 frames and text of >= 5
words) is the named preset ``paper`` (:meth:`FilterConfig.preset`), used by the demo and
for reproducing the paper.

Adapters produce raw records (dicts with the posts columns, plus ``drop`` for posts that
are not posts at all, e.g. service messages, and ``problems``: what went wrong with a
media file, such as a skip string in an export). :func:`apply_filter` inspects every media
file (in a process pool, with a progress bar) and decides ``status`` and ``reason``;
a broken file makes a dropped post with its reason, never a crash.

Example:
    >>> cfg = FilterConfig.preset("paper")  # video >= 64 frames and text >= 5 words  # doctest: +SKIP
    >>> df = apply_filter(records, cfg, workers=4)  # doctest: +SKIP
    >>> df["status"].value_counts()  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from nmodal.errors import InputError, MediaError
from nmodal.sources.posts import posts_frame
from nmodal.sources.probe_pool import run_bounded
from nmodal.sources.records import ERROR_PREFIX, dedup_notes

MODALITIES = ("text", "video", "image", "audio")
_WORD = re.compile(r"\w", re.UNICODE)
#: scripts written without spaces between words: each character counts as a word
_UNSPACED = re.compile(
    "[\u2e80-\u2fdf\u3040-\u30ff\u3100-\u312f\u3190-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uf900-\ufaff\U00020000-\U0003134f\u0e00-\u0e7f\u0e80-\u0eff\u1000-\u109f\u1780-\u17ff]"
)
PRESETS = ("all", "paper")
PROBE_TIMEOUT = 120.0  # seconds one post's media may take to probe in a worker


@dataclass(frozen=True)
class FilterConfig:
    """Which posts are kept: ``require`` lists the modalities a post must have; a required
    video needs ``min_frames`` frames, required text ``min_words`` words. A post's image
    may be a frame of its video, its audio the video's soundtrack."""

    min_frames: int = 0
    min_words: int = 0
    require: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted(set(self.require) - set(MODALITIES))
        if unknown:
            raise InputError(f"--require: unknown modality {unknown}; choose from {MODALITIES}")
        if self.min_frames < 0 or self.min_words < 0:
            raise InputError("--min-frames and --min-words must be >= 0")

    @classmethod
    def preset(cls, name: str, **overrides: object) -> FilterConfig:
        """``"all"`` (the default: every post with a usable artifact) or ``"paper"`` (a video
        of >= 64 frames and text of >= 5 words); ``overrides`` replace single settings."""
        if name not in PRESETS:
            raise InputError(f"--filter: unknown preset {name!r}; choose from {PRESETS}")
        base = (
            {"min_frames": 64, "min_words": 5, "require": ("video", "text")}
            if name == "paper"
            else {}
        )
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)  # type: ignore[arg-type]

    @classmethod
    def parse_require(cls, text: str) -> tuple[str, ...]:
        """``"video,text"`` -> ``("video", "text")``; ``""`` or ``"none"`` -> ``()``."""
        if text.strip().lower() in ("", "none"):
            return ()
        return tuple(t.strip().lower() for t in text.split(",") if t.strip())


def count_words(text: str | None) -> int:
    """Words of ``text``: whitespace-separated tokens that contain a letter or digit (emoji
    and punctuation alone are not words), where every character of a script written without
    spaces (Chinese, Japanese, Thai, Lao, Khmer, Burmese) counts as one word.

    >>> count_words("Breaking: 3 tanks seen near Kharkiv 🔥 !!")
    6
    >>> count_words("川陀大学图书馆 opens")
    8
    """
    if not text:
        return 0
    words = 0
    for tok in text.split():
        unspaced = len(_UNSPACED.findall(tok))
        if unspaced:
            rest = _UNSPACED.sub(" ", tok).split()
            words += unspaced + sum(1 for t in rest if _WORD.search(t))
        elif _WORD.search(tok):
            words += 1
    return words


def inspect_media(video: str | None, image: str | None, audio: str | None) -> dict[str, Any]:
    """Probe a post's media files; errors come back as ``<kind>_error`` strings."""
    from nmodal.media import probe  # lazy: PyAV and Pillow only when probing media
    from nmodal.media.image import load_image  # lazy: PyAV and Pillow only when probing media

    out: dict[str, Any] = {}
    if video:
        try:
            info = probe(video, decode_first_frame=True)
            if not info.has_video or info.is_still_image:
                raise MediaError(video, "no video stream", "probe")
            out.update(
                num_frames=info.num_frames,
                duration=info.duration,
                width=info.width,
                height=info.height,
                video_has_audio=info.has_audio,
            )
        except MediaError as exc:
            out["video_error"] = exc.reason
    if image:
        try:
            load_image(image, max_side=64)
        except MediaError as exc:
            out["image_error"] = exc.reason
    if audio and audio != video:
        try:
            info = probe(audio, decode_first_frame=False)
            if not info.has_audio:
                raise MediaError(audio, "no audio track", "probe")
            if not video:
                out["duration"] = info.duration
        except MediaError as exc:
            out["audio_error"] = exc.reason
    return out


def _inspect_star(args: tuple[str | None, str | None, str | None]) -> dict[str, Any]:
    return inspect_media(*args)


def _failed_probe(job: tuple[str | None, str | None, str | None], reason: str) -> dict[str, Any]:
    """The result of a post whose probe hung or crashed its worker: each file failed."""
    out: dict[str, Any] = {}
    for kind, path in zip(("video", "image", "audio"), job, strict=True):
        if path and not (kind == "audio" and path == job[0]):
            out[f"{kind}_error"] = reason
    return out


def inspect_all(
    jobs: Sequence[tuple[str | None, str | None, str | None]],
    workers: int | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """:func:`inspect_media` for every ``(video, image, audio)`` in a process pool.

    ``workers=0`` runs in this process; ``None`` uses up to 8 CPU cores. In a pool a post
    whose probe runs past :data:`PROBE_TIMEOUT` seconds or kills its worker gets an error
    for its files; the others go on (:func:`nmodal.sources.probe_pool.run_bounded`).
    """
    todo = [i for i, job in enumerate(jobs) if any(job)]
    results: list[dict[str, Any]] = [{} for _ in jobs]
    if not todo:
        return results
    workers = min(os.cpu_count() or 1, 8) if workers is None else workers
    bar = tqdm(total=len(todo), desc="probing media", unit="post", disable=not progress)
    if workers <= 1 or len(todo) < 4:
        it: Iterable[dict[str, Any]] = (_inspect_star(jobs[i]) for i in todo)
        for i, res in zip(todo, it, strict=True):
            results[i] = res
            bar.update()
    else:
        bounded = run_bounded(
            _inspect_star, [jobs[i] for i in todo], workers, PROBE_TIMEOUT, _failed_probe
        )
        for i, res in zip(todo, bounded, strict=True):
            results[i] = res
            bar.update()
    bar.close()
    return results


def _decide(rec: dict[str, Any], media: dict[str, Any], cfg: FilterConfig) -> dict[str, Any]:
    """Fill media columns, status and reason of one raw record."""
    row = {k: v for k, v in rec.items() if k not in ("drop", "problems")}
    problems: list[str] = list(rec.get("problems") or [])
    for key in ("num_frames", "duration", "width", "height"):
        if key in media:
            row[key] = media[key]
    for kind, col in (("video", "video_path"), ("image", "image_path"), ("audio", "audio_path")):
        if f"{kind}_error" in media:
            # which file (its name: notes are shown to whoever reads the collection)
            name = Path(str(rec[col])).name if rec.get(col) else ""
            problems.append(f"{kind}: {media[kind + '_error']}" + (f" ({name})" if name else ""))
            row[col] = None
    video = row.get("video_path")
    if video and media.get("video_has_audio") and not row.get("audio_path"):
        row["audio_path"] = video
    row["has_audio"] = bool(row.get("audio_path"))

    reasons: list[str] = []
    if rec.get("drop"):
        reasons.append(rec["drop"])
    elif not (
        str(row.get("text") or "").strip()
        or video
        or row.get("image_path")
        or row.get("audio_path")
    ):
        unusable = [p for p in problems if p.split(":")[0] in ("video", "image", "audio")]
        skipped = rec.get("skipped_media")
        why = (
            unusable[0] if unusable else (f"only {skipped}" if skipped else "no text and no media")
        )
        reasons.append(f"no usable artifact: {why}")
    else:

        def why_missing(kind: str) -> str:
            related = [p for p in problems if p.startswith(f"{kind}:")]
            return related[0] if related else f"no {kind}"

        if "video" in cfg.require:
            if not video:
                reasons.append(why_missing("video"))
            elif (row.get("num_frames") or 0) < cfg.min_frames:
                reasons.append(
                    f"video too short: {row.get('num_frames')} frames < {cfg.min_frames}"
                )
        if "text" in cfg.require:
            words = count_words(row.get("text"))
            if words == 0:
                reasons.append("no text")
            elif words < cfg.min_words:
                reasons.append(f"text too short: {words} words < {cfg.min_words}")
        if "image" in cfg.require and not (row.get("image_path") or video):
            reasons.append(why_missing("image"))
        if "audio" in cfg.require and not row.get("audio_path"):
            reasons.append(why_missing("audio"))
    row["status"] = "dropped" if reasons else "kept"
    row["reason"] = "; ".join(reasons) if reasons else None
    row["notes"] = "; ".join(dedup_notes(problems)) if problems else None
    return row


def apply_filter(
    records: Sequence[dict[str, Any]],
    cfg: FilterConfig | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Inspect the media of ``records`` and decide each post's ``status`` and ``reason``."""
    cfg = cfg or FilterConfig()
    jobs = [
        (None, None, None)
        if rec.get("drop")
        else (rec.get("video_path"), rec.get("image_path"), rec.get("audio_path"))
        for rec in records
    ]
    media = inspect_all(jobs, workers=workers, progress=progress)
    rows = [_decide(rec, m, cfg) for rec, m in zip(records, media, strict=True)]
    return posts_frame(rows)


def _reason_kind(reason: str) -> str:
    """``"text too short: 3 words < 5"`` -> ``"text too short: N words < N"``."""
    no_details = re.sub(r"\s*\([^)]*\)", "", reason)
    return re.sub(r"\b\d+\b", "N", no_details).strip()


def _missing_kind(note: str) -> str | None:
    """The modality a note reports as missing or unusable (``"image: not included..."``)."""
    kind, sep, _ = note.partition(":")
    return kind if sep and kind in ("video", "image", "audio") else None


def summarize(df: pd.DataFrame) -> dict[str, Any]:
    """What ingest did: posts read, kept, dropped by kind of reason (numbers become N and
    parenthesised details go, so "text too short: 3 words < 5" and "...: 2 words < 5" count
    together), bad records, media files missing or unusable per modality (one per post and
    modality), and posts per skipped kind (documents, stickers, polls, ...)."""
    dropped = df[df["status"] == "dropped"]
    kinds = (
        dropped["reason"]
        .astype(str)
        .str.split(";")
        .map(lambda parts: [_reason_kind(p) for p in parts])
    )
    by_reason = pd.Series([k for ks in kinds for k in ks], dtype="object").value_counts()
    missing: dict[str, int] = {}
    for notes in df.get("notes", pd.Series(dtype="object")).dropna().astype(str):
        for kind in {_missing_kind(n.strip()) for n in notes.split(";")} - {None}:
            missing[str(kind)] = missing.get(str(kind), 0) + 1
    skipped: dict[str, int] = {}
    if "skipped_media" in df:
        for value in df["skipped_media"].dropna().astype(str):
            for kind in value.split(","):
                skipped[kind] = skipped.get(kind, 0) + 1
    kept = df["status"] == "kept"
    text = df.get("text", pd.Series("", index=df.index)).fillna("").astype(str).str.strip() != ""
    ids = df.get("post_id", pd.Series("", index=df.index)).astype(str)
    return {
        "posts": len(df),
        "kept": int(kept.sum()),
        "dropped": len(dropped),
        "dropped_by_reason": {str(k): int(v) for k, v in by_reason.items()},
        "bad_records": int(ids.str.startswith(ERROR_PREFIX).sum()),
        "kept_with": {
            "text": int((kept & text).sum()),
            **{
                m: int((kept & df[f"{m}_path"].notna()).sum())
                for m in ("video", "image", "audio")
                if f"{m}_path" in df
            },
        },
        "media_missing": dict(sorted(missing.items())),
        "skipped_kinds": dict(sorted(skipped.items(), key=lambda kv: -kv[1])),
    }
