"""Arguments and helpers shared by the training-related sub-commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nmodal.atomic import write_text
from nmodal.errors import InputError, OutputExistsError


def csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def int_list(text: str) -> list[int]:
    try:
        return [int(t) for t in csv_list(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from exc


def ks_list(text: str) -> list[int]:
    """An argparse type: the K values of recall@K, comma-separated, each >= 1."""
    ks = int_list(text)
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"K values must be whole numbers >= 1, got {text!r}")
    return sorted(set(ks))


def queries_arg(text: str) -> str | int:
    """argparse type of ``--queries``: ``all`` or a positive number of random queries."""
    if text == "all":
        return text
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected 'all' or a positive integer, got {text!r}")
    return count


def add_retrieval_arguments(p: argparse.ArgumentParser) -> None:
    """``--queries`` and ``--scoring``, shared by evaluate, protocol and compare."""
    p.add_argument(
        "--queries",
        default="all",
        type=queries_arg,
        help="'all' (every artifact once, default) or a number of random queries (paper: 300)",
    )
    p.add_argument(
        "--scoring",
        choices=["auto", "sum", "symile", "gram"],
        default="auto",
        help="retrieval scoring: auto (the rule matching each loss, default), the sum of "
        "cosines (the paper's), Symile's multilinear score or GRAM's volume",
    )


def add_store_arguments(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--no-verify``: skip the shards' sha256 check when reading a store."""
    p.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        default=None,  # None: check unless the global `nmodal --no-verify` said not to
        help="do not check the store's shards against the sha256s in its manifest (faster "
        "on a store you made yourself; shapes, dtypes and finiteness are still checked)",
    )


def read_store(
    store: Path,
    modalities: list[str] | None,
    rows: Any = None,
    verify: bool | None = None,
) -> Any:
    """The feature store at ``store`` in memory (stored dtype kept), restricted to
    ``modalities`` and ``rows`` when given: only those are read."""
    from nmodal.features import read_featureset  # lazy: --help start-up

    return read_featureset(store, dtype=None, modalities=modalities, rows=rows, verify=verify)


def open_store(store: Path, modalities: list[str] | None, verify: bool | None = None) -> Any:
    """A lazy view of the store (:class:`nmodal.features.StoreView`): post ids and presence
    in memory, features read when asked for."""
    from nmodal.features import StoreReader  # lazy: --help start-up

    return StoreReader(store, verify=verify).view(modalities)


def parse_value(text: str) -> Any:
    """``"0.1"`` -> 0.1, ``"true"`` -> True, ``"none"`` -> None, otherwise the string."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def loss_spec(name: str, options: list[str] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name}
    for opt in options or []:
        if "=" not in opt:
            raise InputError(f"--loss-option expects KEY=VALUE, got {opt!r}")
        key, value = opt.split("=", 1)
        spec[key.strip().replace("-", "_")] = parse_value(value.strip())
    return spec


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and training")
    g.add_argument(
        "--modalities",
        type=csv_list,
        default=None,
        help="modalities in order, e.g. text,image,video (default: all in the store)",
    )
    g.add_argument(
        "--loss", default="clip", help="loss name: clip (default), triplet, ... (see nmodal.losses)"
    )
    g.add_argument(
        "--loss-option",
        action="append",
        metavar="KEY=VALUE",
        help="loss keyword, repeatable: --loss-option targets=soft --loss-option temperature=1",
    )
    g.add_argument("--epochs", type=int, default=50, help="training epochs (default 50)")
    g.add_argument("--batch-size", type=int, default=128, help="batch size (default 128)")
    g.add_argument(
        "--lr",
        type=float,
        default=None,
        help="Adam learning rate (default: the start's own; --init random/gcca: 1e-3, the "
        "paper's; --init auto: 1e-3 for the random start, 1e-4 for the GCCA start). Set, "
        "it applies to every start",
    )
    g.add_argument(
        "--weight-decay",
        type=float,
        default=None,
        help="Adam weight decay (default: the start's own; --init random/gcca: 0; --init "
        "auto: 1e-2 for the random start, 0 for the GCCA start). Set, it applies to every "
        "start",
    )
    g.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant")
    g.add_argument("--warmup-steps", type=int, default=0)
    g.add_argument("--dim", type=int, default=256, help="projection dimension (default 256)")
    g.add_argument(
        "--head-depth", type=int, default=1, help="GELU+Linear blocks per head (default 1)"
    )
    g.add_argument("--dropout", type=float, default=0.1)
    g.add_argument(
        "--no-standardize",
        dest="standardize",
        action="store_false",
        help="feed the heads raw features (default: each head centres its input and scales "
        "it to unit mean variance per dimension, statistics of the training posts)",
    )
    g.add_argument(
        "--patience",
        type=int,
        default=None,
        help="stop after this many epochs without validation improvement",
    )
    g.add_argument(
        "--missing",
        choices=["mask", "drop"],
        default="mask",
        help="posts lacking a modality: mask (default: train on every post with >= 2 of the "
        "modalities; the loss uses only the pairs that exist) or drop (complete posts only). "
        "On complete posts (--filter paper) both train the same model",
    )
    g.add_argument(
        "--select",
        choices=["val_loss", "val_recall", "last"],
        default="last",
        help="which epoch to keep: the last one of the fixed schedule (default; on the demo "
        "and synthetic sets validation loss kept early epochs while retrieval still "
        "improved), highest validation recall (mean R@1/5/10), or lowest validation loss",
    )
    g.add_argument(
        "--init",
        choices=["auto", "random", "gcca"],
        default="auto",
        help="head initialisation: auto (default: train a random start, lr 1e-3 and weight "
        "decay 1e-2, and a GCCA start, lr 1e-4, and keep the one with the better retrieval "
        "on the validation posts, or without them on a held-out fifth of the training "
        "posts, grouped by --group-by, then retrain it on all of them: about 2-3x the "
        "training time; the random start below 10 complete posts or 20 posts to score "
        "on), random, or gcca (the "
        "first linear layers start at the regularised generalised-CCA solution of the "
        "training posts). See the README's baselines section",
    )
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    g.add_argument(
        "--amp",
        choices=["auto", "off", "bf16", "fp16"],
        default="auto",
        help="mixed precision of the heads (auto: bf16 on CUDA and on CPUs with native "
        "bf16, e.g. AVX512-BF16 or AMX; the loss is always float32)",
    )
    g.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads while training (default: 1 for batches under 512, where waking "
        "idle threads costs more than it saves; torch's default otherwise)",
    )
    g.add_argument(
        "--in-memory",
        action="store_true",
        help="load the training and validation features into memory first (faster "
        "batches; memory grows with the collection). Default: batches are read from the "
        "store on disk as they are drawn (same results, memory independent of the size)",
    )
    add_store_arguments(g)
    s = p.add_argument_group("data split")
    s.add_argument(
        "--test-size",
        type=int,
        default=100,
        help="held-out test population in posts (default 100, as in the paper)",
    )
    s.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="fraction of the remaining posts used for validation (default 0.1)",
    )
    s.add_argument(
        "--posts",
        type=Path,
        default=None,
        help="dataset directory with posts.parquet (needed for --group-by)",
    )
    s.add_argument(
        "--group-by",
        default=None,
        metavar="COLUMN",
        help="posts-table column whose values never straddle train/val/test "
        "(e.g. account, or a concept id)",
    )


def train_config_from_args(args: argparse.Namespace) -> Any:
    from nmodal.model import HeadConfig  # lazy: --help start-up
    from nmodal.train import TrainConfig  # lazy: --help start-up

    return TrainConfig(
        modalities=args.modalities,
        loss=loss_spec(args.loss, args.loss_option),
        head=HeadConfig(
            projection_dim=args.dim,
            depth=args.head_depth,
            dropout=args.dropout,
            standardize=args.standardize,
        ),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        lr_schedule=args.lr_schedule,
        warmup_steps=args.warmup_steps,
        patience=args.patience,
        seed=args.seed,
        select=args.select,
        init=args.init,
        device=args.device,
        amp=args.amp,
        threads=args.threads,
        missing=args.missing,
    )


def protocol_config_from_args(args: argparse.Namespace, **overrides: Any) -> Any:
    """The :class:`~nmodal.evaluation.protocol.ProtocolConfig` of ``nmodal protocol`` /
    ``nmodal compare``: the training run (:func:`train_config_from_args`), the trials, the
    split and the retrieval options; ``overrides`` set fields a command adds."""
    from nmodal.evaluation.protocol import ProtocolConfig  # lazy: --help start-up

    return ProtocolConfig(
        train=train_config_from_args(args),
        trials=args.trials,
        test_size=args.test_size,
        val_fraction=args.val_fraction,
        queries=args.queries,
        seed=args.seed,
        scoring=args.scoring,
        **overrides,
    )


def load_groups(args: argparse.Namespace, post_ids: Any) -> Any:
    """Per-post group ids from ``--posts DIR --group-by COLUMN`` (None without --group-by)."""
    if not args.group_by:
        return None
    if args.posts is None:
        raise InputError("--group-by needs --posts DATASET_DIR (the posts table)")
    import pandas as pd

    table = Path(args.posts) / "posts.parquet"
    if not table.is_file():
        raise InputError(f"{table}: no posts table")
    posts = pd.read_parquet(table, columns=["post_id", args.group_by])
    mapping = dict(zip(posts["post_id"].astype(str), posts[args.group_by], strict=True))
    missing = [p for p in post_ids if p not in mapping]
    if missing:
        raise InputError(
            f"{table}: {len(missing)} posts of the store are missing, e.g. {missing[0]}"
        )
    import numpy as np

    return np.array([str(mapping[p]) for p in post_ids])


def check_output(path: Path, overwrite: bool, *inputs: Path | None) -> None:
    """``path`` may be written: new, or ``overwrite``; never one of ``inputs`` or a folder
    holding one."""
    from nmodal.atomic import check_separate  # lazy: --help start-up

    check_separate(path, *inputs)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: exists (use --overwrite to replace it)")


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file, fsync, rename)."""
    write_text(path, json.dumps(data, indent=2, default=float))
