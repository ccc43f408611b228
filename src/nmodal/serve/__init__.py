"""HTTP API and web page for searching a post index.

Example:
    >>> from nmodal.serve import create_app, serve
    >>> serve("indexes/i1", host="127.0.0.1", port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nmodal.serve.app import DEFAULT_MAX_UPLOAD, create_app

__all__ = ["DEFAULT_MAX_UPLOAD", "KEEP_ALIVE_SECONDS", "create_app", "serve", "server_config"]

#: How long an idle keep-alive connection stays open. uvicorn's 5 s default races pooled
#: clients (httpx, proxies, browsers) that reuse a connection just as the server closes it:
#: the request is answered by a TCP reset. 75 s outlives the usual client pool timeouts.
KEEP_ALIVE_SECONDS = 75


def server_config(app: Any, log_level: str = "info", **uvicorn_options: Any) -> Any:
    """The ``uvicorn.Config`` every nmodal server runs with (``nmodal serve`` and tests)."""
    import uvicorn

    uvicorn_options.setdefault("timeout_keep_alive", KEEP_ALIVE_SECONDS)
    return uvicorn.Config(app, log_level=log_level, **uvicorn_options)


def serve(
    index_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    **app_options: Any,
) -> None:
    """Run the app with uvicorn until interrupted (binds loopback unless told otherwise)."""
    import uvicorn

    app = create_app(index_dir, **app_options)
    uvicorn.Server(server_config(app, log_level, host=host, port=port)).run()
