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
  recorded at build time, inside their media roots: :func:`nmodal.serve.media.served_file`,
  and inside the roots this server serves: :mod:`nmodal.serve.roots`);
  ``GET /api/thumbnail?post_id=...``: a JPEG thumbnail of its image or
  video, or a PNG waveform of its audio when it has neither (``kind`` picks one).
- ``GET /``: the single-page web UI (static files shipped in the package, no CDN).

Search endpoints share the filters ``k``, ``account`` (repeatable), ``since``, ``until``,
``forwarded_from`` (repeatable: origin names or ids), ``forwards`` (``any``/``only``/``none``),
``modality`` (comma-separated candidate modalities), ``collate`` (``max``, the default: the
best pair; ``sum``: the paper's; ``mean``),
``same_modality`` (default true: the query's own modality is compared too; false is the
paper's other-modalities rule), and
``nprobe`` (IVF lists visited by this request on approximate indexes).

Example:
    >>> app = create_app("indexes/i1")  # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from nmodal import __version__
from nmodal.errors import InputError, MediaError
from nmodal.index import PostIndex, QueryEncoder
from nmodal.index.query import EncoderSource, EncoderUnavailableError
from nmodal.serve.endpoints import STATIC_DIR, ServeState, index_media_roots, router
from nmodal.serve.params import NPROBE_HELP, SearchParams
from nmodal.serve.present import MEDIA_KINDS, media_response
from nmodal.serve.roots import ServedRoots
from nmodal.serve.security import SecurityConfig, install_security
from nmodal.serve.uploads import BodySizeLimit

__all__ = [
    "DEFAULT_MAX_UPLOAD",
    "MEDIA_KINDS",
    "NPROBE_HELP",
    "STATIC_DIR",
    "SearchParams",
    "create_app",
    "media_response",
]

DEFAULT_MAX_UPLOAD = 50 * 1024 * 1024
#: multipart framing around the file is allowed on top of the file size limit
MULTIPART_SLACK = 64 * 1024
DESCRIPTION = (
    "Search social-media posts by text, image, video, audio or by another post.\n\n"
    "Every search endpoint takes the same filters (`k`, `account`, `since`, `until`, "
    "`modality`, `collate`, `same_modality`, `forwarded_from`, `forwards`) and `nprobe`: on "
    "approximate (IVF) indexes, the inverted lists this request visits (more lists: better "
    "recall, slower), capped at each index's number of lists, without effect on exact "
    "indexes; `/api/info` lists each modality's `nlist` and default `nprobe`, and a search's "
    "`extra.nprobe` the lists it visited."
)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503: the query encoder cannot be built (a missing optional dependency or model)."""
    return JSONResponse({"detail": str(exc)}, status_code=503)


async def _bad_input(request: Request, exc: Exception) -> JSONResponse:
    """400: the request's input is wrong (the message says which and why)."""
    return JSONResponse({"detail": str(exc)}, status_code=400)


async def _bad_media(request: Request, exc: Exception) -> JSONResponse:
    """422: the uploaded file could not be decoded."""
    reason = exc.reason if isinstance(exc, MediaError) else str(exc)
    return JSONResponse({"detail": f"cannot decode the file: {reason}"}, status_code=422)


def create_app(
    index: PostIndex | str | Path,
    *,
    model_dir: str | Path | None = None,
    encoder_source: EncoderSource | None = None,
    query_encoder: QueryEncoder | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
    security: SecurityConfig | None = None,
    media_roots: Sequence[str | Path] | None = None,
) -> FastAPI:
    """The FastAPI app serving ``index``.

    Queries by text or file are encoded lazily (first use) with the index's model (or
    ``model_dir``, fingerprint-checked) and the encoders from ``encoder_source`` (default: the
    encoder registry). Searches by post id need neither. ``security`` (default: loopback
    Host names only, no token) is enforced on every request (:mod:`nmodal.serve.security`).
    ``media_roots``: serve media only from inside these folders (``--media-root``); default:
    the index's roots except broad ones (:mod:`nmodal.serve.roots`), as ``app.state.serve.roots``
    says.
    """
    idx = index if isinstance(index, PostIndex) else PostIndex.open(index)
    encoder = query_encoder or QueryEncoder.for_index(idx.manifest, model_dir, encoder_source)
    app = FastAPI(
        title="nmodal search",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # /docs is served offline by install_security
        redoc_url=None,
    )
    app.state.index = idx
    app.state.encoder = encoder
    roots = ServedRoots.decide(index_media_roots(idx), media_roots)
    app.state.serve = ServeState(idx, encoder, max_upload_bytes, roots)
    app.add_middleware(BodySizeLimit, max_bytes=max_upload_bytes + MULTIPART_SLACK)
    install_security(app, security or SecurityConfig())
    app.add_exception_handler(EncoderUnavailableError, _unavailable)
    app.add_exception_handler(InputError, _bad_input)
    app.add_exception_handler(MediaError, _bad_media)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
