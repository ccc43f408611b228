"""Peak resident memory (and time) of `nmodal train`, `evaluate` and `index build` against the
collection size, on synthetic float16 stores of the offline encoders' sizes (text 384 +
image 1280 + video 2560 features a post: 8.4 KB a post on disk).

Each command runs in a fresh subprocess; its peak RSS is ``ru_maxrss`` of
``resource.getrusage(RUSAGE_CHILDREN)`` after it exits (max over the children waited for so
far, so the commands run in increasing size order and each is measured in a fresh
``bench_memory.py --one`` wrapper process). ``--before SRC`` runs the same commands with
another checkout's sources (e.g. /work/main/src) as a baseline in the same run.

    .venv/bin/python bench/bench_memory.py --sizes 40000,160000 --before /work/main/src
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIMS = (384, 1280, 2560)
MODALITIES = ("text", "image", "video")


def _measure(cmd: list[str], src: str) -> dict[str, float]:
    """Run ``cmd`` in a wrapper process that reports its one child's peak RSS."""
    env = {**os.environ, "PYTHONPATH": src, "OMP_WAIT_POLICY": "PASSIVE"}
    wrapper = [sys.executable, __file__, "--one", json.dumps(cmd)]
    out = subprocess.run(wrapper, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1:] or ["?"]}  # type: ignore[dict-item]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _one(cmd: list[str]) -> None:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-2000:])
        raise SystemExit(1)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"peak_rss_mb": peak_kib / 1024, "seconds": seconds}))


def run_sizes(
    sizes: list[int],
    work: Path,
    sources: dict[str, str],
    epochs: int,
    batch: int,
    before_max: int,
) -> dict[str, object]:
    from nmodal.features.synthetic import write_synthetic_store

    nmodal = [sys.executable, "-m", "nmodal"]
    results: dict[str, object] = {}
    for n in sizes:
        store = work / f"store-{n}"
        t = time.perf_counter()
        write_synthetic_store(store, n, MODALITIES, DIMS, seed=0, dtype="float16")
        row: dict[str, object] = {
            "store_mb": sum(f.stat().st_size for f in store.iterdir()) / 2**20,
            "write_s": time.perf_counter() - t,
        }
        for label, src in sources.items():
            if label == "before" and n > before_max:
                continue
            model = work / f"model-{label}-{n}"
            row[f"train[{label}]"] = _measure(
                [*nmodal, "train", str(store), "--out", str(model), "--overwrite",
                 "--epochs", str(epochs), "--batch-size", str(batch), "--amp", "off"], src,
            )  # fmt: skip
            row[f"evaluate[{label}]"] = _measure(
                [*nmodal, "evaluate", str(model), "--store", str(store)], src
            )
            row[f"index build[{label}]"] = _measure(
                [*nmodal, "index", "build", "--model", str(model), "--store", str(store),
                 "--out", str(work / f"index-{label}-{n}"), "--overwrite"], src,
            )  # fmt: skip
        results[str(n)] = row
        print(json.dumps({n: row}), flush=True)
        for f in sorted(store.iterdir()):
            f.unlink()
        store.rmdir()
    return results


def run(quick: bool) -> dict[str, object]:
    """For bench/run.py: after-only figures (small sizes with ``quick``)."""
    sizes = [2000, 8000] if quick else [20000, 100000, 300000]
    work = Path(tempfile.mkdtemp(prefix="nmodal-bench-memory-"))
    return run_sizes(sizes, work, {"after": str(ROOT / "src")}, 1, 1024, 0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    p.add_argument("--sizes", default="20000,40000,100000,160000,300000")
    p.add_argument("--before", default=None, help="sources of a baseline checkout")
    p.add_argument("--before-max", type=int, default=40000, help="largest size for --before")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--work", type=Path, default=None)
    args = p.parse_args()
    if args.one is not None:
        _one(json.loads(args.one))
        return 0
    sources = {"after": str(ROOT / "src")}
    if args.before:
        sources = {"before": args.before, **sources}
    work = args.work or Path(tempfile.mkdtemp(prefix="nmodal-bench-memory-"))
    sizes = [int(s) for s in args.sizes.split(",")]
    results = run_sizes(sizes, work, sources, args.epochs, args.batch_size, args.before_max)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
