"""The HTTP API against a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from nmodal.index import Filters, PostIndex, QueryEncoder, build_index
from nmodal.serve import create_app
from tests.helpers.media import write_audio, write_image, write_truncated, write_video
from tests.index.fixtures import fake_encoder_source, make_collection
from tests.serve.conftest import MAX_UPLOAD, Server, serving


@pytest.fixture(scope="module")
def library(server: Server) -> tuple[PostIndex, QueryEncoder]:
    index = PostIndex.open(server.index_dir)
    return index, QueryEncoder.for_index(index.manifest, encoder_source=fake_encoder_source)


@contextmanager
def client_for(col: Any, index_dir: Path) -> Iterator[httpx.Client]:
    """An index of collection ``col`` at ``index_dir``, served; a client of it."""
    built = build_index(col.model, col.store, col.dataset, index_dir, progress=False)
    with (
        serving(create_app(built, encoder_source=fake_encoder_source)) as url,
        httpx.Client(base_url=url) as c,
    ):
        yield c


def ids_scores(result: Any) -> tuple[list[str], list[float]]:
    if isinstance(result, dict):
        return [h["post_id"] for h in result["hits"]], [h["score"] for h in result["hits"]]
    return [h.post_id for h in result.hits], [h.score for h in result.hits]


def raw_get(url: str, target: str) -> tuple[int, bytes]:
    """GET ``target`` byte for byte (no client-side normalisation of ``..`` or escapes)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def test_health_info_and_docs(client: httpx.Client, library):
    index, _ = library
    assert client.get("/api/health").json() == {
        "status": "ok",
        "posts": index.num_posts,
        "modalities": ["text", "image", "video"],
    }
    info = client.get("/api/info").json()
    assert info["accounts"] == ["alpha", "bravo", "charlie", "delta"]
    assert info["max_upload_bytes"] == MAX_UPLOAD
    assert info["query_kinds"] == ["text", "image", "video"]
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/search", "/api/search/file", "/api/similar", "/api/post", "/api/media"} <= set(
        paths
    )


def test_text_search_equals_library(client: httpx.Client, library):
    index, encoder = library
    query = "tanks on the bridge"
    got = client.get("/api/search", params={"text": query, "k": 12}).json()
    # the API's defaults: its own modality too, a post scored by its best pair (max)
    vec = encoder.encode("text", query)
    want = index.search(["text"], vec, k=12, include_same=True, collation="max")
    assert got["collate"] == "max"
    assert ids_scores(got)[0] == ids_scores(want)[0]
    np.testing.assert_allclose(ids_scores(got)[1], ids_scores(want)[1], rtol=1e-6)
    assert got["exact"] is True
    assert got["modalities"] == ["text", "image", "video"]  # its own modality too, by default
    paper = client.get(
        "/api/search",
        params={"text": query, "k": 12, "same_modality": "false", "collate": "sum"},
    )
    want = index.search(["text"], vec, k=12, include_same=False)
    assert ids_scores(paper.json()) == ids_scores(want)
    assert paper.json()["modalities"] == ["image", "video"]  # the paper's rule
    hit = got["hits"][0]
    assert {"rank", "post_id", "score", "matches", "post"} <= set(hit)
    assert {"account", "date", "text", "artifacts", "urls"} <= set(hit["post"])


def test_filters_over_http(client: httpx.Client, library):
    index, encoder = library
    query = "night strike"
    vec = encoder.encode("text", query)
    params: list[tuple[str, str | int]] = [
        ("text", query), ("k", 7), ("account", "alpha"), ("account", "bravo,delta"),
        ("since", "2024-02-01"), ("until", "2024-05-31"), ("modality", "video"), ("collate", "mean"),
    ]  # fmt: skip
    got = client.get("/api/search", params=params).json()
    want = index.search(
        ["text"], vec, k=7, modalities=["video"], collation="mean", include_same=True,
        filters=Filters(accounts=("alpha", "bravo", "delta"), since="2024-02-01", until="2024-05-31"),
    )  # fmt: skip
    assert ids_scores(got)[0] == ids_scores(want)[0]
    for hit in got["hits"]:
        assert hit["post"]["account"] in ("alpha", "bravo", "delta")
        assert "2024-02-01" <= hit["post"]["date"][:10] <= "2024-05-31"
        assert {m["artifact"] for m in hit["matches"]} == {"video"}


def test_bad_requests_get_clear_4xx(client: httpx.Client):
    r = client.get("/api/search", params={"text": "x", "since": "yesterday-ish"})
    assert r.status_code == 400 and "not a date" in r.json()["detail"]
    assert client.get("/api/search", params={"text": "x", "k": 0}).status_code == 422
    assert client.get("/api/search", params={"text": "x", "collate": "median"}).status_code == 422
    assert client.get("/api/search").status_code == 422
    r = client.get("/api/search", params={"text": "x", "modality": "text"})
    assert r.status_code == 200  # text with post text: search's default
    r = client.get(
        "/api/search", params={"text": "x", "modality": "text", "same_modality": "false"}
    )
    assert r.status_code == 400 and "nothing to search" in r.json()["detail"]
    r = client.get("/api/similar", params={"post_id": "no-such-post"})
    assert r.status_code == 404
    assert client.get("/api/post", params={"post_id": "../../etc/passwd"}).status_code == 404


def test_similar_and_post_detail(client: httpx.Client, library):
    index, _ = library
    got = client.get("/api/similar", params={"post_id": "post-00004", "k": 9}).json()
    want = index.more_like_this("post-00004", k=9, include_same=True, collation="max")
    assert ids_scores(got)[0] == ids_scores(want)[0]
    assert "post-00004" not in ids_scores(got)[0]
    assert got["query_post"]["post_id"] == "post-00004"
    detail = client.get("/api/post", params={"post_id": "post-00010"}).json()
    assert detail["account"] == "charlie"
    assert detail["date"] == "2024-01-11T00:00:00Z"
    assert detail["stance"] == "pro"
    assert detail["urls"]["image"] == "/api/media?post_id=post-00010&kind=image"


def test_media_and_thumbnails(client: httpx.Client, server: Server):
    dataset = server.collection.dataset
    r = client.get("/api/media", params={"post_id": "post-00010", "kind": "image"})
    assert r.status_code == 200
    assert r.content == (dataset / "media/post-00010.png").read_bytes()
    thumb = client.get("/api/thumbnail", params={"post_id": "post-00010"})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size == (40, 30)
    video_post = next(p.stem for p in (dataset / "media").glob("*.mp4"))
    r = client.get("/api/thumbnail", params={"post_id": video_post})
    assert r.status_code == 200
    assert Image.open(io.BytesIO(r.content)).size == (64, 48)
    assert (
        client.get("/api/media", params={"post_id": video_post, "kind": "video"}).status_code == 200
    )
    assert (
        client.get("/api/media", params={"post_id": "post-00011", "kind": "image"}).status_code
        == 404
    )
    assert (
        client.get("/api/media", params={"post_id": "post-00010", "kind": "passwd"}).status_code
        == 422
    )


def test_path_traversal_is_refused(tmp_path: Path):
    """Media paths leading outside the media root (.., absolute, symlink) are never served:
    the index does not record them (404), and a recorded file that leaves its root is 403."""
    col = make_collection(tmp_path / "c", num_posts=60, seed=9)
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (col.dataset / "media" / "link.png").symlink_to(secret)
    posts = pd.read_parquet(col.dataset / "posts.parquet")
    evil = {
        "post-00001": "../secret.txt",
        "post-00002": "media/../../secret.txt",
        "post-00003": str(secret),
        "post-00004": "media/link.png",
        "post-00006": "/etc/passwd",
    }
    for pid, path in evil.items():
        posts.loc[posts["post_id"] == pid, "image_path"] = path
    posts.to_parquet(col.dataset / "posts.parquet", index=False)
    index_dir = build_index(col.model, col.store, col.dataset, tmp_path / "idx", progress=False)
    with (
        serving(create_app(index_dir, encoder_source=fake_encoder_source)) as url,
        httpx.Client(base_url=url) as c,
    ):
        for pid in evil:
            for endpoint in ("/api/media", "/api/thumbnail"):
                r = c.get(endpoint, params={"post_id": pid, "kind": "image"})
                assert r.status_code == 404, (pid, endpoint)
                assert b"secret" not in r.content and b"root:" not in r.content
        assert (
            c.get("/api/media", params={"post_id": "post-00010", "kind": "image"}).status_code
            == 200
        )
        for target in (
            "/static/../../../../etc/passwd",
            "/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
            "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
            "/static/..%5c..%5cpyproject.toml",
            "/../../etc/passwd",
            "/api/media?post_id=..%2F..%2Fetc%2Fpasswd&kind=image",
        ):
            status, body = raw_get(url, target)
            assert status in (400, 403, 404), target
            assert b"root:" not in body
        status, body = raw_get(url, "/static/app.js")
        assert status == 200 and b"textContent" in body


def test_upload_image_equals_library(client: httpx.Client, library, tmp_path: Path):
    index, encoder = library
    path = write_image(tmp_path / "query.png", index=3)
    r = client.post(
        "/api/search/file",
        params={"k": 6},
        files={"file": ("q.png", path.read_bytes(), "image/png")},
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["upload"] == {
        "name": "q.png",
        "format": "png",
        "kind": "image",
        "bytes": path.stat().st_size,
    }
    want = index.search(
        ["image"], encoder.encode("image", path), k=6, include_same=True, collation="max"
    )
    assert ids_scores(got)[0] == ids_scores(want)[0]
    assert got["modalities"] == ["text", "image", "video"]


def test_upload_video(client: httpx.Client, tmp_path: Path):
    path = write_video(tmp_path / "clip.mp4", num_frames=40)
    files = {"file": ("clip.mp4", path.read_bytes(), "video/mp4")}
    r = client.post("/api/search/file", files=files, data={"kind": "video"})
    assert r.status_code == 200, r.text
    assert r.json()["upload"]["kind"] == "video"
    assert r.json()["modalities"] == ["text", "image", "video"]


def test_upload_rejections(client: httpx.Client, tmp_path: Path):
    png = write_image(tmp_path / "q.png").read_bytes()

    def post(name: str, content: bytes, ctype: str, **data: str) -> httpx.Response:
        return client.post("/api/search/file", files={"file": (name, content, ctype)}, data=data)

    r = post("notes.txt", b"just some words, no media here", "text/plain")
    assert r.status_code == 415 and "unrecognised" in r.json()["detail"]
    r = post("q.png", png, "video/mp4")
    assert r.status_code == 415 and "declared as video/mp4" in r.json()["detail"]
    r = post("q.png", png, "image/png", kind="audio")
    assert r.status_code == 415
    r = post("empty.png", b"", "image/png")
    assert r.status_code == 400
    broken = write_truncated(
        write_image(tmp_path / "big.png", width=640, height=480), tmp_path / "t.png", 0.3
    )
    r = post("t.png", broken.read_bytes(), "image/png")
    assert r.status_code == 422 and "cannot decode" in r.json()["detail"]
    garbage_mp4 = b"\x00\x00\x00\x18ftypisom" + os.urandom(2000)
    r = post("x.mp4", garbage_mp4, "video/mp4")
    assert r.status_code == 422
    wav = write_audio(tmp_path / "a.wav", seconds=1.0).read_bytes()
    r = post("a.wav", wav, "audio/wav")
    assert r.status_code == 400 and "no audio modality" in r.json()["detail"]
    # a file named .png with octet-stream type is judged by its bytes
    assert post("q.bin", png, "application/octet-stream").status_code == 200


def test_oversized_uploads_are_refused(client: httpx.Client):
    big = b"\x89PNG\r\n\x1a\n" + b"\x00" * (MAX_UPLOAD + 100_000)
    r = client.post("/api/search/file", files={"file": ("big.png", big, "image/png")})
    assert r.status_code == 413 and "limit" in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # multipart without Content-Length: counted while streaming
        yield (
            b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
            b"Content-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n"
        )
        for _ in range(40):
            yield b"\x00" * 32_768
        yield b"\r\n--XyZ--\r\n"

    r = client.post(
        "/api/search/file",
        content=chunks(),
        headers={"content-type": "multipart/form-data; boundary=XyZ"},
    )
    assert r.status_code == 413
    # a body just under the limit is parsed normally (and is a broken PNG)
    ok = b"\x89PNG\r\n\x1a\n" + b"\x00" * (MAX_UPLOAD - 100)
    r = client.post("/api/search/file", files={"file": ("ok.png", ok, "image/png")})
    assert r.status_code == 422
    assert client.get("/api/health").status_code == 200


def test_without_encoders_text_is_503_but_posts_work(served_collection, tmp_path: Path):
    _, index_dir = served_collection
    with serving(create_app(index_dir)) as url, httpx.Client(base_url=url) as c:
        r = c.get("/api/search", params={"text": "hello"})
        assert r.status_code == 503 and "synthetic" in r.json()["detail"]
        assert c.get("/api/similar", params={"post_id": "post-00001"}).status_code == 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening_addresses(port: int) -> list[str]:
    """IPv4 addresses listening on ``port`` (from /proc/net/tcp; LISTEN state is 0A)."""
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        address, hexport = fields[1].split(":")
        if int(hexport, 16) == port and fields[3] == "0A":
            found.append(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


@pytest.mark.slow
def test_cli_serve_binds_loopback(served_collection):
    _, index_dir = served_collection
    port = free_port()
    command = "import sys; from nmodal.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", command, "serve", str(index_dir), "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        proc.stderr.read().decode() if proc.stderr else "no output"
                    ) from None
                time.sleep(0.2)
        assert r.json()["status"] == "ok"
        r = httpx.get(
            f"http://127.0.0.1:{port}/api/similar", params={"post_id": "post-00002", "k": 3}
        )
        assert r.status_code == 200 and len(r.json()["hits"]) == 3
        assert listening_addresses(port) == ["127.0.0.1"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@contextmanager
def server_process(index_dir: Path) -> Iterator[str]:
    """The app in a separate process (its own GIL) on an inherited 127.0.0.1:0 socket."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    script = Path(__file__).with_name("fake_server.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), str(index_dir), str(sock.fileno())],
        pass_fds=[sock.fileno()], stderr=subprocess.PIPE,
    )  # fmt: skip
    sock.close()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/api/health", timeout=5).raise_for_status()
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        proc.stderr.read().decode() if proc.stderr else ""
                    ) from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.slow
def test_load_50_clients_2000_requests(served_collection):
    """50 concurrent clients, 2,000 mixed requests over loopback: zero errors."""
    _, index_dir = served_collection
    ids = PostIndex.open(index_dir).post_ids.tolist()
    rng = np.random.default_rng(0)
    plan: list[tuple[str, dict[str, Any]]] = []
    for i in range(2000):
        kind = i % 4
        if kind == 0:
            plan.append(("/api/search", {"text": f"query {rng.integers(50)}", "k": 20}))
        elif kind == 1:
            plan.append(("/api/similar", {"post_id": ids[rng.integers(len(ids))], "k": 10}))
        elif kind == 2:
            plan.append(
                ("/api/search", {"text": "convoy", "account": "alpha", "since": "2024-03-01"})
            )
        else:
            plan.append(("/api/post", {"post_id": ids[rng.integers(len(ids))]}))

    async def run() -> tuple[list[int], list[str]]:
        statuses: list[int] = []
        errors: list[str] = []
        queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        for item in plan:
            queue.put_nowait(item)
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as c:

            async def worker() -> None:
                while not queue.empty():
                    path, params = queue.get_nowait()
                    try:
                        r = await c.get(path, params=params)
                        statuses.append(r.status_code)
                        if r.status_code != 200:
                            errors.append(f"{path} {r.status_code} {r.text[:200]}")
                    except httpx.HTTPError as exc:
                        errors.append(f"{path} {type(exc).__name__}: {exc!r} {exc.__cause__!r}")

            await asyncio.gather(*(worker() for _ in range(50)))
        return statuses, errors

    with server_process(index_dir) as url:
        started = time.perf_counter()
        statuses, errors = asyncio.run(run())
        elapsed = time.perf_counter() - started
    print(f"load test: 2000 requests, 50 clients, {elapsed:.1f} s, {2000 / elapsed:.0f} requests/s")
    assert errors == []
    assert len(statuses) == 2000 and set(statuses) == {200}


@pytest.mark.slow
def test_an_idle_keep_alive_connection_outlives_uvicorns_default(served_collection):
    """A pooled client reusing a connection after 6 s idle gets an answer, not a reset
    (uvicorn's default closes after 5 s and races such a client: the CI load test's
    ``ReadError``s)."""
    _, index_dir = served_collection
    with server_process(index_dir) as url:
        host, port = url.removeprefix("http://").split(":")
        request = f"GET /api/health HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        with socket.create_connection((host, int(port)), timeout=30) as conn:
            for attempt in range(2):
                conn.sendall(request)
                reply = b""
                while b"\r\n\r\n" not in reply:
                    chunk = conn.recv(4096)
                    assert chunk, f"server closed the connection before answer {attempt + 1}"
                    reply += chunk
                assert reply.startswith(b"HTTP/1.1 200"), reply[:100]
                head, _, body = reply.partition(b"\r\n\r\n")
                length = int(next(
                    line.split(b":")[1] for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ))  # fmt: skip
                while len(body) < length:
                    body += conn.recv(4096)
                if attempt == 0:
                    time.sleep(6)


def test_media_outside_the_dataset_folder_are_served(tmp_path: Path):
    """The README's flow: the export lies outside the dataset folder; its files are served,
    and a recorded file replaced by a symlink leading out of its root is refused."""
    col = make_collection(tmp_path / "c", num_posts=60, seed=9)
    export = tmp_path / "export"
    export.mkdir()
    posts = pd.read_parquet(col.dataset / "posts.parquet")
    row = posts.index[posts["post_id"] == "post-00010"][0]
    moved = export / "photo.png"
    (col.dataset / posts.loc[row, "image_path"]).rename(moved)
    posts.loc[row, "image_path"] = os.path.relpath(moved, col.dataset)
    posts["media_root"] = str(export)
    posts.loc[posts.index != row, "image_path"] = None
    posts.to_parquet(col.dataset / "posts.parquet", index=False)
    with client_for(col, tmp_path / "idx") as c:
        r = c.get("/api/media", params={"post_id": "post-00010", "kind": "image"})
        assert r.status_code == 200 and r.content == moved.read_bytes()
        assert c.get("/api/thumbnail", params={"post_id": "post-00010"}).status_code == 200
        secret = tmp_path / "secret.png"
        moved.rename(secret)
        moved.symlink_to(secret)  # swapped after the build: now leads out of the root
        r = c.get("/api/media", params={"post_id": "post-00010", "kind": "image"})
        assert r.status_code == 403


def test_similar_to_one_artifact_uses_its_stored_vector(client: httpx.Client, library):
    """``/api/similar?artifact=image``: the post's image alone is the query (its stored
    embedding, as the library's ``query_modalities``); the post itself stays out."""
    index, _ = library
    pid = next(str(p) for i, p in enumerate(index.post_ids) if index.present["image"][i])
    got = client.get("/api/similar", params={"post_id": pid, "artifact": "image", "k": 7}).json()
    row = index.row_of(pid)
    want = index.search(["image"], index.emb["image"][row][None], k=7, exclude=[row],
                        collation="max", include_same=True)  # fmt: skip
    got_ids, got_scores = ids_scores(got)
    want_ids, want_scores = ids_scores(want)
    assert got_ids == want_ids and got_scores == pytest.approx(want_scores, abs=1e-6)
    assert pid not in ids_scores(got)[0]
    lacking = next(str(p) for i, p in enumerate(index.post_ids) if not index.present["video"][i])
    r = client.get("/api/similar", params={"post_id": lacking, "artifact": "video"})
    assert r.status_code == 400 and "has no video" in r.json()["detail"]
    r = client.get("/api/similar", params={"post_id": pid, "artifact": "audio"})
    assert r.status_code == 400 and "no audio modality" in r.json()["detail"]


def test_the_query_post_of_similar_carries_no_server_paths(client: httpx.Client):
    body = client.get("/api/similar", params={"post_id": "post-00010", "k": 3}).json()
    query_post = body["query_post"]
    assert query_post["urls"]["image"] and query_post["post_id"] == "post-00010"
    assert not [k for k in query_post if k.endswith("_path") or k == "media_root"]
    assert "/tmp" not in str(body) and str(Path.cwd()) not in str(body)


def test_resolve_finds_a_post_by_id_or_by_its_link(tmp_path: Path):
    col = make_collection(tmp_path / "c", num_posts=40, seed=3)
    posts = pd.read_parquet(col.dataset / "posts.parquet")
    posts["channel_username"] = "kyiv_news"
    posts["channel_id"] = "1001"
    posts["message_id"] = np.arange(len(posts)) + 100
    posts["url"] = [f"https://t.me/kyiv_news/{m}" for m in posts["message_id"]]
    posts.loc[posts["post_id"] == "post-00003", "url"] = "https://example.org/p/3?utm=x"
    posts.to_parquet(col.dataset / "posts.parquet", index=False)
    with client_for(col, tmp_path / "idx") as c:

        def resolve(ref: str) -> Any:
            r = c.get("/api/resolve", params={"ref": ref})
            return r.json()["post_id"] if r.status_code == 200 else r.status_code

        assert resolve("post-00012") == "post-00012"
        assert resolve("https://t.me/kyiv_news/105") == "post-00005"
        assert resolve("t.me/Kyiv_News/106?single") == "post-00006"
        assert resolve("https://t.me/c/1001/107") == "post-00007"
        assert resolve("https://example.org/p/3") == "post-00003"  # the recorded url
        assert resolve("https://t.me/kyiv_news/99999") == 404
        assert resolve("https://t.me/other/105") == 404
        assert resolve("../../etc/passwd") == 404


def test_thumbnail_errors_name_no_server_path(tmp_path: Path):
    col = make_collection(tmp_path / "c", num_posts=40, seed=4, with_videos=True)
    media = col.dataset / "media"
    (media / "post-00010.png").write_bytes(b"this is not a picture")
    video = next(media.glob("*.mp4"))
    video.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 9\n")
    with client_for(col, tmp_path / "idx") as c:
        for pid in ("post-00010", video.stem):
            r = c.get("/api/thumbnail", params={"post_id": pid})
            assert r.status_code == 422, pid
            detail = r.json()["detail"]
            assert "cannot" in detail or "not an image" in detail
            assert str(tmp_path) not in detail and "/" not in detail.replace("n/a", ""), detail


def test_notes_and_skipped_media_reach_the_post_view(tmp_path: Path):
    col = make_collection(tmp_path / "c", num_posts=40, seed=5)
    posts = pd.read_parquet(col.dataset / "posts.parquet")
    posts["notes"] = pd.Series([None] * len(posts), dtype="string")
    posts["skipped_media"] = pd.Series([None] * len(posts), dtype="string")
    posts.loc[posts["post_id"] == "post-00008", "notes"] = "video: not included in export (x2)"
    posts.loc[posts["post_id"] == "post-00008", "skipped_media"] = "sticker"
    posts.to_parquet(col.dataset / "posts.parquet", index=False)
    with client_for(col, tmp_path / "idx") as c:
        post = c.get("/api/post", params={"post_id": "post-00008"}).json()
        assert post["notes"] == "video: not included in export (x2)"
        assert post["skipped_media"] == "sticker"
        assert post["audio_from_video"] is False
        assert c.get("/api/post", params={"post_id": "post-00009"}).json()["notes"] is None


def test_dates_must_look_like_dates(client: httpx.Client):
    for bad in ("-1", "1700000000", "2023-13-45"):
        r = client.get("/api/search", params={"text": "x", "since": bad})
        assert r.status_code == 400 and "not a date" in r.json()["detail"], bad
    r = client.get(
        "/api/search", params={"text": "x", "since": "2024-02-01", "until": "2024-01-01"}
    )
    assert r.status_code == 400 and "--" not in r.json()["detail"]


def test_filter_values_no_post_has_are_named(client: httpx.Client):
    body = client.get("/api/search", params={"text": "x", "account": "nosuch"}).json()
    assert body["hits"] == [] and body["unknown_accounts"] == ["nosuch"]
    body = client.get("/api/search", params={"text": "x", "account": "alpha"}).json()
    assert "unknown_accounts" not in body and body["hits"]
    body = client.get(
        "/api/similar", params={"post_id": "post-00004", "forwarded_from": "zz"}
    ).json()
    assert body["unknown_origins"] == ["zz"]
