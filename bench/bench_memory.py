"""Peak resident memory (and time) of `nmodal train`, `evaluate`, `index build` and
`classify` against the collection size, on synthetic float16 stores of the offline
encoders' sizes (text 384 + image 1280 + video 2560 features a post: 8.4 KB a post on disk).

Each command runs in a fresh subprocess; its peak RSS is ``ru_maxrss`` of
``resource.getrusage(RUSAGE_CHILDREN)`` after it exits, measured in a fresh
``bench_memory.py --one`` wrapper process per command. ``--before SRC`` runs the same
commands with another checkout's sources (e.g. a worktree of an older commit's ``src``) as a
baseline in the same run, up to ``--before-max`` posts. The store is written once per size
(``write_s``: the synthetic writer, one shard in memory at a time) and deleted after.

Commands measured, per size: ``train`` (1 epoch, batch 1024, ``--amp off``),
``evaluate`` (the held-out posts train recorded), ``index build`` (default factory and
recall tuning), ``classify`` (``--classifiers nb --folds 2 --modality fused`` on a random
binary label: the memory of reading and embedding, not of a slow classifier).

    .venv/bin/python bench/bench_memory.py --sizes 20000,100000 --before /tmp/old/src
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIMS = (384, 1280, 2560)
MODALITIES = ("text", "image", "video")
COMMANDS = ("train", "evaluate", "index build", "classify")


def _labels(store: Path, out: Path) -> Path:
    """A posts table with a random binary ``stance`` for the store's posts."""
    import numpy as np
    import pandas as pd

    from nmodal.features import StoreReader

    ids = StoreReader(store, verify=False).post_ids
    stance = np.random.default_rng(0).choice(["a", "b"], len(ids))
    pd.DataFrame({"post_id": ids, "stance": stance}).to_parquet(out)
    return out


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
    commands: tuple[str, ...] = COMMANDS,
    keep_store: bool = False,
) -> dict[str, object]:
    from nmodal.features.store import read_store_manifest
    from nmodal.features.synthetic import write_synthetic_store

    nmodal = [sys.executable, "-m", "nmodal"]
    results: dict[str, object] = {}
    for n in sizes:
        store = work / f"store-{n}"
        t = time.perf_counter()
        reuse = keep_store and (store / "manifest.json").exists()
        if not reuse or not read_store_manifest(store).get("complete"):
            write_synthetic_store(store, n, MODALITIES, DIMS, seed=0, dtype="float16")
        row: dict[str, object] = {
            "store_mb": sum(f.stat().st_size for f in store.iterdir()) / 2**20,
            "write_s": None if reuse else time.perf_counter() - t,
        }
        print(json.dumps({n: row}), flush=True)
        posts = work / f"posts-{n}.parquet"
        if not (reuse and posts.exists()):
            _labels(store, posts)
        for label, src in sources.items():
            if label == "before" and n > before_max:
                continue
            model = work / f"model-{label}-{n}"
            argv = {
                "train": ["train", str(store), "--out", str(model), "--overwrite",
                          "--epochs", str(epochs), "--batch-size", str(batch), "--amp", "off"],
                "evaluate": ["evaluate", str(model), "--store", str(store)],
                "index build": ["index", "build", "--model", str(model), "--store", str(store),
                                "--out", str(work / f"index-{label}-{n}"), "--overwrite"],
                "classify": ["classify", "--model", str(model), "--store", str(store),
                             "--posts", str(posts), "--label", "stance", "--classifiers", "nb",
                             "--folds", "2", "--modality", "fused", "--overwrite",
                             "--out", str(work / f"classify-{label}-{n}")],
            }  # fmt: skip
            for command in commands:
                row[f"{command}[{label}]"] = _measure([*nmodal, *argv[command]], src)
                print(json.dumps({n: {command: row[f"{command}[{label}]"]}}), flush=True)
            for leftover in (f"index-{label}-{n}", f"classify-{label}-{n}"):
                shutil.rmtree(work / leftover, ignore_errors=True)
        results[str(n)] = row
        print(json.dumps({n: row}), flush=True)
        if not keep_store:
            shutil.rmtree(store)
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
    p.add_argument(
        "--commands",
        default=",".join(COMMANDS),
        help=f"comma list among {','.join(COMMANDS)} (default: all; train always runs first "
        "when evaluate, index build or classify need its model)",
    )
    p.add_argument(
        "--keep-store",
        action="store_true",
        help="keep each size's store in --work after the run, and reuse a complete one "
        "found there (and its posts table) instead of writing it again",
    )
    p.add_argument(
        "--reuse-model",
        action="store_true",
        help="with train not in --commands, use the model a previous run left in --work",
    )
    args = p.parse_args()
    if args.one is not None:
        _one(json.loads(args.one))
        return 0
    sources = {"after": str(ROOT / "src")}
    if args.before:
        sources = {"before": args.before, **sources}
    work = args.work or Path(tempfile.mkdtemp(prefix="nmodal-bench-memory-"))
    sizes = [int(s) for s in args.sizes.split(",")]
    commands = tuple(c.strip() for c in args.commands.split(",") if c.strip())
    unknown = [c for c in commands if c not in COMMANDS]
    if unknown:
        p.error(f"unknown command {unknown[0]!r}; choose among {', '.join(COMMANDS)}")
    if "train" not in commands and not args.reuse_model:
        commands = ("train", *commands)  # the other commands need its model
    results = run_sizes(
        sizes,
        work,
        sources,
        args.epochs,
        args.batch_size,
        args.before_max,
        commands,
        keep_store=args.keep_store,
    )
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
