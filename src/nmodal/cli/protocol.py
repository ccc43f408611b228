"""``nmodal protocol``: the paper's N-trial protocol (and grids of it) on a feature store."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nmodal.cli._common import (
    add_retrieval_arguments,
    add_train_arguments,
    check_output,
    csv_list,
    int_list,
    load_groups,
    protocol_config_from_args,
    read_store,
    write_json,
)
from nmodal.cli._help import add_examples

if TYPE_CHECKING:
    from nmodal.evaluation.sweep import SweepConfig


def register(sub: Any) -> None:
    p = sub.add_parser(
        "protocol",
        help="run the paper's protocol: N trials of split + training + retrieval",
        description=(
            "For each trial: a fresh split with a held-out test population (100 posts), a fresh "
            "training run and retrieval on the test posts; reports mean ± std of recall@1/5/10/25 "
            "over trials. Lists in --epoch-grid/--train-sizes/--dims/--losses run a grid and write "
            "the paper's tables (Tables 2-5) to OUT/tables.md and everything to OUT/protocol.json."
        ),
    )
    add_examples(
        p,
        "nmodal protocol data/features --out runs/p1 --losses clip,triplet --epoch-grid 1,10,50 "
        "--train-sizes 1000,10000 --bimodal text,image",
        "nmodal protocol data/features --out runs/quick --trials 2 --epochs 10",
    )
    p.add_argument("store", type=Path, help="feature store directory")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--trials", type=int, default=5, help="trials per setting (default 5)")
    p.add_argument(
        "--losses",
        type=csv_list,
        default=None,
        help="several losses to compare, e.g. clip,triplet (default: --loss)",
    )
    p.add_argument(
        "--train-sizes",
        type=int_list,
        default=None,
        help="training-set sizes, e.g. 100,1000,10000 (default: all training posts)",
    )
    p.add_argument(
        "--epoch-grid",
        type=int_list,
        default=None,
        dest="epoch_grid",
        help="several epoch counts, e.g. 1,10,50,100 (default: --epochs)",
    )
    p.add_argument(
        "--dims",
        type=int_list,
        default=None,
        help="several projection dims, e.g. 64,128,256,512,768 (default: --dim)",
    )
    p.add_argument(
        "--bimodal",
        type=csv_list,
        action="append",
        default=None,
        help="also evaluate on these modalities only (repeatable), e.g. text,image",
    )
    add_retrieval_arguments(p)
    add_train_arguments(p)
    p.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> SweepConfig:
    """The grid the command line describes: ``--losses`` (the first keeps ``--loss-option``s
    when it is ``--loss``), ``--train-sizes``, ``--epoch-grid``, ``--dims``, ``--bimodal``."""
    from nmodal.evaluation.sweep import SweepConfig  # lazy: --help start-up

    protocol = protocol_config_from_args(args, eval_modalities=args.bimodal or ())
    base_loss = protocol.train.loss
    losses = [
        {**base_loss, "name": name} if name == base_loss["name"] else {"name": name}
        for name in (args.losses or [base_loss["name"]])
    ]
    return SweepConfig(
        protocol, losses=losses, train_sizes=args.train_sizes, epochs=args.epoch_grid,
        dims=args.dims,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from nmodal.evaluation.sweep import run_sweep  # lazy: --help start-up

    check_output(args.out, args.overwrite, args.store)
    config = config_from_args(args)
    fs = read_store(args.store, config.protocol.train.modalities, verify=args.verify)
    result = run_sweep(fs, config, groups=load_groups(args, fs.post_ids))
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "protocol.json", result)
    tables = result["tables"]
    md = [
        "# Retrieval protocol",
        "",
        f"Store: `{args.store}`; {args.trials} trials; test "
        f"population {args.test_size} posts; cells: mean recall over trials (± std).",
        "",
    ]
    for title, key in [
        ("Recall by training size and epochs (Table 2 layout)", "by_size_and_epochs"),
        ("Recall by projection dim and epochs (Table 4 layout)", "by_dim_and_epochs"),
        ("All settings, mean ± std (Tables 3/5 layout)", "all"),
    ]:
        md += [f"## {title}", "", tables[key], ""]
    (args.out / "tables.md").write_text("\n".join(md))
    print(tables["all"])
    print(f"results written to {args.out / 'protocol.json'} and {args.out / 'tables.md'}")
    return 0
