"""``nmodal classify``: cross-validate stance / provenance classifiers on a model's embeddings.

Example:
    nmodal classify --model runs/m1 --store data/store --posts data/dataset \\
        --label stance --by post --classifiers nb,rf,svm,knn,logreg,mlp --out runs/stance
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nmodal.cli._common import add_store_arguments, parse_value
from nmodal.cli._help import add_examples
from nmodal.errors import InputError

if TYPE_CHECKING:
    from nmodal.classify.run import ClassifyConfig

CLASSIFIER_NAMES = ("nb", "rf", "svm", "knn", "logreg", "mlp")


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_params(options: list[str] | None) -> dict[str, dict[str, Any]]:
    """``["rf.n_estimators=50", "mlp.hidden_sizes=128,64"]`` -> per-classifier keyword dicts."""

    params: dict[str, dict[str, Any]] = {}
    for opt in options or []:
        key, sep, value = opt.partition("=")
        name, dot, param = key.strip().partition(".")
        if not sep or not dot or name not in CLASSIFIER_NAMES or not param:
            raise InputError(
                f"--param expects CLASSIFIER.KEY=VALUE (e.g. rf.n_estimators=50), got {opt!r}"
            )
        parts = [parse_value(v.strip()) for v in value.split(",")]
        params.setdefault(name, {})[param.replace("-", "_")] = (
            tuple(parts) if "," in value else parts[0]
        )
    return params


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "classify",
        help="stance / account-provenance classifiers on a trained model's embeddings",
        description=(
            "Embed the store's artifacts with a trained model, cross-validate classifiers "
            "(folds grouped by post, by account, or split by time; SMOTE on training folds "
            "only), and write results.json, results.md, ROC and confusion plots and the "
            "final fitted classifiers."
        ),
    )
    add_examples(
        p,
        "nmodal classify --model runs/m1 --store data/features --posts data/ds --label stance "
        "--out runs/stance",
        "nmodal classify --model runs/m1 --store data/features --posts data/ds --label account "
        "--by account --smote --classifiers rf,logreg --out runs/provenance",
    )
    p.add_argument("--model", type=Path, required=True, help="trained model directory")
    p.add_argument("--store", type=Path, required=True, help="feature store directory")
    p.add_argument(
        "--posts",
        type=Path,
        required=True,
        help="dataset directory with posts.parquet (or a .parquet/.csv posts table)",
    )
    p.add_argument(
        "--label",
        required=True,
        help="label column: stance (binary), account (provenance), or any other",
    )
    p.add_argument(
        "--label-map",
        type=Path,
        default=None,
        metavar="FILE",
        help="account -> label mapping (CSV with account,<label> or a JSON object) "
        "used instead of the posts table's label column",
    )
    p.add_argument(
        "--by",
        choices=["post", "account", "time"],
        default="post",
        help="group folds by post (default), by account (unseen accounts), or "
        "split by time (train on earlier posts, test on later)",
    )
    p.add_argument(
        "--classifiers",
        type=_csv,
        default=list(CLASSIFIER_NAMES),
        help="comma-separated subset of nb,rf,svm,knn,logreg,mlp (default: all)",
    )
    p.add_argument("--smote", action="store_true", help="SMOTE-oversample the training folds")
    p.add_argument(
        "--modality",
        default="all",
        help="text, image, video, audio (or a comma list): one row per artifact; "
        "all (default): every modality's artifacts; fused: one mean row per post",
    )
    p.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--param",
        action="append",
        metavar="CLF.KEY=VALUE",
        help="classifier setting, repeatable: --param rf.n_estimators=500",
    )
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    add_store_arguments(p)
    p.set_defaults(handler=handle)


def config_from_args(args: argparse.Namespace) -> ClassifyConfig:
    """The experiment the command line describes (checked names, parsed ``--param``s)."""
    from nmodal.classify.run import ClassifyConfig  # lazy: --help start-up

    unknown = [c for c in args.classifiers if c not in CLASSIFIER_NAMES]
    if unknown or not args.classifiers:
        raise InputError(
            f"--classifiers: unknown {unknown[:1]}; choose from {','.join(CLASSIFIER_NAMES)}"
        )
    params = parse_params(args.param)
    for name in sorted(set(params) - set(args.classifiers)):
        print(
            f"nmodal classify: warning: --param {name}.* has no effect: {name} is not among "
            f"--classifiers {','.join(args.classifiers)}",
            file=sys.stderr,
        )
    return ClassifyConfig(
        args.model, args.store, args.posts, args.label, args.out,
        by=args.by, classifiers=tuple(args.classifiers), smote=args.smote,
        modality=args.modality, folds=args.folds, seed=args.seed, mapping=args.label_map,
        classifier_params=params, overwrite=args.overwrite,
        verify=args.verify,
    )  # fmt: skip


def handle(args: argparse.Namespace) -> int:
    from nmodal.classify.run import run_classification  # lazy: --help start-up
    from nmodal.classify.tables import results_table  # lazy: --help start-up

    doc = run_classification(config_from_args(args))
    from nmodal.classify.estimators import DISPLAY_NAMES  # lazy: --help start-up

    print(results_table({DISPLAY_NAMES[n]: r for n, r in doc["results"].items()}), end="")
    print(
        f"results: {args.out / 'results.json'}, {args.out / 'results.md'}, plots and "
        f"classifiers in {args.out}"
    )
    return 0
