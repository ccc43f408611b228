"""Post index: build time, query latency (p50/p99) and recall@10 of the approximate index.

Synthetic shared-space embeddings at 10k, 100k and 1M posts: 3 modalities (text, image,
video), dim 256, L2-normalised, float32. Posts belong to topics (clusters), and a post's
artifacts are noisy views of one post vector, so nearest neighbours are meaningful as in a
trained space; 10% of image and video artifacts are absent. Two data models at 1M: the
within-topic variation in a shared 32-d subspace (``latent-32``, dense low-dimensional data:
the harder one for IVF here) or spread over all 256 dimensions (``isotropic``). Recall of an
IVF index depends on the data, so both are reported. A query is a fresh noisy view
of a random post's text artifact (a new text about that post), searched against the image
and video artifacts and collated to posts by the paper's sum rule, k = 10.

For each size, in the same run: the exact index (``Flat``; its answer is certified exact)
and nmodal's default (``index_from_embeddings`` with no factory: exact up to 1M artifacts,
above that the IVF size and nprobe whose recall, measured at build time against exact
search, reaches 0.99; see :mod:`nmodal.index.tuning`). recall@10 = overlap of the default's
top-10 posts with the exact top-10, averaged over queries. Latency is the wall time of
``PostIndex.search`` (FAISS candidates + exact re-scoring + metadata), one query at a time,
one thread, after warm-up; ``speedup`` is exact p50 / default p50 from the same run (on a
shared machine absolute times vary; the ratio is the figure). Build time includes the
recall measurement; memory is the FAISS indexes' bytes (embeddings, kept for exact
re-scoring, are memory-mapped from disk by ``PostIndex.open`` and not counted).

Over HTTP (``--http-clients``, default 8; 0 skips it): the default index is written to a
folder and served by a separate process with ``nmodal serve``'s settings; p50/p99 of
``/api/search`` and ``/api/similar`` with 1 and 8 concurrent clients, beside the library
calls measured in the same run (see ``bench/bench_http.py``).

Each size also records the process's peak RSS so far (``peak_rss_mb``), its wall time
(``wall_s``) and the default build's CPU time over all threads (``build_cpu_s``: on a
shared machine the better predictor of an idle machine's wall time, about
``build_cpu_s / cores``). With two measured sizes of the same data model (e.g. 100k and 1M), the report
adds a 10M extrapolation: each figure fitted as ``a * n**b`` through the two points
(labelled as extrapolated, not measured).

``--add-double SIZE`` (e.g. ``1M``): what ``nmodal index add`` keeps when it doubles a
collection. A ``2 * SIZE``-post collection of the same data model is generated; the default
index is built over its first half (recall@10 against exact search there), then the second
half is added through ``index add``'s own step (:func:`nmodal.index.build.grow_modality`:
the vectors added to the trained index, its recall re-measured on fresh held-out queries, its
``nprobe`` re-tuned to the recorded target, or the index retrained when no setting reaches
it or it outgrew its training sample), and recall@10 is measured against exact search over
all ``2 * SIZE`` posts. The model and feature store of the real command are not involved
(the vectors are given), so this isolates the index's promise.

``--flat-max N`` lowers the exact-index threshold (default 1M artifacts) so that the
approximate path (build-time recall tuning) runs at small sizes, for checking it and its
scaling before a large run.

Usage::

    .venv/bin/python bench/bench_index.py --sizes 100k,1M,1M-iso --json out.json  # ~10 GB peak
    .venv/bin/python bench/bench_index.py --sizes 10k --flat-max 1000              # seconds
    .venv/bin/python bench/bench_index.py --sizes "" --add-double 1M --http-clients 0  # ~14 GB
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import re
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from nmodal.index import build as build_module  # noqa: E402
from nmodal.index.build import grow_modality, index_from_embeddings, write_faiss  # noqa: E402
from nmodal.index.post_index import PostIndex  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_http import bench_http  # noqa: E402

DIM = 256
MODALITIES = ("text", "image", "video")
K = 10
LATENT_DIM = 32


def topic_count(n: int) -> int:
    """Topics of a synthetic collection of ``n`` posts: one per 500 posts, at least 20."""
    return max(n // 500, 20)


def synthetic(
    n: int,
    seed: int = 0,
    latent_dim: int | None = LATENT_DIM,
    chunk: int = 100_000,
    topics: int | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Clustered, cross-modally linked unit vectors: ``(emb, present)``.

    A post vector is its topic centre plus a variation of norm ~1.2 that lives in a
    ``latent_dim``-dimensional subspace (trained embedding spaces are low-dimensional in
    this sense); ``latent_dim=None`` spreads the variation over all 256 dimensions (the
    hard, isotropic case for IVF). Each modality's artifact adds its own isotropic noise
    (norm ~0.5) to the post vector. ``topics`` topic centres (default
    :func:`topic_count` of ``n``).
    """
    rng = np.random.default_rng(seed)
    topics = topics or topic_count(n)
    centres = rng.standard_normal((topics, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    basis = None
    if latent_dim is not None:
        basis = np.linalg.qr(rng.standard_normal((DIM, latent_dim)))[0].T.astype(np.float32)
    emb = {m: np.empty((n, DIM), np.float32) for m in MODALITIES}
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        crng = np.random.default_rng([seed, start])
        topic = crng.integers(0, topics, stop - start)
        if basis is None:
            variation = crng.standard_normal((stop - start, DIM)).astype(np.float32) / np.sqrt(DIM)
        else:
            variation = crng.standard_normal((stop - start, len(basis))).astype(np.float32) @ basis
            variation /= np.sqrt(len(basis))
        base = centres[topic] + 1.2 * variation
        base /= np.linalg.norm(base, axis=1, keepdims=True)
        for m in MODALITIES:
            x = base + (0.5 / np.sqrt(DIM)) * crng.standard_normal((stop - start, DIM)).astype(
                np.float32
            )
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            emb[m][start:stop] = x
    present = {m: np.ones(n, bool) for m in MODALITIES}
    for m in ("image", "video"):
        present[m] = rng.random(n) >= 0.1
        emb[m][~present[m]] = 0.0
    return emb, present


def make_queries(emb: dict[str, np.ndarray], count: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(emb["text"]), count, replace=False)
    q = emb["text"][rows] + (0.5 / np.sqrt(DIM)) * rng.standard_normal((count, DIM)).astype(
        np.float32
    )
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def time_queries(
    index: PostIndex, queries: np.ndarray, warmup: int = 5, nprobe: int | None = None
) -> tuple[list[list[str]], np.ndarray]:
    for q in queries[:warmup]:
        index.search(["text"], q[None], k=K, nprobe=nprobe)
    tops: list[list[str]] = []
    times = np.empty(len(queries))
    for i, q in enumerate(queries):
        start = time.perf_counter()
        result = index.search(["text"], q[None], k=K, nprobe=nprobe)
        times[i] = time.perf_counter() - start
        tops.append([h.post_id for h in result.hits])
    return tops, times * 1e3


def recall(approx: list[list[str]], exact: list[list[str]]) -> float:
    return float(
        np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact, strict=True)])
    )


def index_bytes(index: PostIndex) -> int:
    """Bytes of the FAISS indexes (serialised size: what the index holds in memory)."""
    import faiss

    total = 0
    for m, idx in index.indexes.items():
        if index.exact[m]:  # Flat: float32 vectors + int64 ids (not worth serialising)
            total += int(idx.ntotal) * (4 * DIM + 8)
        else:
            total += int(faiss.serialize_index(idx).size)
    return total


def latency(ms: np.ndarray) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def bench_size(
    n: int, num_queries: int, latent_dim: int | None = LATENT_DIM, http_clients: int = 8
) -> dict[str, Any]:
    """Exact (``Flat``) against nmodal's default index at ``n`` posts, in the same run."""
    import faiss

    faiss.omp_set_num_threads(2)  # building uses both cores; searches set 1 per call
    t0 = time.perf_counter()
    emb, present = synthetic(n, latent_dim=latent_dim)
    gen_s = time.perf_counter() - t0
    queries = make_queries(emb, num_queries)
    out: dict[str, Any] = {
        "posts": n,
        "data": "isotropic" if latent_dim is None else f"latent-{latent_dim}",
        "artifacts": int(sum(p.sum() for p in present.values())),
        "generate_s": round(gen_s, 1),
        "queries": num_queries,
    }

    start = time.perf_counter()
    exact = index_from_embeddings(emb, present, factory="Flat")
    out["exact"] = {"factory": "Flat", "build_s": round(time.perf_counter() - start, 2)}
    exact_tops, ms = time_queries(exact, queries)
    out["exact"].update(latency(ms), index_bytes=index_bytes(exact))
    del exact
    gc.collect()

    start, cpu = time.perf_counter(), time.process_time()
    default = index_from_embeddings(emb, present, progress=True)  # nmodal's default choice
    build_s = time.perf_counter() - start
    build_cpu_s = time.process_time() - cpu  # all threads: ~ wall x cores on an idle machine
    info = default.manifest["modalities"]
    tops, ms = time_queries(default, queries)
    out["default"] = {
        "factories": {m: i["factory"] for m, i in info.items()},
        "nprobe": {m: i["nprobe"] for m, i in info.items()},
        "build_s": round(build_s, 1),
        "build_cpu_s": round(build_cpu_s, 1),
        "index_bytes": index_bytes(default),
        "recall@10": round(recall(tops, exact_tops), 4),
        **latency(ms),
        "tuning": {m: i.get("tuning", {}).get("curve") for m, i in info.items()},
    }
    out["speedup_p50"] = round(out["exact"]["p50_ms"] / max(out["default"]["p50_ms"], 1e-9), 1)
    if http_clients:
        out["http"] = bench_http(default, queries, clients=http_clients)
    del default, emb, present
    gc.collect()
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def _default_figures(index: PostIndex) -> dict[str, Any]:
    info = index.manifest["modalities"]
    return {
        "factories": {m: i["factory"] for m, i in info.items()},
        "nprobe": {m: i["nprobe"] for m, i in info.items()},
        "trained_on": {m: i.get("trained_on") for m, i in info.items()},
        "count": {m: i["count"] for m, i in info.items()},
        "index_bytes": index_bytes(index),
    }


def bench_add(n: int, num_queries: int, latent_dim: int | None = LATENT_DIM) -> dict[str, Any]:
    """The default index over the first ``n`` of ``2n`` posts, grown by the other ``n`` with
    ``index add``'s step; recall@10 against exact search before and after."""
    import faiss

    faiss.omp_set_num_threads(2)
    t0 = time.perf_counter()
    # the first half has the topics of a collection of n (as the --sizes run of n): the
    # added posts are more posts on the same topics, not a collection of 2n squeezed in
    emb, present = synthetic(2 * n, latent_dim=latent_dim, topics=topic_count(n))
    half = {m: e[:n] for m, e in emb.items()}
    half_present = {m: p[:n] for m, p in present.items()}
    out: dict[str, Any] = {
        "posts_before": n,
        "posts_after": 2 * n,
        "data": "isotropic" if latent_dim is None else f"latent-{latent_dim}",
        "queries": num_queries,
    }

    queries = make_queries(half, num_queries)
    exact = index_from_embeddings(half, half_present, factory="Flat")
    exact_tops, _ = time_queries(exact, queries, warmup=0)
    del exact
    gc.collect()
    start = time.perf_counter()
    default = index_from_embeddings(half, half_present, progress=True)
    out["build_s"] = round(time.perf_counter() - start, 1)
    tops, ms = time_queries(default, queries)
    out["before"] = {
        **_default_figures(default),
        "recall@10": round(recall(tops, exact_tops), 4),
        **latency(ms),
    }

    info = copy.deepcopy(default.manifest["modalities"])
    indexes: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="nmodal-bench-add-") as tmp:
        for m, index in default.indexes.items():
            write_faiss(Path(tmp), m, index, info[m])
        del default, index
        gc.collect()
        start = time.perf_counter()
        for m in MODALITIES:
            indexes[m], info[m] = grow_modality(
                Path(tmp), emb, present, m, info[m], n, "auto", progress=True
            )
        out["add_s"] = round(time.perf_counter() - start, 1)
    manifest = {
        "projection_dim": DIM,
        "num_posts": 2 * n,
        "num_artifacts": int(sum(p.sum() for p in present.values())),
        "modalities": info,
    }
    table = pd.DataFrame({"post_id": np.asarray([str(i) for i in range(2 * n)], dtype=object)})
    grown = PostIndex(Path("<memory>"), manifest, table, dict(emb), present, indexes)

    queries = make_queries(emb, num_queries, seed=2)
    tops, ms = time_queries(grown, queries)
    out["after"] = {
        **_default_figures(grown),
        # what index add did per modality: kept the centroids (nprobe re-tuned to the
        # recorded recall) or retrained the lists over all the vectors
        "add_step": {
            m: "retrained" if i.get("trained_on") != out["before"]["trained_on"][m] else "added"
            for m, i in info.items()
        },
        **latency(ms),
    }
    del grown, indexes
    gc.collect()
    exact = index_from_embeddings(emb, present, factory="Flat")
    exact_tops, ms = time_queries(exact, queries, warmup=0)
    out["after"]["recall@10"] = round(recall(tops, exact_tops), 4)
    out["after"]["exact_p50_ms"] = latency(ms)["p50_ms"]
    del exact, emb, present
    gc.collect()
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def index_kind(factories: dict[str, str]) -> str:
    """The default's factories without their list counts (``IVF4096,SQ8`` -> ``IVF,SQ8``)."""
    return ",".join(sorted({re.sub(r"\d+", "", f) for f in factories.values()}))


def extrapolate(sizes: list[dict[str, Any]], target: int = 10_000_000) -> list[dict[str, Any]]:
    """Per data model and index kind with two measured sizes: each figure as ``a * n**b``
    through the smallest and the largest, evaluated at ``target`` posts (an extrapolation).

    Only sizes whose default indexes are of the same kind are fitted together (the factory
    strings with their list counts removed: ``IVF1024,SQ8`` and ``IVF4096,SQ8`` are one kind,
    exact ``Flat`` another): a line through an exact index at 100k and an IVF one at 1M
    describes neither."""
    out = []
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in sizes:
        groups.setdefault((s["data"], index_kind(s["default"]["factories"])), []).append(s)
    for (data, kind), group in sorted(groups.items()):
        runs = sorted(group, key=lambda s: s["posts"])
        if len(runs) < 2 or runs[0]["posts"] == runs[-1]["posts"]:
            continue
        lo, hi = runs[0], runs[-1]
        figures = {
            "exact p50_ms": (lo["exact"]["p50_ms"], hi["exact"]["p50_ms"]),
            "default p50_ms": (lo["default"]["p50_ms"], hi["default"]["p50_ms"]),
            "default build_s": (lo["default"]["build_s"], hi["default"]["build_s"]),
            "default build_cpu_s": (
                lo["default"].get("build_cpu_s", 0),
                hi["default"].get("build_cpu_s", 0),
            ),
            "default index_bytes": (lo["default"]["index_bytes"], hi["default"]["index_bytes"]),
            "exact index_bytes": (lo["exact"]["index_bytes"], hi["exact"]["index_bytes"]),
        }
        row: dict[str, Any] = {
            "data": data,
            "index": kind,
            "posts": target,
            "from": [lo["posts"], hi["posts"]],
        }
        for name, (a, b) in figures.items():
            if a > 0 and b > 0:
                power = float(np.log(b / a) / np.log(hi["posts"] / lo["posts"]))
                row[name] = round(b * (target / hi["posts"]) ** power, 2)
                row[name + " exponent"] = round(power, 2)
        out.append(row)
    return out


SIZES = {
    "100k": (100_000, 300, LATENT_DIM),
    "400k": (400_000, 200, LATENT_DIM),
    "1M": (1_000_000, 200, LATENT_DIM),
    "1M-iso": (1_000_000, 200, None),
    "10k": (10_000, 200, LATENT_DIM),
    "10k-iso": (10_000, 200, None),
    "50k": (50_000, 200, LATENT_DIM),
    "100k-iso": (100_000, 300, None),
}


def measure(
    sizes: list[str], http_clients: int = 8, add_double: str | None = None
) -> dict[str, Any]:
    results = []
    for name in sizes:
        n, q, latent = SIZES[name]
        results.append(bench_size(n, q, latent, http_clients))
        print(f"  {name} done: {json.dumps(results[-1])}", file=sys.stderr, flush=True)
    out: dict[str, Any] = {
        "dim": DIM,
        "modalities": list(MODALITIES),
        "k": K,
        "flat_max_artifacts": build_module.FLAT_MAX_ARTIFACTS,
        "sizes": results,
        "extrapolated_10M": extrapolate(results),
    }
    if add_double:
        n, q, latent = SIZES[add_double]
        out["add_double"] = bench_add(n, q, latent)
        print(f"  add {add_double} done: {json.dumps(out['add_double'])}", file=sys.stderr)
    return out


def run(quick: bool = False) -> dict[str, Any]:
    """``bench/run.py``'s entry: the README's sizes 100k, 1M, 1M-iso (quick: 10k, 10k-iso,
    with 2 HTTP clients)."""
    if quick:
        return measure(["10k", "10k-iso"], http_clients=2)
    return measure(["100k", "1M", "1M-iso"])


def report(result: dict[str, Any]) -> str:
    lines = [
        f"{'posts':>9} {'data':<10} {'index':<22} {'build s':>8} {'MB':>7} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'recall@10':>9} {'speedup':>7}"
    ]
    for size in result["sizes"]:
        e, d = size["exact"], size["default"]
        lines.append(
            f"{size['posts']:>9} {size['data']:<10} {'exact Flat':<22} {e['build_s']:>8} "
            f"{e['index_bytes'] / 1e6:>7.0f} {e['p50_ms']:>7} {e['p99_ms']:>7} {'1':>9} {'1':>7}"
        )
        name = "default " + ",".join(sorted(set(d["factories"].values())))
        lines.append(
            f"{'':>9} {'':<10} {name:<22} {d['build_s']:>8} {d['index_bytes'] / 1e6:>7.0f} "
            f"{d['p50_ms']:>7} {d['p99_ms']:>7} {d['recall@10']:>9} {size['speedup_p50']:>7}"
        )
        for endpoint, row in size.get("http", {}).items():
            if not isinstance(row, dict):
                continue
            cells = ", ".join(
                f"{label} p50 {v['p50_ms']} / p99 {v['p99_ms']} ms"
                for label, v in row.items()
                if isinstance(v, dict)
            )
            lines.append(f"{'':>9} {'':<10} {'  HTTP ' + endpoint:<22} {cells}")
        lines.append(
            f"{'':>9} {'':<10} {'  run':<22} {size.get('wall_s')} s, peak RSS "
            f"{size.get('peak_rss_mb')} MB"
        )
    for row in result.get("extrapolated_10M", []):
        skip = ("data", "index", "posts", "from")
        cells = ", ".join(f"{k} {v}" for k, v in row.items() if k not in skip)
        lines.append(f"10M {row['data']} {row['index']} EXTRAPOLATED from {row['from']}: {cells}")
    add = result.get("add_double")
    if add:
        b, a = add["before"], add["after"]
        lines.append(
            f"index add {add['posts_before']} -> {add['posts_after']} posts ({add['data']}): "
            f"recall@10 {b['recall@10']} -> {a['recall@10']}, nprobe {b['nprobe']} -> "
            f"{a['nprobe']}, factories {a['factories']}, trained on {a['trained_on']}, "
            f"step {a['add_step']}, p50 {b['p50_ms']} -> {a['p50_ms']} ms (exact "
            f"{a['exact_p50_ms']} ms), build {add['build_s']} s, add {add['add_s']} s, "
            f"peak RSS {add['peak_rss_mb']} MB"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="100k,1M,1M-iso", help=f"comma-separated, of {sorted(SIZES)}"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    parser.add_argument(
        "--http-clients",
        type=int,
        default=8,
        help="concurrent HTTP clients of the served default index (0: no HTTP figures)",
    )
    parser.add_argument(
        "--flat-max",
        type=int,
        default=None,
        help="exact-index threshold in artifacts (default 1M): lower it to run the "
        "approximate path at small sizes",
    )
    parser.add_argument(
        "--add-double",
        choices=sorted(SIZES),
        default=None,
        help="also measure recall after index add doubles a collection of this size",
    )
    args = parser.parse_args()
    if args.flat_max is not None:
        build_module.FLAT_MAX_ARTIFACTS = args.flat_max
    result = measure([s for s in args.sizes.split(",") if s], args.http_clients, args.add_double)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
