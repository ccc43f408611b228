"""HTTP API and web page for searching a post index.

Example:
    >>> from nmodal.serve import create_app, serve
    >>> serve("indexes/i1", host="127.0.0.1", port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nmodal.serve.app import DEFAULT_MAX_UPLOAD, create_app

__all__ = ["DEFAULT_MAX_UPLOAD", "create_app", "serve"]


def serve(
    index_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    **app_options: Any,
) -> None:
    """Run the app with uvicorn until interrupted (binds loopback unless told otherwise)."""
    import uvicorn

    uvicorn.run(create_app(index_dir, **app_options), host=host, port=port, log_level=log_level)
