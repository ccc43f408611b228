"""``nmodal serve``: the search API and web page for analysts (http://127.0.0.1:8000/).

Example:
    nmodal serve data/index                     # http://127.0.0.1:8000, API docs at /docs
    nmodal serve data/index --port 9000 --max-upload-mb 200
    nmodal serve data/ivf-index --nprobe 16     # requests may ask for more: &nprobe=256
    nmodal serve data/index --host 0.0.0.0 --allow-host search.lan   # prints a token link
    nmodal serve data/index --media-root ~/exports   # media only from inside ~/exports

It prints the folders it serves media from: the index's media roots, except broad ones
(the filesystem root, your home folder, system folders: a forged or careless index could
list them), or only the ``--media-root`` folders when given.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from collections.abc import Collection
from pathlib import Path

from nmodal.cli._help import add_examples
from nmodal.errors import InputError


def link_host(host: str, allowed: Collection[str]) -> str:
    """The host name the printed link uses: the bind address, except for a wildcard
    (0.0.0.0, ::), which no client can name: then this machine's name when the server
    answers to it, else 127.0.0.1. IPv6 literals in brackets."""
    shown = host
    if host in ("0.0.0.0", "::", ""):
        name = socket.gethostname()
        shown = name if name in allowed else "127.0.0.1"
    return f"[{shown}]" if ":" in shown else shown


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve the search API and web page for an index",
        description="Run an HTTP server with a search page (/) and a JSON API (/docs). "
        "Binds 127.0.0.1 unless --host says otherwise; any other bind requires an access "
        "token (generated and printed, or --token / NMODAL_TOKEN). Requests naming another "
        "Host, or coming from another origin, are refused.",
    )
    add_examples(
        p,
        "nmodal serve data/index                     # http://127.0.0.1:8000, API docs at /docs",
        "nmodal serve demo-out/index --port 8001     # the demo's posts",
        "nmodal serve data/ivf-index --nprobe 16     # requests may ask for more: &nprobe=256",
    )
    p.add_argument("index", type=Path, help="index directory (nmodal index build)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model directory (default: the one recorded in the index; must match)",
    )
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=50.0,
        help="largest query file accepted, in MB (default 50)",
    )
    p.add_argument(
        "--nprobe",
        type=int,
        default=None,
        help="IVF lists visited by default (approximate indexes; default: the value recorded "
        "in the index); a request can ask for its own with ?nprobe=",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads per query for the encoders and FAISS (default 1: concurrent "
        "requests already run in parallel; small per-query work is slower split up)",
    )
    p.add_argument(
        "--token",
        default=None,
        help="access token required on every request (default: $NMODAL_TOKEN; generated "
        "and printed when binding anything but loopback)",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a further host name clients may use in the URL (repeatable; default: "
        "127.0.0.1, localhost, ::1 and the --host address; with --host 0.0.0.0 or ::, also "
        "this machine's host names and interface addresses)",
    )
    p.add_argument(
        "--media-root",
        action="append",
        default=None,
        type=Path,
        metavar="DIR",
        help="serve media only from inside this folder (repeatable; default: the media roots "
        "the index lists, except broad ones: /, your home folder, system folders)",
    )
    p.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    p.set_defaults(handler=handle)


def _try_bind(host: str, port: int) -> OSError | None:
    """Bind and release ``host:port`` as the server will (None when it is free)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(address)
        except OSError as exc:
            return exc
    return None


def check_address(host: str, port: int) -> None:
    """An InputError, before anything is loaded, when the server could not bind
    ``host:port``; for a busy port it names a free one to try."""
    if not 0 < port < 65536:
        raise InputError(f"--port {port}: a port is a number from 1 to 65535")
    problem = _try_bind(host, port)
    if problem is None:
        return
    if isinstance(problem, socket.gaierror):
        raise InputError(f"--host {host}: not an address of this machine ({problem.strerror})")
    if problem.errno == errno.EADDRINUSE:
        free = next(
            (p for p in range(port + 1, min(port + 100, 65536)) if not _try_bind(host, p)), None
        )
        hint = f"; try --port {free}" if free else ""
        raise InputError(f"{host}:{port} is already in use (another server?){hint}")
    if problem.errno == errno.EACCES:
        raise InputError(
            f"{host}:{port}: permission denied (ports below 1024 need root); try --port 8000"
        )
    raise InputError(f"cannot listen on {host}:{port}: {problem.strerror or problem}")


def handle(args: argparse.Namespace) -> int:
    check_address(args.host, args.port)  # before the index and model load (seconds)
    import torch
    import uvicorn

    from nmodal.index import PostIndex  # lazy: --help start-up
    from nmodal.serve import create_app, server_config  # lazy: --help start-up
    from nmodal.serve.security import TOKEN_ENV, SecurityConfig  # lazy: --help start-up

    torch.set_num_threads(max(1, args.threads))
    index = PostIndex.open(args.index, nprobe=args.nprobe)
    index.search_threads = max(1, args.threads)
    token = args.token or os.environ.get(TOKEN_ENV) or None
    security = SecurityConfig.for_bind(args.host, token, args.allow_host)
    app = create_app(
        index,
        model_dir=args.model,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        security=security,
        media_roots=args.media_root,
    )
    for line in app.state.serve.roots.describe():
        print(f"nmodal serve: {line}", file=sys.stderr)
    link = f"http://{link_host(args.host, security.allowed_hosts)}:{args.port}/"
    if security.token:
        link += f"?token={security.token}"
        if token is None:
            print(
                "nmodal serve: binding beyond loopback: generated an access token", file=sys.stderr
            )
    print(
        f"serving {index.num_posts} posts from {args.index} at {link} (API docs at /docs; "
        f"clients may name the server as {', '.join(sorted(security.allowed_hosts))})",
        file=sys.stderr,
    )
    uvicorn.Server(server_config(app, args.log_level, host=args.host, port=args.port)).run()
    return 0
