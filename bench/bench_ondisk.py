"""Memory of a search process over an IVF index with its lists in memory vs on disk.

Builds one ``IVF<nlist>,SQ8`` inner-product index of ``--vectors`` random unit vectors,
writes it twice with :func:`nmodal.index.ondisk.write_index` (``storage`` memory and
ondisk), then, for each, a fresh subprocess opens it the way ``PostIndex.open`` does
(:func:`nmodal.index.ondisk.read_index`) and runs ``--queries`` searches at ``--nprobe``.
Each reports, from ``/proc/self/status``: the peak RSS (``VmHWM``), and at the end the
anonymous (``RssAnon``: the process's own memory) and file-backed (``RssFile``: mapped
file pages it touched, which the kernel can drop and shares between processes) resident
memory, each also right after the imports, plus the load and search times. Ids and
distances of both must be identical (``same_results``).

    .venv/bin/python bench/bench_ondisk.py --vectors 1000000 --dim 256 --nlist 1024
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _status() -> dict[str, int]:
    """``VmHWM``, ``VmRSS``, ``RssAnon``, ``RssFile`` of this process, in MB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) // 1024
    return out


def one(directory: Path, storage: str, queries: int, nprobe: int, dim: int) -> dict:
    """Open and search in this process (a fresh one per storage)."""
    import numpy as np

    from nmodal.index import ondisk

    before = _status()
    t0 = time.perf_counter()
    index, _ = ondisk.read_index(directory, "m", {"storage": storage, "lists_file": "m.ivfdata"})
    load_s = time.perf_counter() - t0
    loaded = _status()
    q = np.random.default_rng(1).standard_normal((queries, dim)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    import faiss

    params = faiss.SearchParametersIVF()
    params.nprobe = nprobe
    t0 = time.perf_counter()
    dist, ids = index.search(q, 10, params=params)
    search_s = time.perf_counter() - t0
    digest = hashlib.sha256(ids.tobytes() + dist.tobytes()).hexdigest()
    return {
        "storage": storage,
        "after_imports_mb": before,
        "after_load_mb": loaded,
        "after_search_mb": _status(),
        "load_s": round(load_s, 3),
        "search_ms_per_query": round(1000 * search_s / queries, 3),
        "results_sha256": digest,
    }


def build(work: Path, vectors: int, dim: int, nlist: int) -> dict:
    import faiss
    import numpy as np

    from nmodal.index import ondisk

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    index = faiss.index_factory(dim, f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
    sample = rng.standard_normal((min(vectors, 40 * nlist), dim)).astype(np.float32)
    sample /= np.linalg.norm(sample, axis=1, keepdims=True)
    index.train(sample)
    chunk = 65_536
    for start in range(0, vectors, chunk):
        x = rng.standard_normal((min(chunk, vectors - start), dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        index.add_with_ids(x, np.arange(start, start + len(x), dtype=np.int64))
    build_s = time.perf_counter() - t0
    for storage in ("memory", "ondisk"):
        (work / storage).mkdir()
        ondisk.write_index(work / storage, "m", faiss.clone_index(index), storage)
    sizes = {
        storage: {p.name: p.stat().st_size for p in (work / storage).iterdir()}
        for storage in ("memory", "ondisk")
    }
    return {"build_s": round(build_s, 1), "list_bytes": ondisk.list_bytes(index), "files": sizes}


def measure(
    vectors: int, dim: int, nlist: int, queries: int, nprobe: int, work: Path | None = None
) -> dict:
    """Build the index in a scratch folder under ``work``, search it from a subprocess per
    storage, compare their results; the scratch folder is removed."""
    scratch = Path(tempfile.mkdtemp(prefix="nmodal-ondisk-", dir=work))
    try:
        report: dict = {"vectors": vectors, "dim": dim, "nlist": nlist, "queries": queries,
                        "nprobe": nprobe}  # fmt: skip
        report.update(build(scratch, vectors, dim, nlist))
        for storage in ("memory", "ondisk"):
            cmd = [sys.executable, __file__, "--one", str(scratch / storage), storage]
            cmd += ["--queries", str(queries), "--nprobe", str(nprobe), "--dim", str(dim)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"the {storage} search process failed:\n{done.stderr}")
            report[storage] = json.loads(done.stdout)
        digests = {report[s].pop("results_sha256") for s in ("memory", "ondisk")}
        report["same_results"] = len(digests) == 1
        return report
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run(quick: bool = False) -> dict:
    """``bench/run.py``'s entry: 1M 256-d vectors, 1024 lists (quick: 20k 32-d, 32 lists)."""
    if quick:
        return measure(20_000, 32, 32, 10, 16)
    return measure(1_000_000, 256, 1024, 100, 16)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--nprobe", type=int, default=16)
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp one)")
    ap.add_argument("--one", nargs=2, metavar=("DIR", "STORAGE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        result = one(Path(args.one[0]), args.one[1], args.queries, args.nprobe, args.dim)
        print(json.dumps(result))
        return 0
    try:
        report = measure(args.vectors, args.dim, args.nlist, args.queries, args.nprobe, args.work)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0 if report["same_results"] else 1


if __name__ == "__main__":
    sys.exit(main())
