"""The API's endpoints: one small function each, on :data:`router`.

Each endpoint parses its request (FastAPI parameters, :class:`SearchParams`), asks the
opened index (:class:`ServeState`, found on ``request.app.state.serve`` through the
:func:`serve_state` dependency) and hands the result to :mod:`nmodal.serve.present`. The
endpoint function names are the OpenAPI operation ids (renaming one changes the schema), and
their notes are comments, not docstrings, which FastAPI would publish as descriptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response

from nmodal import __version__
from nmodal.errors import MediaError
from nmodal.index import PostIndex, QueryEncoder
from nmodal.serve.media import THUMB_TYPES, served_file, thumbnail
from nmodal.serve.params import SearchParams
from nmodal.serve.present import (
    MEDIA_KINDS,
    info_json,
    media_response,
    post_json,
    result_json,
)
from nmodal.serve.query_file import check_query_file, encode_query_file
from nmodal.serve.roots import ServedRoots

STATIC_DIR = Path(__file__).parent / "static"


@dataclass(frozen=True)
class ServeState:
    """What every endpoint reads: the opened index, the (lazy) query encoder, the limits,
    the folders media may be served from."""

    index: PostIndex
    encoder: QueryEncoder
    max_upload_bytes: int
    roots: ServedRoots


def serve_state(request: Request) -> ServeState:
    """The app's :class:`ServeState` (a FastAPI dependency; not a query parameter)."""
    state: ServeState = request.app.state.serve
    return state


State = Annotated[ServeState, Depends(serve_state)]
Search = Annotated[SearchParams, Depends()]
router = APIRouter()


def row_or_404(index: PostIndex, post_id: str) -> int:
    """The post's row in ``index``, or a 404 naming the post."""
    try:
        return index.row_of(post_id)
    except KeyError:
        raise HTTPException(404, f"post {post_id!r} is not in the index") from None


def index_media_roots(index: PostIndex) -> list[str]:
    """The roots an index's media lie in: its manifest's ``media_roots``, or the dataset
    folder for indexes from before they were recorded."""
    roots = [str(r) for r in index.manifest.get("media_roots") or []]
    if not roots and index.dataset_dir is not None:
        roots = [str(index.dataset_dir)]
    return roots


def media_path(index: PostIndex, post_id: str, kind: str, served: ServedRoots) -> Path:
    """The post's recorded ``kind`` file, resolved inside its media root and inside a root
    this server serves (403 outside them, 404 when the post, its file or the media root is
    missing)."""
    detail = index.post(row_or_404(index, post_id))
    value = detail.get(f"{kind}_path")
    if not value:
        raise HTTPException(404, f"post {post_id!r} has no {kind} file")
    roots = [str(r) for r in index.manifest.get("media_roots") or []]
    root = detail.get("media_root")
    if not root and index.dataset_dir is None:
        raise HTTPException(404, "this index records no media root")
    try:
        path = served_file(str(value), root, roots, index.dataset_dir)
    except PermissionError:
        raise HTTPException(
            403, f"the {kind} path of post {post_id!r} is outside the collection"
        ) from None
    except FileNotFoundError:
        raise HTTPException(404, f"the {kind} file of post {post_id!r} is missing") from None
    if not served.allows(path):
        raise HTTPException(
            403, f"the {kind} file of post {post_id!r} is outside the media roots served"
        )
    return path


# Liveness and index size.
@router.get("/api/health")
def health(state: State) -> dict[str, Any]:
    idx = state.index
    return {"status": "ok", "posts": idx.num_posts, "modalities": idx.modalities}


# Modalities, accounts and limits: what the web page needs.
@router.get("/api/info")
def info(state: State) -> dict[str, Any]:
    return info_json(state.index, state.max_upload_bytes, __version__)


# Posts matching a text query.
@router.get("/api/search")
def search_text(
    text: Annotated[str, Query(min_length=1, max_length=10_000, description="the text query")],
    params: Search,
    state: State,
) -> JSONResponse:
    vec = state.encoder.encode("text", text)
    result = state.index.search(["text"], vec, **params.search_options())
    return JSONResponse(result_json(state.index, result, params.filters))


# Posts matching an uploaded image, video or audio file.
@router.post("/api/search/file")
def search_file(
    file: Annotated[UploadFile, File(description="an image, video or audio file")],
    params: Search,
    state: State,
    kind: Annotated[
        str | None, Form(description="image, video or audio (default: from the file)")
    ] = None,
) -> JSONResponse:
    query = check_query_file(file, kind, state.max_upload_bytes, state.index.modalities)
    vec = encode_query_file(state.encoder, file, query)
    result = state.index.search([query.kind], vec, **params.search_options())
    out = result_json(state.index, result, params.filters)
    out["upload"] = query.to_dict()
    return JSONResponse(out)


# "More like this": the post's own artifacts are the query.
@router.get("/api/similar")
def similar(
    post_id: Annotated[str, Query(description="the post to find more like")],
    params: Search,
    state: State,
    artifact: Annotated[
        str | None,
        Query(
            pattern="^(text|image|video|audio)$",
            description="only this artifact of the post is the query (default: all it has)",
        ),
    ] = None,
) -> JSONResponse:
    idx = state.index
    row = row_or_404(idx, post_id)
    query = [artifact] if artifact else None
    result = idx.more_like_this(post_id, **params.search_options(), query_modalities=query)
    out = result_json(idx, result, params.filters)
    out["query_post"] = post_json(dict(idx.post(row)))
    return JSONResponse(out)


# The post a reference names: its id, or a link to it (t.me/<channel>/<message>).
@router.get("/api/resolve")
def resolve(
    ref: Annotated[str, Query(min_length=1, max_length=2048, description="a post id or link")],
    state: State,
) -> dict[str, str]:
    post_id = state.index.find_post(ref)
    if post_id is None:
        raise HTTPException(404, "no indexed post has this id or link")
    return {"post_id": post_id}


# One post's metadata.
@router.get("/api/post")
def post(post_id: Annotated[str, Query()], state: State) -> JSONResponse:
    return JSONResponse(post_json(state.index.post(row_or_404(state.index, post_id))))


# The post's media file of ``kind`` (inline when passive media, else a download).
@router.get("/api/media", response_class=FileResponse)
def media(
    post_id: Annotated[str, Query()],
    kind: Annotated[str, Query(pattern="^(image|video|audio)$")],
    state: State,
) -> FileResponse:
    return media_response(media_path(state.index, post_id, kind, state.roots), kind)


# A JPEG thumbnail of the post's image or video, or a PNG waveform of its audio.
@router.get("/api/thumbnail", response_class=Response)
def thumb(
    post_id: Annotated[str, Query()],
    state: State,
    kind: Annotated[
        str | None,
        Query(
            pattern="^(image|video|audio)$",
            description="thumbnail of this file (default: the image, else the video, "
            "else a waveform of the audio)",
        ),
    ] = None,
) -> Response:
    detail = state.index.post(row_or_404(state.index, post_id))
    if kind is None:
        kind = next((k for k in MEDIA_KINDS if detail.get(f"{k}_path")), None)
        if kind is None:
            raise HTTPException(404, f"post {post_id!r} has no image, video or audio file")
    path = media_path(state.index, post_id, kind, state.roots)
    try:
        data = thumbnail(path, kind)
    except MediaError as exc:
        raise HTTPException(422, exc.reason) from None
    return Response(data, media_type=THUMB_TYPES[kind], headers={"cache-control": "max-age=3600"})


# The single-page web UI.
@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")
