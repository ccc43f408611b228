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

from nmodal.cli._help import add_examples


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
        help="FAISS factory string for every modality, e.g. Flat, IVF1024,SQ8, "
        "IVF4096,PQ32 (default: exact Flat up to 1M artifacts, IVF above)",
    )
    b.add_argument(
        "--nprobe",
        type=int,
        default=None,
        help="IVF lists visited per query (default: about nlist/64, at least 8)",
    )
    b.add_argument("--batch-size", type=int, default=8192)
    b.add_argument("--overwrite", action="store_true", help="replace an existing index")
    add_examples(
        b,
        "nmodal index build --model runs/m1 --store data/features --posts data/ds --out data/index",
        "nmodal index build --model runs/m1 --store data/features --posts data/ds "
        "--out data/ivf --factory IVF1024,SQ8 --nprobe 16",
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
    add_examples(
        a,
        "nmodal index add data/index --model runs/m1 --store data/features-new --posts data/ds-new",
    )
    a.set_defaults(handler=handle_add)

    i = sub.add_parser("info", help="print an index's manifest")
    i.add_argument("index", type=Path, help="index directory")
    add_examples(i, "nmodal index info data/index")
    i.set_defaults(handler=handle_info)


def handle_build(args: argparse.Namespace) -> int:
    from nmodal.index import build_index
    from nmodal.index.layout import read_manifest

    if args.posts is None:
        print(
            "nmodal index build: warning: no --posts DATASET_DIR: the index will hold no text, "
            "account, date or media paths, so search results show only post ids and the "
            "account/date filters match nothing",
            file=sys.stderr,
        )
    out = build_index(
        args.model, args.store, args.posts, args.out, factory=args.factory, nprobe=args.nprobe,
        overwrite=args.overwrite, batch_size=args.batch_size,
    )  # fmt: skip
    manifest = read_manifest(out)
    parts = ", ".join(
        f"{m}: {info['count']} ({info['factory']})" for m, info in manifest["modalities"].items()
    )
    print(f"indexed {manifest['num_posts']} posts [{parts}] -> {out}")
    return 0


def handle_add(args: argparse.Namespace) -> int:
    from nmodal.index import add_posts

    added = add_posts(
        args.index, args.model, args.store, args.posts, batch_size=args.batch_size,
        retrain=args.retrain,
    )  # fmt: skip
    if added:
        print(f"added {added} new posts -> {args.index}")
    else:
        print(f"no new posts in {args.store}; {args.index} unchanged")
    return 0


def handle_info(args: argparse.Namespace) -> int:
    from nmodal.index.layout import read_manifest

    print(json.dumps(read_manifest(args.index), indent=2))
    return 0
