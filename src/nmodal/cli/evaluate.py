"""``nmodal evaluate``: post-level retrieval of a trained model on held-out posts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nmodal.cli._common import add_retrieval_arguments, csv_list
from nmodal.cli._help import add_examples


def register(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="measure cross-modal retrieval (recall@K) of a trained model",
        description=(
            "Query every artifact of the test population (recorded in MODEL_DIR/split.json by "
            "`nmodal train`) against the other modalities' artifacts and report recall@K, per "
            "query modality and per modality pair, as in the paper's Fig. 2."
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
    add_retrieval_arguments(p)
    p.add_argument("--ks", default="1,5,10,25", help="K values (default 1,5,10,25)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write the full report as JSON here")
    p.set_defaults(handler=run)


def _select_posts(args: argparse.Namespace, fs: Any) -> Any:
    import numpy as np

    from nmodal.errors import InputError

    if args.split == "all":
        return fs
    if args.split == "test":
        split_file = args.model / "split.json"
        if not split_file.is_file():
            raise InputError(f"{split_file}: missing; pass --split all or a file of post ids")
        ids = json.loads(split_file.read_text())["test"]
    else:
        path = Path(args.split)
        if not path.is_file():
            raise InputError(f"{path}: no such file of post ids")
        ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    pos = {p: i for i, p in enumerate(fs.post_ids)}
    missing = [p for p in ids if p not in pos]
    if missing:
        raise InputError(f"{len(missing)} posts are not in the store, e.g. {missing[0]}")
    return fs.subset(np.array([pos[p] for p in ids], dtype=int))


def run(args: argparse.Namespace) -> int:
    from nmodal.cli._common import int_list, write_json
    from nmodal.evaluation import evaluate_model, recall_table
    from nmodal.features import read_featureset
    from nmodal.model import NModalModel
    from nmodal.retrieval import matched_scoring

    model = NModalModel.load(args.model)
    fs = _select_posts(args, read_featureset(args.store))
    ks = int_list(args.ks)
    scoring = (
        matched_scoring(str(model.config.loss.get("name")))
        if args.scoring == "auto"
        else args.scoring
    )
    report = evaluate_model(
        model, fs, modalities=args.modalities, ks=ks, queries=args.queries, seed=args.seed,
        scoring=scoring,
    )  # fmt: skip
    print(
        f"population {report['population']} posts, {report['num_queries']} queries, "
        f"scoring {scoring}; chance @1 = {100 * report['chance'][str(ks[0])]:.2f}%"
    )
    rows = {"all queries": report["recall"]}
    rows.update({f"{m} queries": r for m, r in report["by_query_modality"].items()})
    print(recall_table(rows, ks, label="Queries", std=False))
    print(f"mean rank {report['mean_rank']:.2f}, median rank {report['median_rank']:.1f}")
    if args.out:
        write_json(args.out, report)
        print(f"report written to {args.out}")
    return 0
