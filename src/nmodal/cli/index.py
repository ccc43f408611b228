"""``nmodal index``: build a searchable index of posts, add new posts, show what it holds.

Example:
    nmodal index build --model runs/m1 --store data/store --posts data/ds --out data/index
    nmodal index add data/index --model runs/m1 --store data/store-new
    nmodal index info data/index
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from nmodal.cli._help import add_examples
from nmodal.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "index",
        help="build a vector index of posts for search (nmodal search / nmodal serve)",
        description="Embed every artifact of a feature store with a trained model and index it "
        "with FAISS, one index per modality, post metadata alongside.",
    )
    add_examples(
        p,
        "nmodal index build --model runs/m1 --store data/features --posts data/ds --out data/index",
        "nmodal index add data/index --model runs/m1 --store data/features-new",
        "nmodal index info data/index",
    )
    sub = p.add_subparsers(dest="index_command", metavar="ACTION", required=True)

    b = sub.add_parser("build", help="build a new index")
    b.add_argument("--model", type=Path, required=True, help="trained model directory")
    b.add_argument("--store", type=Path, required=True, help="feature store directory")
    b.add_argument(
        "--posts",
        type=Path,
        default=None,
        metavar="DATASET_DIR",
        help="dataset directory with posts.parquet (account, date, text, media)",
    )
    b.add_argument("--out", type=Path, required=True, help="index directory to write")
    b.add_argument(
        "--factory",
        default=None,
        help="FAISS factory string for every modality, e.g. Flat, IVF4096,SQ8, HNSW32,Flat, "
        "IVF4096,SQ8,RFlat, IVF4096,PQ32 (default: exact Flat up to 1M artifacts; above, "
        "the IVF size whose recall, measured at build time against exact search, reaches "
        "--recall at the lowest cost)",
    )
    b.add_argument(
        "--recall",
        type=float,
        default=0.99,
        help="recall@10 (vs exact search, measured at build time on held-out posts) that "
        "approximate indexes must reach: it picks the IVF size and the default nprobe / "
        "efSearch (default 0.99; 0: no measurement, size rule only)",
    )
    b.add_argument(
        "--nprobe",
        type=int,
        default=None,
        help="IVF lists visited per query, fixed instead of tuned (recall still measured)",
    )
    b.add_argument(
        "--ef-search", type=int, default=None, help="HNSW efSearch, fixed instead of tuned"
    )
    b.add_argument(
        "--k-factor",
        type=float,
        default=None,
        help="refined (...,RFlat) indexes: candidates re-ranked exactly per result (default 1)",
    )
    b.add_argument(
        "--backend",
        choices=["faiss", "milvus"],
        default="faiss",
        help="where the vector indexes live: FAISS files in the index folder (default), or a "
        "Milvus server / Milvus Lite file (--uri; then --factory is the Milvus index type: "
        "FLAT (default), HNSW or IVF_FLAT)",
    )
    b.add_argument(
        "--uri",
        default=None,
        help="with --backend milvus: http://host:19530 (a cluster) or a Milvus Lite file *.db",
    )
    b.add_argument(
        "--on-disk",
        choices=["auto", "always", "never"],
        default="auto",
        help="IVF indexes: keep the inverted lists in <modality>.ivfdata, memory-mapped when "
        "searched, so a server holds only the lists it visits (auto, default: a modality "
        "whose lists take 256 MiB or more; always; never). Search results are the same",
    )
    b.add_argument("--batch-size", type=int, default=8192)
    b.add_argument("--overwrite", action="store_true", help="replace an existing index")
    add_examples(
        b,
        "nmodal index build --model runs/m1 --store data/features --posts data/ds --out data/index",
        "nmodal index build --model runs/m1 --store data/features --posts data/ds "
        "--out data/ivf --factory IVF1024,SQ8 --nprobe 16",
        "nmodal index build --model runs/m1 --store data/features --posts data/ds "
        "--out data/big --factory IVF4096,SQ8 --on-disk always",
        "nmodal index build --model runs/m1 --store data/features --posts data/ds "
        "--out data/mv --backend milvus --uri http://milvus:19530 --factory HNSW",
    )
    b.set_defaults(handler=handle_build)

    a = sub.add_parser("add", help="add the posts of a store that the index lacks")
    a.add_argument("index", type=Path, help="index directory")
    a.add_argument(
        "--model",
        type=Path,
        required=True,
        help="the model the index was built with (checked by fingerprint)",
    )
    a.add_argument("--store", type=Path, required=True, help="feature store with new posts")
    a.add_argument(
        "--posts",
        type=Path,
        default=None,
        metavar="DATASET_DIR",
        help="dataset directory of the new posts (default: the index's)",
    )
    a.add_argument("--batch-size", type=int, default=8192)
    a.add_argument(
        "--retrain",
        choices=["auto", "always", "never"],
        default="auto",
        help="IVF centroids: retrain on all vectors when the index has grown past twice what "
        "they were trained on (auto, default), at every addition, or never",
    )
    a.add_argument(
        "--on-disk",
        choices=["auto", "always", "never"],
        default=None,
        help="where grown IVF indexes keep their inverted lists (as for index build; "
        "default: the policy the index was built with)",
    )
    add_examples(
        a,
        "nmodal index add data/index --model runs/m1 --store data/features-new --posts data/ds-new",
    )
    a.set_defaults(handler=handle_add)

    i = sub.add_parser(
        "info", help="what an index holds: per modality its type, search defaults, measured recall"
    )
    i.add_argument("index", type=Path, help="index directory")
    add_examples(i, "nmodal index info data/index")
    i.add_argument("--json", action="store_true", help="print the whole manifest as JSON")
    i.set_defaults(handler=handle_info)


def handle_build(args: argparse.Namespace) -> int:
    from nmodal.index import build_index  # lazy: --help start-up (torch)
    from nmodal.index.layout import read_index_manifest  # lazy: --help start-up (torch)
    from nmodal.index.tuning import RecallTarget  # lazy: --help start-up (torch)

    if args.posts is None:
        print(
            "nmodal index build: warning: no --posts DATASET_DIR: the index will hold no text, "
            "account, date or media paths, so search results show only post ids and the "
            "account/date filters match nothing",
            file=sys.stderr,
        )
    if not 0 <= args.recall <= 1:
        raise InputError(f"--recall must be between 0 and 1, got {args.recall}")
    out = build_index(
        args.model, args.store, args.posts, args.out, factory=args.factory, nprobe=args.nprobe,
        overwrite=args.overwrite, batch_size=args.batch_size,
        target=RecallTarget(recall=args.recall) if args.recall > 0 else None,
        params={"efSearch": args.ef_search, "k_factor": args.k_factor},
        backend=args.backend, uri=args.uri, on_disk=args.on_disk,
    )  # fmt: skip
    manifest = read_index_manifest(out)
    parts = ", ".join(
        f"{m}: {info['count']} ({info['factory']})" for m, info in manifest["modalities"].items()
    )
    print(f"indexed {manifest['num_posts']} posts [{parts}] -> {out}")
    for line in tuning_lines(manifest):
        print(line)
    return 0


def handle_add(args: argparse.Namespace) -> int:
    from nmodal.index import add_posts  # lazy: --help start-up (torch)

    added = add_posts(
        args.index, args.model, args.store, args.posts, batch_size=args.batch_size,
        retrain=args.retrain, on_disk=args.on_disk,
    )  # fmt: skip
    if added:
        print(f"added {added} new posts -> {args.index}")
    else:
        print(f"no new posts in {args.store}; {args.index} unchanged")
    return 0


def tuning_lines(manifest: dict[str, Any]) -> list[str]:
    """One line per modality (type, count, search defaults, measured recall) and the recall
    curve measured at build time (``manifest["modalities"][m]["tuning"]``)."""
    lines = []
    for m, info in manifest["modalities"].items():
        knobs = {"nprobe": info.get("nprobe"), **(info.get("params") or {})}
        shown = ", ".join(f"{k} {v}" for k, v in knobs.items() if v is not None)
        tuning = info.get("tuning")
        head = f"{m}: {info['count']} vectors, {info['factory']}"
        if info.get("storage") == "ondisk":
            head += f" (lists on disk: {info.get('lists_file')})"
        if info.get("exact"):
            lines.append(f"{head} (exact)")
            continue
        if not tuning:
            lines.append(f"{head}{', ' + shown if shown else ''} (recall not measured)")
            continue
        chosen = tuning["chosen"]
        verdict = "reaches" if tuning.get("met") else "MISSES"
        lines.append(
            f"{head}, {shown}: recall@{tuning['k']} {chosen['recall']} {verdict} the target "
            f"{tuning['recall']} ({tuning['metric']}, {tuning['queries']} held-out queries)"
        )
        for point in tuning.get("curve", ()):
            knob = ", ".join(f"{k} {point[k]}" for k in ("nprobe", "efSearch") if k in point)
            when = f" after add ({point['after_add']} vectors)" if "after_add" in point else ""
            lines.append(
                f"    {point['factory']:<18} {knob:<14} recall {point['recall']:<7} "
                f"scans {int(point['cost'])} vectors/query{when}"
            )
    return lines


def handle_info(args: argparse.Namespace) -> int:
    from nmodal.index.layout import read_index_manifest  # lazy: --help start-up (torch)

    manifest = read_index_manifest(args.index)
    if args.json:
        print(json.dumps(manifest, indent=2))
        return 0
    print(
        f"{args.index}: {manifest['num_posts']} posts, {manifest['num_artifacts']} artifacts, "
        f"{manifest['projection_dim']}-d"
    )
    backend = manifest.get("backend")
    if backend:
        print(
            f"backend: Milvus at {backend['uri']}, collections {backend['collection']}_<modality>"
        )
    for line in tuning_lines(manifest):
        print(line)
    return 0
