"""Search latency over HTTP under concurrent clients, against the library call, same run.

The index (any :class:`PostIndex`, e.g. the default one ``bench_index.py`` builds) is written
to a folder and served by a separate process (its own GIL) running nmodal's app with
``nmodal serve``'s uvicorn settings (:func:`nmodal.serve.server_config`), on a socket bound
to 127.0.0.1:0 and inherited, as tests/serve/test_api.py's ``server_process`` does. Text
queries are the benchmark's query vectors: the served app maps the text ``q<i>`` to vector
``i`` (a lookup instead of the model's text encoder, so both sides search the same vectors
and the difference is HTTP, JSON, threads and contention; a real text encoder adds its own
time on top).

Measured, in one run, for ``/api/search?text=`` (= ``PostIndex.search``) and
``/api/similar?post_id=`` (= ``PostIndex.more_like_this``), k = 10, the paper's rule
(``same_modality=false``, the library's default):

- ``library``: the call in this process, one at a time (p50 / p99);
- ``http_1``: one client, one request at a time (HTTP + JSON overhead);
- ``http_8``: ``clients`` (8) concurrent clients with keep-alive connections, each sending
  its next request when the previous one is answered (p50 / p99 of each request's wall time,
  and requests per second).

The clients run in this process (one asyncio loop); on a 2-core machine server and clients
share the cores, so the figures are ratios to ``library`` from the same run.

Usage (alone, on a small synthetic index)::

    .venv/bin/python bench/bench_http.py --posts 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from nmodal.index import layout  # noqa: E402
from nmodal.index.post_index import PostIndex  # noqa: E402

QUERIES_FILE = "bench-queries.npy"
K = 10
OPTIONS = {"k": K, "same_modality": "false", "collate": "sum"}  # the library defaults


def write_folder(index: PostIndex, queries: np.ndarray, folder: Path) -> Path:
    """``index`` (in memory, FAISS backend) as an index folder, plus the query vectors."""
    import faiss

    folder.mkdir(parents=True, exist_ok=True)
    posts = index.posts.copy()
    for m in index.modalities:
        np.save(folder / layout.emb_file(m), np.asarray(index.emb[m]), allow_pickle=False)
        np.save(folder / layout.present_file(m), index.present[m], allow_pickle=False)
        faiss.write_index(index.indexes[m], str(folder / layout.faiss_file(m)))
        posts[f"has_{m}"] = index.present[m]
    posts.to_parquet(folder / layout.POSTS_FILE, index=False)
    np.save(folder / QUERIES_FILE, np.asarray(queries, np.float32), allow_pickle=False)
    manifest = {k: v for k, v in index.manifest.items() if k != "files"}
    layout.write_manifest(folder, manifest)
    return folder


class QueryVectors:
    """The served app's text "encoder": the text ``q<i>`` is query vector ``i``."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors

    def encode(self, kind: str, payload: Any) -> np.ndarray:
        return self.vectors[int(str(payload)[1:])][None]


def serve_folder(folder: str, fd: int) -> None:
    """The server process: nmodal's app over ``folder`` on the inherited socket ``fd``."""
    import torch
    import uvicorn

    from nmodal.serve import create_app, server_config

    torch.set_num_threads(1)
    vectors = np.load(Path(folder) / QUERIES_FILE, allow_pickle=False)
    app = create_app(folder, query_encoder=QueryVectors(vectors))  # type: ignore[arg-type]
    sock = socket.socket(fileno=fd)
    uvicorn.Server(server_config(app, "warning")).run(sockets=[sock])


def start_server(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(folder), str(sock.fileno())],
        pass_fds=[sock.fileno()],
    )
    sock.close()
    deadline = time.monotonic() + 300
    while True:
        try:
            httpx.get(f"{url}/api/health", timeout=5).raise_for_status()
            return proc, url
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the benchmark server did not start") from None
            time.sleep(0.2)


def peak_rss_of(pid: int) -> float | None:
    """A running process's peak RSS in MB (Linux ``VmHWM``; None elsewhere). Not the
    children's ``ru_maxrss``: that counts the parent's pages a fork held before ``exec``."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def percentiles(ms: list[float] | np.ndarray) -> dict[str, float]:
    a = np.asarray(ms)
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
    }


def library_latency(
    index: PostIndex, queries: np.ndarray, post_ids: list[str]
) -> dict[str, dict[str, float]]:
    """The library calls the two endpoints make, one at a time, in this process."""
    out = {}
    for name, calls in (
        ("search", [lambda q=q: index.search(["text"], q[None], k=K) for q in queries]),
        ("similar", [lambda p=p: index.more_like_this(p, k=K) for p in post_ids]),
    ):
        for call in calls[:5]:
            call()
        times = []
        for call in calls:
            start = time.perf_counter()
            call()
            times.append((time.perf_counter() - start) * 1e3)
        out[name] = percentiles(times)
    return out


async def _http_run(
    url: str, targets: list[tuple[str, dict[str, Any]]], clients: int
) -> tuple[list[float], float, int]:
    import httpx

    todo = list(enumerate(targets))
    times: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            while todo:
                _, (path, params) = todo.pop()
                start = time.perf_counter()
                r = await client.get(path, params=params)
                times.append((time.perf_counter() - start) * 1e3)
                errors += r.status_code != 200

        wall = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - wall
    return times, wall, errors


def http_latency(
    url: str, num_queries: int, post_ids: list[str], clients: int
) -> dict[str, dict[str, Any]]:
    """Each endpoint with 1 client, then ``clients`` concurrent ones."""
    endpoints = {
        "search": [("/api/search", {"text": f"q{i}", **OPTIONS}) for i in range(num_queries)],
        "similar": [("/api/similar", {"post_id": p, **OPTIONS}) for p in post_ids],
    }
    out: dict[str, dict[str, Any]] = {}
    for name, targets in endpoints.items():
        asyncio.run(_http_run(url, targets[:clients], clients))  # warm-up
        row: dict[str, Any] = {}
        for label, n in (("http_1", 1), (f"http_{clients}", clients)):
            times, wall, errors = asyncio.run(_http_run(url, targets, n))
            row[label] = {
                **percentiles(times),
                "requests_per_s": round(len(times) / wall, 1),
                "errors": errors,
            }
        out[name] = row
    return out


def same_results(index: PostIndex, url: str, queries: np.ndarray, post_ids: list[str]) -> bool:
    """Whether the server answers a few queries of each endpoint with the library's hits."""
    import httpx

    with httpx.Client(base_url=url, timeout=120) as client:
        for i, q in enumerate(queries):
            body = client.get("/api/search", params={"text": f"q{i}", **OPTIONS}).json()
            want = index.search(["text"], q[None], k=K)
            if [h["post_id"] for h in body["hits"]] != [h.post_id for h in want.hits]:
                return False
        for p in post_ids:
            body = client.get("/api/similar", params={"post_id": p, **OPTIONS}).json()
            want = index.more_like_this(p, k=K)
            if [h["post_id"] for h in body["hits"]] != [h.post_id for h in want.hits]:
                return False
    return True


def bench_http(
    index: PostIndex, queries: np.ndarray, clients: int = 8, seed: int = 2
) -> dict[str, Any]:
    """Library vs served latency of ``index`` for ``queries`` (and as many similar-post
    queries), in the same run."""
    rng = np.random.default_rng(seed)
    post_ids = [str(p) for p in rng.choice(index.post_ids, len(queries), replace=False)]
    result: dict[str, Any] = {"clients": clients, "requests_per_endpoint": len(queries)}
    library = library_latency(index, queries, post_ids)
    with tempfile.TemporaryDirectory(prefix="nmodal-bench-http-") as tmp:
        folder = write_folder(index, queries, Path(tmp) / "index")
        proc, url = start_server(folder)
        try:
            result["same_results"] = same_results(index, url, queries[:5], post_ids[:5])
            served = http_latency(url, len(queries), post_ids, clients)
            result["server_peak_rss_mb"] = peak_rss_of(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    for name in ("search", "similar"):
        result[name] = {"library": library[name], **served[name]}
        base = max(library[name]["p50_ms"], 1e-9)
        result[name][f"http_{clients}_p50_over_library"] = round(
            served[name][f"http_{clients}"]["p50_ms"] / base, 1
        )
    return result


def measure(posts: int, queries: int, clients: int, factory: str | None = None) -> dict[str, Any]:
    """:func:`bench_http` on ``bench_index``'s synthetic index of ``posts`` posts."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_index import make_queries, synthetic
    from nmodal.index.build import index_from_embeddings

    emb, present = synthetic(posts)
    index = index_from_embeddings(emb, present, factory=factory)
    return {"posts": posts, **bench_http(index, make_queries(emb, queries), clients)}


def run(quick: bool = False) -> dict[str, Any]:
    """``bench/run.py``'s entry: 20k posts, 200 queries, 8 clients (quick: 3k, 24, 8)."""
    return measure(3000, 24, 8) if quick else measure(20_000, 200, 8)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--posts", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--factory", default=None, help="FAISS factory (default: nmodal's)")
    parser.add_argument("--serve", nargs=2, metavar=("FOLDER", "FD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_folder(args.serve[0], int(args.serve[1]))
        return
    result = measure(args.posts, args.queries, args.clients, args.factory)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
