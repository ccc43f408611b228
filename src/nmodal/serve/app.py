"""The HTTP API and web page for analysts (FastAPI; OpenAPI docs at ``/docs``).

Endpoints (all JSON unless noted):

- ``GET /api/health``: liveness and index size.
- ``GET /api/info``: modalities, accounts, limits (what the web page needs).
- ``GET /api/search?text=...``: posts matching a text query.
- ``POST /api/search/file``: posts matching an uploaded image/video/audio file (multipart
  field ``file``, optional ``kind``); size-limited, type-checked by magic bytes.
- ``GET /api/similar?post_id=...``: "more like this": the post's artifacts are the query.
- ``GET /api/post?post_id=...``: one post's metadata.
- ``GET /api/media?post_id=...&kind=image``: the post's media file (only the files the index
  recorded at build time, inside their media roots: :func:`nmodal.serve.media.served_file`);
  ``GET /api/thumbnail?post_id=...``: a JPEG thumbnail of its image or
  video, or a PNG waveform of its audio when it has neither (``kind`` picks one).
- ``GET /``: the single-page web UI (static files shipped in the package, no CDN).

Search endpoints share the filters ``k``, ``account`` (repeatable), ``since``, ``until``,
``forwarded_from`` (repeatable: origin names or ids), ``forwards`` (``any``/``only``/``none``),
``modality`` (comma-separated candidate modalities), ``collate`` (``sum``/``mean``),
``same_modality`` (default true: the query's own modality is compared too; false is the
paper's other-modalities rule), and
``nprobe`` (IVF lists visited by this request on approximate indexes).

Example:
    >>> app = create_app("indexes/i1")  # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

import mimetypes
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from nmodal import __version__
from nmodal.errors import InputError, MediaError
from nmodal.index import Filters, PostIndex, QueryEncoder, SearchResult
from nmodal.index.query import EncoderSource, EncoderUnavailableError
from nmodal.serve.media import THUMB_TYPES, served_file, thumbnail
from nmodal.serve.security import SecurityConfig, install_security, without_paths
from nmodal.serve.uploads import SUFFIX, BodySizeLimit, declared_family, sniff

STATIC_DIR = Path(__file__).parent / "static"
DEFAULT_MAX_UPLOAD = 50 * 1024 * 1024
MEDIA_KINDS = ("image", "video", "audio")
#: multipart framing around the file is allowed on top of the file size limit
MULTIPART_SLACK = 64 * 1024
NPROBE_HELP = (
    "approximate (IVF) indexes: inverted lists visited by this request only (more: better "
    "recall, slower; default: the server's setting, see /api/info). Capped at each index's "
    "number of lists; accepted and without effect on exact indexes."
)


class SearchParams:
    """The filters every search endpoint accepts."""

    def __init__(
        self,
        k: Annotated[int, Query(ge=1, le=500, description="number of posts to return")] = 20,
        account: Annotated[
            list[str] | None, Query(description="only these accounts (repeatable)")
        ] = None,
        since: Annotated[
            str | None, Query(description="only posts on/after this date (YYYY-MM-DD or ISO)")
        ] = None,
        until: Annotated[
            str | None, Query(description="only posts on/before this date (inclusive)")
        ] = None,
        modality: Annotated[
            str | None,
            Query(description="candidate modalities to match, comma-separated (default: all)"),
        ] = None,
        collate: Annotated[
            str,
            Query(
                pattern="^(sum|mean)$", description="post score: sum or mean of pair similarities"
            ),
        ] = "sum",
        same_modality: Annotated[
            bool,
            Query(
                description="compare the query with a post's artifacts of its own modality too "
                "(default; false: the paper's rule, other modalities only)"
            ),
        ] = True,
        include_same: Annotated[
            bool | None, Query(description="the same switch under its older name (wins if given)")
        ] = None,
        forwarded_from: Annotated[
            list[str] | None,
            Query(description="only forwards from these origins (names or ids; repeatable)"),
        ] = None,
        forwards: Annotated[
            str,
            Query(pattern="^(any|only|none)$", description="only forwards, none, or any post"),
        ] = "any",
        nprobe: Annotated[int | None, Query(ge=1, description=NPROBE_HELP)] = None,
        ef_search: Annotated[
            int | None, Query(ge=1, description="HNSW indexes: candidates explored per query")
        ] = None,
        k_factor: Annotated[
            float | None,
            Query(ge=1, description="refined (RFlat) indexes: candidates re-ranked per result"),
        ] = None,
    ) -> None:
        self.k = k
        accounts = [a.strip() for value in (account or []) for a in value.split(",") if a.strip()]
        origins = [o.strip() for v in (forwarded_from or []) for o in v.split(",") if o.strip()]
        self.filters = Filters(
            accounts=tuple(accounts),
            since=since or None,
            until=until or None,
            forwarded_from=tuple(origins),
            forwards=forwards,
        )
        self.modalities = [m.strip() for m in (modality or "").split(",") if m.strip()] or None
        self.collate = collate
        self.include_same = same_modality if include_same is None else include_same
        self.nprobe = nprobe
        self.params = {"efSearch": ef_search, "k_factor": k_factor}

    def search_options(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`PostIndex.search` / :meth:`PostIndex.more_like_this`."""
        return {
            "k": self.k,
            "filters": self.filters,
            "modalities": self.modalities,
            "collation": self.collate,
            "include_same": self.include_same,
            "nprobe": self.nprobe,
            "params": self.params,
        }


def _result_json(index: PostIndex, result: SearchResult) -> dict[str, Any]:
    """The response body of a search (plain JSON values: answered as a JSONResponse directly,
    which skips FastAPI's slow generic re-encoding)."""
    out = result.to_dict()
    for hit in out["hits"]:
        post = hit["post"]
        post["urls"] = _post_urls(post)
        hit["post"] = without_paths(post)
    out["total_posts"] = index.num_posts
    return out


def _post_urls(post: dict[str, Any]) -> dict[str, str]:
    from urllib.parse import quote

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


def create_app(
    index: PostIndex | str | Path,
    *,
    model_dir: str | Path | None = None,
    encoder_source: EncoderSource | None = None,
    query_encoder: QueryEncoder | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
    security: SecurityConfig | None = None,
) -> FastAPI:
    """The FastAPI app serving ``index``.

    Queries by text or file are encoded lazily (first use) with the index's model (or
    ``model_dir``, fingerprint-checked) and the encoders from ``encoder_source`` (default: the
    encoder registry). Searches by post id need neither. ``security`` (default: loopback
    Host names only, no token) is enforced on every request (:mod:`nmodal.serve.security`).
    """
    idx = index if isinstance(index, PostIndex) else PostIndex.open(index)
    encoder = query_encoder or QueryEncoder.for_index(idx.manifest, model_dir, encoder_source)
    app = FastAPI(
        title="nmodal search",
        version=__version__,
        description="Search social-media posts by text, image, video, audio or by another post.\n\n"
        "Every search endpoint takes the same filters (`k`, `account`, `since`, `until`, "
        "`modality`, `collate`, `same_modality`, `forwarded_from`, `forwards`) and `nprobe`: on approximate (IVF) indexes, the "
        "inverted lists this request visits (more lists: better recall, slower), capped at "
        "each index's number of lists, without effect on exact indexes; `/api/info` lists "
        "each modality's `nlist` and default `nprobe`, and a search's `extra.nprobe` the "
        "lists it visited.",
        docs_url=None,  # /docs is served offline by install_security
        redoc_url=None,
    )
    app.state.index = idx
    app.state.encoder = encoder
    app.add_middleware(BodySizeLimit, max_bytes=max_upload_bytes + MULTIPART_SLACK)
    install_security(app, security or SecurityConfig())

    @app.exception_handler(EncoderUnavailableError)
    async def _unavailable(request: Request, exc: EncoderUnavailableError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(InputError)
    async def _bad_input(request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(MediaError)
    async def _bad_media(request: Request, exc: MediaError) -> JSONResponse:
        return JSONResponse({"detail": f"cannot decode the file: {exc.reason}"}, status_code=422)

    def row_or_404(post_id: str) -> int:
        try:
            return idx.row_of(post_id)
        except KeyError:
            raise HTTPException(404, f"post {post_id!r} is not in the index") from None

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "posts": idx.num_posts, "modalities": idx.modalities}

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return {
            "version": __version__,
            "posts": idx.num_posts,
            "modalities": idx.modalities,
            "query_kinds": ["text", *[m for m in MEDIA_KINDS if m in idx.modalities]],
            "accounts": idx.accounts_list(),
            "max_upload_bytes": max_upload_bytes,
            "index": {
                m: {
                    "factory": i["factory"],
                    "count": i["count"],
                    "nlist": idx.nlist(m),
                    "nprobe": idx.default_nprobe(m),
                }
                for m, i in idx.manifest["modalities"].items()
            },
        }

    @app.get("/api/search")
    def search_text(
        text: Annotated[str, Query(min_length=1, max_length=10_000, description="the text query")],
        params: Annotated[SearchParams, Depends()],
    ) -> JSONResponse:
        vec = encoder.encode("text", text)
        result = idx.search(
            ["text"],
            vec,
            **params.search_options(),
        )
        return JSONResponse(_result_json(idx, result))

    @app.post("/api/search/file")
    def search_file(
        file: Annotated[UploadFile, File(description="an image, video or audio file")],
        params: Annotated[SearchParams, Depends()],
        kind: Annotated[
            str | None, Form(description="image, video or audio (default: from the file)")
        ] = None,
    ) -> JSONResponse:
        size = file.size if file.size is not None else _size_of(file)
        if size > max_upload_bytes:
            raise HTTPException(413, f"file larger than the limit of {max_upload_bytes} bytes")
        if size == 0:
            raise HTTPException(400, "empty file")
        file.file.seek(0)
        head = file.file.read(64)
        file.file.seek(0)
        found = sniff(head)
        name = file.filename or "upload"
        if found is None:
            raise HTTPException(
                415,
                f"{name}: unsupported or unrecognised file type (not an image, video or audio file)",
            )
        fmt, kinds = found
        family = declared_family(file.content_type)
        if family is not None and family not in kinds:
            raise HTTPException(
                415,
                f"{name}: declared as {file.content_type} but the content is {fmt} ({'/'.join(kinds)})",
            )
        if kind is not None and kind not in kinds:
            raise HTTPException(415, f"{name}: a {fmt} file cannot be used as a {kind} query")
        chosen = kind or (family if family in kinds else kinds[0])
        if chosen not in idx.modalities:
            raise HTTPException(
                400, f"this index has no {chosen} modality (it has {idx.modalities})"
            )
        with tempfile.TemporaryDirectory(prefix="nmodal-upload-") as tmp:
            path = Path(tmp) / f"query{SUFFIX.get(fmt, '')}"
            with path.open("wb") as fh:
                shutil.copyfileobj(file.file, fh, 1 << 20)
            vec = encoder.encode(chosen, path)
        result = idx.search(
            [chosen],
            vec,
            **params.search_options(),
        )
        out = _result_json(idx, result)
        out["upload"] = {"name": name, "format": fmt, "kind": chosen, "bytes": size}
        return JSONResponse(out)

    @app.get("/api/similar")
    def similar(
        post_id: Annotated[str, Query(description="the post to find more like")],
        params: Annotated[SearchParams, Depends()],
    ) -> JSONResponse:
        row_or_404(post_id)
        result = idx.more_like_this(
            post_id,
            **params.search_options(),
        )
        out = _result_json(idx, result)
        out["query_post"] = {**idx.post(idx.row_of(post_id))}
        out["query_post"]["urls"] = _post_urls(out["query_post"])
        return JSONResponse(out)

    @app.get("/api/post")
    def post(post_id: Annotated[str, Query()]) -> JSONResponse:
        detail = idx.post(row_or_404(post_id))
        detail["urls"] = _post_urls(detail)
        return JSONResponse(without_paths(detail))

    def media_path(post_id: str, kind: str) -> Path:
        detail = idx.post(row_or_404(post_id))
        value = detail.get(f"{kind}_path")
        if not value:
            raise HTTPException(404, f"post {post_id!r} has no {kind} file")
        roots = [str(r) for r in idx.manifest.get("media_roots") or []]
        root = detail.get("media_root")
        if not root and idx.dataset_dir is None:
            raise HTTPException(404, "this index records no media root")
        try:
            return served_file(str(value), root, roots, idx.dataset_dir)
        except PermissionError:
            raise HTTPException(
                403, f"the {kind} path of post {post_id!r} is outside the collection"
            ) from None
        except FileNotFoundError:
            raise HTTPException(404, f"the {kind} file of post {post_id!r} is missing") from None

    @app.get("/api/media", response_class=FileResponse)
    def media(
        post_id: Annotated[str, Query()],
        kind: Annotated[str, Query(pattern="^(image|video|audio)$")],
    ) -> FileResponse:
        return media_response(media_path(post_id, kind), kind)

    @app.get("/api/thumbnail", response_class=Response)
    def thumb(
        post_id: Annotated[str, Query()],
        kind: Annotated[
            str | None,
            Query(
                pattern="^(image|video|audio)$",
                description="thumbnail of this file (default: the image, else the video, "
                "else a waveform of the audio)",
            ),
        ] = None,
    ) -> Response:
        detail = idx.post(row_or_404(post_id))
        if kind is None:
            kind = next((k for k in MEDIA_KINDS if detail.get(f"{k}_path")), None)
            if kind is None:
                raise HTTPException(404, f"post {post_id!r} has no image, video or audio file")
        path = media_path(post_id, kind)
        try:
            data = thumbnail(path, kind)
        except MediaError as exc:
            raise HTTPException(422, exc.reason) from None
        return Response(
            data, media_type=THUMB_TYPES[kind], headers={"cache-control": "max-age=3600"}
        )

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _size_of(file: UploadFile) -> int:
    file.file.seek(0, 2)
    size = file.file.tell()
    file.file.seek(0)
    return int(size)
