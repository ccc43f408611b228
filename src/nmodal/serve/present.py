"""How the API presents what it found: search results and posts as JSON (with their media
URLs and without file paths) and a collection's media files as safe HTTP responses."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi.responses import FileResponse

from nmodal.index import Filters, PostIndex, SearchResult
from nmodal.serve.security import without_paths

MEDIA_KINDS = ("image", "video", "audio")


def result_json(
    index: PostIndex, result: SearchResult, filters: Filters | None = None
) -> dict[str, Any]:
    """The response body of a search (plain JSON values: answered as a JSONResponse directly,
    which skips FastAPI's slow generic re-encoding). ``unknown_accounts`` /
    ``unknown_origins``: filter values no post of the index has (a misspelt account would
    otherwise just return no posts)."""
    out = result.to_dict()
    for hit in out["hits"]:
        hit["post"] = post_json(hit["post"])
    out["total_posts"] = index.num_posts
    if filters is not None:
        for key, wanted, known in (
            ("unknown_accounts", filters.accounts, index.accounts_list),
            ("unknown_origins", filters.forwarded_from, index.origins_list),
        ):
            names = set(known()) if wanted else set()
            unknown = [n for n in wanted if n not in names]
            if unknown:
                out[key] = unknown
    return out


def post_urls(post: dict[str, Any]) -> dict[str, str]:
    """The API URLs of a post's media files and thumbnail (only those it has)."""
    pid = quote(str(post["post_id"]), safe="")
    urls: dict[str, str] = {}
    for kind in MEDIA_KINDS:
        if post.get(f"{kind}_path"):
            urls[kind] = f"/api/media?post_id={pid}&kind={kind}"
    if any(post.get(f"{kind}_path") for kind in MEDIA_KINDS):
        urls["thumbnail"] = f"/api/thumbnail?post_id={pid}"
    return urls


#: served inline: media types a browser only displays or plays (SVG, HTML or XML could run
#: scripts at the app's own address, so collections' files of those types are downloads)
SCRIPTLESS_IMAGES = ("image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp",
                     "image/avif", "image/tiff", "image/heic", "image/heif")  # fmt: skip
#: types of common channel media that the system's MIME table may lack
MEDIA_SUFFIXES = {".m4a": "audio/mp4", ".opus": "audio/ogg", ".oga": "audio/ogg",
                  ".ogg": "audio/ogg", ".mkv": "video/x-matroska", ".webm": "video/webm",
                  ".mov": "video/quicktime", ".webp": "image/webp", ".heic": "image/heic",
                  ".avif": "image/avif"}  # fmt: skip
#: on every media file: no type sniffing, and no scripts even when opened directly
MEDIA_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}


def media_response(path: Path, kind: str) -> FileResponse:
    """A collection's file: inline when it is passive media of its ``kind``, otherwise an
    ``application/octet-stream`` download (collections hold whatever a channel posted)."""
    suffix = path.suffix.lower()
    guessed = MEDIA_SUFFIXES.get(suffix) or mimetypes.guess_type(path.name)[0] or ""
    if kind == "image":
        passive = guessed in SCRIPTLESS_IMAGES
    else:  # players accept either family (a voice note in .webm guesses as video/webm)
        passive = guessed.split("/")[0] in ("audio", "video")
    if passive:
        return FileResponse(path, media_type=guessed, headers=MEDIA_HEADERS)
    return FileResponse(
        path, media_type="application/octet-stream", filename=path.name, headers=MEDIA_HEADERS
    )


def post_json(post: dict[str, Any]) -> dict[str, Any]:
    """One post's metadata as the API shows it: its media URLs, no file paths, and
    ``audio_from_video`` when its audio is its video's own sound track (one player)."""
    post["urls"] = post_urls(post)
    post["audio_from_video"] = audio_from_video(post)
    return without_paths(post)


def audio_from_video(post: dict[str, Any]) -> bool:
    """True when the post's audio artifact is the sound track of its video file."""
    audio, video = post.get("audio_path"), post.get("video_path")
    return bool(audio) and audio == video


def info_json(index: PostIndex, max_upload_bytes: int, version: str) -> dict[str, Any]:
    """The body of ``/api/info``: what the web page needs to know about the index."""
    return {
        "version": version,
        "posts": index.num_posts,
        "modalities": index.modalities,
        "query_kinds": ["text", *[m for m in MEDIA_KINDS if m in index.modalities]],
        "accounts": index.accounts_list(),
        "max_upload_bytes": max_upload_bytes,
        "index": {
            m: {
                "factory": i["factory"],
                "count": i["count"],
                "nlist": index.nlist(m),
                "nprobe": index.default_nprobe(m),
            }
            for m, i in index.manifest["modalities"].items()
        },
    }
