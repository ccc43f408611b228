"""``nmodal train``: train projection heads on a feature store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from nmodal.cli._common import (
    add_train_arguments,
    check_output,
    load_groups,
    open_store,
    train_config_from_args,
)
from nmodal.cli._help import add_examples
from nmodal.errors import InputError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train an N-modal model on a feature store",
        description=(
            "Split the store's posts into train/validation/test (the test population is held "
            "out and recorded in split.json for `nmodal evaluate`), train one projection head "
            "per modality with the chosen loss (by default from the better of a random and a "
            "generalised-CCA start on validation retrieval, --init), keep "
            "the last epoch (or the best on validation, --select), and "
            "save MODEL_DIR/{config.json, model.safetensors, history.json, split.json}."
        ),
    )
    add_examples(
        p,
        "nmodal train data/features --out models/triclip --modalities text,image,video",
        "nmodal train data/features --out models/small --test-size 30 --epochs 20",
    )
    p.add_argument("store", type=Path, help="feature store directory (from `nmodal extract`)")
    p.add_argument("--out", type=Path, required=True, help="model directory to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model directory")
    add_train_arguments(p)
    p.set_defaults(handler=run)


#: a test split above this share of the collection gets a warning
LARGE_TEST_SHARE = 0.25


def warn_large_test_share(test: int, total: int) -> None:
    """Warn when the held-out test posts are a large share of a small collection (the
    default 100 test posts of the paper leave little to train on in 150)."""
    if total and test / total > LARGE_TEST_SHARE:
        print(
            f"nmodal train: warning: {test} of {total} posts ({100 * test / total:.0f}%) are "
            f"held out for test and never trained on; on a small collection pass a smaller "
            f"--test-size (e.g. --test-size {max(1, total // 5)})",
            file=sys.stderr,
        )


def describe_init_choice(choice: dict[str, Any]) -> str:
    """One line on the start ``--init auto`` kept (``TrainResult.init_choice``)."""
    scores = choice.get("scores")
    if not scores:
        return f"start: {choice['chosen']} ({choice['on']})"
    figures = ", ".join(f"{init} {100 * s:.1f}%" for init, s in scores.items())
    return (
        f"start: {choice['chosen']}, chosen by retrieval (mean R@1/5/10) on "
        f"{choice['posts']['score']} posts of the {choice['on']}: {figures}"
    )


def run(args: argparse.Namespace) -> int:
    """``nmodal train``; under ``torchrun -m nmodal train ...`` every rank runs it inside
    one process group (DDP, see :mod:`nmodal.train.distributed`)."""
    from nmodal.train.distributed import torchrun_session  # lazy: --help start-up

    with torchrun_session():
        return _train(args)


def _train(args: argparse.Namespace) -> int:
    from nmodal.train import save_trained, split_trainable, train_model  # lazy: --help start-up
    from nmodal.train.splits import requirement  # lazy: --help start-up

    check_output(args.out, args.overwrite, args.store)
    config = train_config_from_args(args)
    fs = open_store(args.store, config.modalities, verify=args.verify)
    groups = load_groups(args, fs.post_ids)
    if args.test_size < 0:
        raise InputError(f"--test-size must be >= 0, got {args.test_size}")
    split, usable = split_trainable(
        fs.present, fs.modalities, config.missing, args.test_size, args.val_fraction, args.seed,
        groups=groups,
    )  # fmt: skip
    if usable.size < fs.num_posts:
        print(
            f"{usable.size} of the store's {fs.num_posts} posts have "
            f"{requirement(config.missing)} of the modalities "
            f"{fs.modalities}: the split is among them (the others can be neither trained on "
            "nor scored)"
        )
    warn_large_test_share(len(split.test), usable.size)
    print(
        f"training on {len(split.train)} posts, validating on {len(split.val)}, "
        f"holding out {len(split.test)} for test; modalities {fs.modalities}"
    )
    if len(split.val) < 2 and (config.patience is not None or config.select != "last"):
        print(
            f"nmodal train: warning: {len(split.val)} validation posts: --patience and "
            "--select need a validation set (raise --val-fraction); training runs all "
            "epochs and keeps the last",
            file=sys.stderr,
        )
    train = fs.subset(split.train)
    val = fs.subset(split.val) if len(split.val) >= 2 else None
    if args.in_memory:
        train, val = train.load(), val.load() if val is not None else None
    train_groups = groups[split.train] if groups is not None else None  # for --init auto
    result = train_model(train, config, val=val, groups=train_groups)
    from nmodal.train.distributed import is_main_process  # lazy: --help start-up

    if not is_main_process():  # under torchrun only rank 0 writes
        return 0
    save_trained(result, args.out, split, fs.post_ids, overwrite=args.overwrite)
    print(
        f"trained {result.history[-1]['epoch']} epochs in {result.seconds:.1f}s "
        f"({result.samples_per_second:.0f} samples/s), best epoch {result.best_epoch}"
    )
    if result.init_choice is not None:
        print(describe_init_choice(result.init_choice))
    print(f"model written to {args.out}")
    return 0
