"""``nmodal evaluate``: post-level retrieval of a trained model on held-out posts."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nmodal.cli._common import (
    add_retrieval_arguments,
    add_store_arguments,
    csv_list,
    ks_list,
    write_json,
)
from nmodal.cli._help import add_examples
from nmodal.errors import InputError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="measure cross-modal retrieval (recall@K) of a trained model",
        description=(
            "Query every artifact of the test population (the held-out posts recorded with the "
            "model: MODEL_DIR/split.json from `nmodal train`, or the ids in config.json of the "
            "demo's models) against the other modalities' artifacts and report recall@K, per "
            "query modality and per modality pair, as in the paper's Fig. 2. A population "
            "holding posts the model trained on is refused unless --allow-training-posts is "
            "given, and then labelled as such."
        ),
    )
    add_examples(
        p,
        "nmodal evaluate models/triclip --store data/features --out results/eval.json",
        "nmodal evaluate models/triclip --store data/features --queries 300 --modalities text,image",
    )
    p.add_argument("model", type=Path, help="model directory (from `nmodal train`)")
    p.add_argument("--store", type=Path, required=True, help="feature store directory")
    p.add_argument(
        "--split",
        default="test",
        help="test (default: the model's held-out posts), all, or a file of post ids",
    )
    p.add_argument(
        "--modalities",
        type=csv_list,
        default=None,
        help="evaluate on these modalities only, e.g. text,image (the paper's bi-tri rows)",
    )
    p.add_argument(
        "--allow-training-posts",
        action="store_true",
        help="evaluate a --split that contains posts the model was trained on (the report "
        "says so: such figures are not held-out recall)",
    )
    add_retrieval_arguments(p)
    add_store_arguments(p)
    p.add_argument("--ks", type=ks_list, default="1,5,10,25", help="K values (default 1,5,10,25)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write the full report as JSON here")
    p.set_defaults(handler=run)


def _select_posts(args: argparse.Namespace, reader: Any, split: dict[str, list[str]] | None) -> Any:
    """A lazy view (:class:`nmodal.features.StoreView`) of the evaluated posts of the store
    ``reader`` reads, and their ids. Only those posts' shards are read (their presence now,
    their features when embedded, a chunk at a time)."""
    import numpy as np

    if args.split == "all":
        ids = [str(p) for p in reader.post_ids]
    elif args.split == "test":
        if split is None or not split["test"]:
            raise InputError(
                f"{args.model}: no held-out posts recorded (no split.json, no test ids in "
                "config.json); pass a file of post ids with --split"
            )
        ids = split["test"]
    else:
        path = Path(args.split)
        if not path.is_file():
            raise InputError(f"{path}: no such file of post ids")
        ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    pos = {p: i for i, p in enumerate(reader.post_ids.tolist())}
    missing = [p for p in ids if p not in pos]
    if missing:
        raise InputError(f"{len(missing)} posts are not in the store, e.g. {missing[0]}")
    return reader.view(None, np.array([pos[p] for p in ids], dtype=np.int64)), ids


def run(args: argparse.Namespace) -> int:
    from nmodal.evaluation import evaluate_model, recall_table  # lazy: --help start-up
    from nmodal.features import StoreReader  # lazy: --help start-up
    from nmodal.model import NModalModel  # lazy: --help start-up
    from nmodal.retrieval import matched_scoring  # lazy: --help start-up
    from nmodal.train.record import recorded_split, training_overlap  # lazy: --help start-up

    model = NModalModel.load(args.model)
    split = recorded_split(args.model, dict(model.config.extra))
    fs, ids = _select_posts(args, StoreReader(args.store, verify=args.verify), split)
    trained = training_overlap(ids, split)
    if trained and not args.allow_training_posts:
        raise InputError(
            f"{trained} of the {len(ids)} posts of --split {args.split} were used to train "
            f"{args.model}: recall on them is not held-out recall. Use --split test (the "
            "held-out posts), or pass --allow-training-posts to evaluate anyway (labelled)"
        )
    ks = list(args.ks)
    scoring = (
        matched_scoring(str(model.config.loss.get("name")))
        if args.scoring == "auto"
        else args.scoring
    )
    report = evaluate_model(
        model, fs, modalities=args.modalities, ks=ks, queries=args.queries, seed=args.seed,
        scoring=scoring,
    )  # fmt: skip
    report["split"] = args.split
    report["training_posts_in_population"] = trained
    if trained:
        print(
            f"WARNING: {trained} of these {len(ids)} posts were used in training; "
            "these figures are NOT held-out recall"
        )
    elif trained is None and args.split != "test":
        print("note: the model records no split; whether these posts were trained on is unknown")
    print(
        f"population {report['population']} posts, {report['num_queries']} queries, "
        f"scoring {scoring}; chance @1 = {100 * report['chance'][str(ks[0])]:.2f}%"
    )
    rows = {"all queries": report["recall"]}
    # a modality with no query artifact among these posts has no row (not a row of nan%)
    rows.update(
        {
            f"{m} queries": r
            for m, r in report["by_query_modality"].items()
            if all(isinstance(v, (int, float)) and v == v for v in r.values())
        }
    )
    print(recall_table(rows, ks, label="Queries", std=False))
    print(f"mean rank {report['mean_rank']:.2f}, median rank {report['median_rank']:.1f}")
    if args.out:
        write_json(args.out, report)
        print(f"report written to {args.out}")
    return 0
