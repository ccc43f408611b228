"""``nmodal predict``: label posts with a saved classifier, with class probabilities.

Example:
    nmodal predict --classifier runs/stance/classifiers/rf --model runs/m1 \\
        --store data/store --posts p1,p2 --out labels.csv
    nmodal predict --classifier runs/stance/classifiers/rf --model runs/m1 --text "..."
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nmodal.cli._common import add_store_arguments
from nmodal.cli._help import add_examples
from nmodal.errors import InputError, OutputExistsError


def _post_ids(value: str) -> list[str]:
    """Comma-separated ids, or a file with one id per line."""
    path = Path(value)
    if path.is_file():
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return [v.strip() for v in value.split(",") if v.strip()]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict",
        help="label posts with a saved classifier (probabilities per class)",
        description=(
            "Label posts of a feature store, or one new post given as raw text/media, with a "
            "classifier saved by `nmodal classify` (CLASSIFY_OUT/classifiers/NAME)."
        ),
    )
    add_examples(
        p,
        "nmodal predict --classifier runs/stance/classifiers/rf --model runs/m1 "
        "--store data/features --posts p1,p2 --out labels.csv",
        "nmodal predict --classifier runs/stance/classifiers/rf --model runs/m1 --text 'a new post'",
        "nmodal predict --classifier demo-out/classifiers/stance/rf --model demo-out/models/triCLIP "
        "--store demo-out/features   # the demo's saved classifiers",
    )
    p.add_argument("--classifier", type=Path, required=True, help="saved classifier directory")
    p.add_argument(
        "--model", type=Path, required=True, help="the model the classifier was trained on"
    )
    src = p.add_argument_group("input (a store, or raw artifacts of one post)")
    src.add_argument("--store", type=Path, default=None, help="feature store directory")
    src.add_argument(
        "--posts",
        type=_post_ids,
        default=None,
        metavar="IDS",
        help="with --store: comma-separated post ids or a file of ids (default: all)",
    )
    src.add_argument("--text", default=None, help="a post's text")
    src.add_argument("--image", type=Path, default=None, help="an image file")
    src.add_argument("--video", type=Path, default=None, help="a video file")
    src.add_argument("--audio", type=Path, default=None, help="an audio (or video) file")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write .csv, .jsonl or .parquet (default: CSV on stdout)",
    )
    p.add_argument("--overwrite", action="store_true")
    add_store_arguments(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from nmodal.classify.predict import predict_raw, predict_store  # lazy: --help start-up

    raw = {"text": args.text, "image": args.image, "video": args.video, "audio": args.audio}
    has_raw = any(v is not None for v in raw.values())
    if (args.store is None) == (not has_raw):
        raise InputError(
            "give either --store (with optional --posts) or raw --text/--image/--video/--audio"
        )
    if args.posts is not None and args.store is None:
        raise InputError("--posts needs --store")
    if args.out is not None and args.out.exists() and not args.overwrite:
        raise OutputExistsError(f"{args.out}: exists (use --overwrite)")
    if args.out is not None and args.out.suffix not in (".csv", ".jsonl", ".parquet"):
        raise InputError(f"{args.out}: use a .csv, .jsonl or .parquet file name")
    if args.store is not None:
        table = predict_store(
            args.classifier, args.model, args.store, args.posts, verify=args.verify
        )
    else:
        table = predict_raw(args.classifier, args.model, **raw)
    if args.out is None:
        print(table.to_csv(index=False), end="")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.suffix == ".csv":
        table.to_csv(args.out, index=False)
    elif args.out.suffix == ".jsonl":
        table.to_json(args.out, orient="records", lines=True, force_ascii=False)
    else:
        table.to_parquet(args.out, index=False)
    print(f"{len(table)} predictions written to {args.out}")
    return 0
