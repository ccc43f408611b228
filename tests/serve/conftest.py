"""A real uvicorn server on 127.0.0.1 (random free port) serving a tiny index."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from nmodal.index import PostIndex, QueryEncoder, build_index
from nmodal.serve import create_app
from tests.helpers.chromium import ARGS, CHROMIUM
from tests.index.fixtures import Collection, fake_encoder_source, make_collection

MAX_UPLOAD = 256 * 1024


@dataclass
class Server:
    url: str
    collection: Collection
    index_dir: Path


def run_server(app: Any) -> tuple[uvicorn.Server, threading.Thread, str]:
    """Start ``app`` on a socket bound to 127.0.0.1:0 in a thread; returns its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", limit_concurrency=None))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` served on 127.0.0.1 for the ``with`` block; its base URL."""
    uv, thread, url = run_server(app)
    try:
        yield url
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


def collect_page_errors(page: Any, errors: list[str]) -> None:
    """Record ``page``'s script errors and console errors in ``errors`` (4xx answers the page
    handles still log "Failed to load resource": not a page error)."""
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and "Failed to load resource" not in m.text
            else None
        ),
    )


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where page tests put screenshots: ``$NMODAL_SCREENSHOTS`` when set, else tmp."""
    folder = Path(os.environ.get("NMODAL_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def served_collection(tmp_path_factory: pytest.TempPathFactory) -> tuple[Collection, Path]:
    col = make_collection(
        tmp_path_factory.mktemp("served"), num_posts=200, seed=7, with_videos=True, with_audio=True
    )
    out = build_index(col.model, col.store, col.dataset, col.root / "index", progress=False)
    return col, out


@pytest.fixture(scope="session")
def server(served_collection: tuple[Collection, Path]) -> Iterator[Server]:
    import torch

    col, index_dir = served_collection
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as `nmodal serve` does: one thread per query
    app = create_app(index_dir, encoder_source=fake_encoder_source, max_upload_bytes=MAX_UPLOAD)
    uv, thread, url = run_server(app)
    try:
        yield Server(url, col, index_dir)
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
        torch.set_num_threads(threads)


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


NLIST = 16


@dataclass
class Approx:
    url: str
    exact: PostIndex
    #: the served IVF index opened in this process too: the sequential reference
    ivf: PostIndex
    encoder: QueryEncoder
    post_ids: list[str]


@pytest.fixture(scope="session")
def approx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Approx]:
    root = tmp_path_factory.mktemp("nprobe")
    col = make_collection(root / "c", num_posts=1500, seed=5)
    exact_dir = build_index(col.model, col.store, col.dataset, root / "exact", progress=False)
    ivf_dir = build_index(
        col.model,
        col.store,
        col.dataset,
        root / "ivf",
        factory=f"IVF{NLIST},Flat",
        nprobe=1,
        progress=False,
    )
    exact = PostIndex.open(exact_dir)
    encoder = QueryEncoder.for_index(exact.manifest, encoder_source=fake_encoder_source)
    uv, thread, url = run_server(create_app(ivf_dir, encoder_source=fake_encoder_source))
    try:
        ids = exact.post_ids[::53][:25].tolist()
        yield Approx(url, exact, PostIndex.open(ivf_dir), encoder, ids)
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for the page tests (they skip themselves when it is missing)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
