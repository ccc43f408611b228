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

For each size: the exact index (``Flat``; its answer is certified exact) and the
approximate one chosen by size at 1M (``IVF<nlist>,SQ8``; the same factory is used at every
size so the trend is visible), several ``nprobe`` values. recall@10 = overlap of the
approximate top-10 posts with the exact top-10, averaged over queries. Latency is the
wall time of ``PostIndex.search`` (FAISS candidates + exact re-scoring + metadata), one
query at a time, one thread, after warm-up. Target (issue 6): p50 < 20 ms at 1M posts with
the approximate index.

Usage::

    .venv/bin/python bench/bench_index.py            # 10k, 100k, 2x 1M (about 15 minutes, ~8 GB)
    .venv/bin/python bench/bench_index.py --quick    # 10k only
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from nmodal.index.build import index_from_embeddings  # noqa: E402
from nmodal.index.factory import choose_factory, nlist_for  # noqa: E402
from nmodal.index.post_index import PostIndex  # noqa: E402

DIM = 256
MODALITIES = ("text", "image", "video")
K = 10
TARGET_P50_MS = 20.0
NPROBES = (8, 16, 32, 64)
LATENT_DIM = 32


def synthetic(
    n: int, seed: int = 0, latent_dim: int | None = LATENT_DIM, chunk: int = 100_000
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Clustered, cross-modally linked unit vectors: ``(emb, present)``.

    A post vector is its topic centre plus a variation of norm ~1.2 that lives in a
    ``latent_dim``-dimensional subspace (trained embedding spaces are low-dimensional in
    this sense); ``latent_dim=None`` spreads the variation over all 256 dimensions (the
    hard, isotropic case for IVF). Each modality's artifact adds its own isotropic noise
    (norm ~0.5) to the post vector.
    """
    rng = np.random.default_rng(seed)
    topics = max(n // 500, 20)
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


def bench_size(n: int, num_queries: int, latent_dim: int | None = LATENT_DIM) -> dict[str, Any]:
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
    out["exact"].update(
        p50_ms=round(float(np.percentile(ms, 50)), 2), p99_ms=round(float(np.percentile(ms, 99)), 2)
    )
    del exact
    gc.collect()

    # the approximate factory nmodal picks for a 1M-post collection (sized here by n)
    factory = choose_factory(n, total_artifacts=10**9, dim=DIM)
    start = time.perf_counter()
    approx = index_from_embeddings(emb, present, factory=factory)
    out["approx"] = {
        "factory": factory,
        "nlist": nlist_for(n),
        "build_s": round(time.perf_counter() - start, 2),
        "nprobe": {},
    }
    for nprobe in NPROBES:  # per search, as a request to `nmodal serve` can ask
        tops, ms = time_queries(approx, queries, nprobe=nprobe)
        out["approx"]["nprobe"][nprobe] = {
            "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "recall@10": round(recall(tops, exact_tops), 4),
        }
    default = approx.manifest["modalities"]["text"]["nprobe"]
    out["approx"]["default_nprobe"] = default
    del approx, emb, present
    gc.collect()
    return out


def run(quick: bool = False) -> dict[str, Any]:
    sizes: list[tuple[int, int, int | None]] = (
        [(10_000, 200, LATENT_DIM)]
        if quick
        else [(10_000, 300, LATENT_DIM), (100_000, 300, LATENT_DIM), (1_000_000, 200, LATENT_DIM),
              (1_000_000, 200, None)]
    )  # fmt: skip
    results = []
    for n, q, latent in sizes:
        results.append(bench_size(n, q, latent))
        print(f"  {n} posts done: {json.dumps(results[-1])}", file=sys.stderr, flush=True)
    largest = max((r for r in results if r["data"] != "isotropic"), key=lambda r: r["posts"])
    default = largest["approx"]["nprobe"][largest["approx"]["default_nprobe"]]
    return {
        "dim": DIM,
        "modalities": list(MODALITIES),
        "k": K,
        "sizes": results,
        "target": {
            "posts": largest["posts"],
            "p50_ms": default["p50_ms"],
            "recall@10": default["recall@10"],
            "target_p50_ms": TARGET_P50_MS,
            "met": default["p50_ms"] < TARGET_P50_MS,
        },
    }


def report(result: dict[str, Any]) -> str:
    lines = [
        f"{'posts':>9} {'data':<10} {'index':<14} {'nprobe':>6} {'build s':>8} {'p50 ms':>7} {'p99 ms':>7} {'recall@10':>9}"
    ]
    for size in result["sizes"]:
        e = size["exact"]
        lines.append(
            f"{size['posts']:>9} {size['data']:<10} {'Flat':<14} {'-':>6} {e['build_s']:>8} {e['p50_ms']:>7} {e['p99_ms']:>7} {'1 (exact)':>9}"
        )
        a = size["approx"]
        for nprobe, r in a["nprobe"].items():
            mark = "*" if int(nprobe) == a["default_nprobe"] else " "
            lines.append(
                f"{'':>9} {'':<10} {a['factory']:<14} {str(nprobe) + mark:>6} {a['build_s']:>8} {r['p50_ms']:>7} {r['p99_ms']:>7} {r['recall@10']:>9}"
            )
    t = result["target"]
    lines.append(
        f"target: p50 < {t['target_p50_ms']} ms at {t['posts']} posts (approximate, default nprobe *): "
        f"{t['p50_ms']} ms, recall@10 {t['recall@10']} -> {'met' if t['met'] else 'NOT met'}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="10k posts only")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args()
    result = run(quick=args.quick)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
