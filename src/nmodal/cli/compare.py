"""``nmodal compare``: several N-modal objectives under the paper's protocol, one table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nmodal.cli._common import (
    add_retrieval_arguments,
    add_train_arguments,
    check_output,
    load_groups,
    parse_value,
    protocol_config_from_args,
    read_store,
    write_json,
)
from nmodal.cli._help import add_examples
from nmodal.errors import InputError

if TYPE_CHECKING:
    from nmodal.evaluation.compare import CompareConfig

DEFAULT_LOSSES = "clip,triplet,symile,gram,anchor,siglip,gcca,ridge"


GRAM_NOTE = (
    "GRAM scores a tuple by the volume its unit vectors span, which is 0 as soon as the "
    "vectors are linearly dependent and which ignores their signs. Trained from scratch, the "
    "heads make training volumes small by putting the anchor in the span of the other "
    "artifacts, with random signs, without aligning those artifacts with each other. On the "
    "demo corpus (text, image, video, audio; one training run, training posts): text-image and "
    "text-video |cosine| 0.72 and 0.54 but only 35% of text-image cosines positive, "
    "image-video 0.06; with dam_weight=1 the signs are fixed (99% positive, text-image 0.70, "
    "text-video 0.57) but image-video stays at 0.02, and test recall stays near chance either "
    "way, while CLIP-trained embeddings scored by the same volume rule reach R@1 47% (sum of "
    "cosines: 44%): the rule is sound, the trained space is not. GRAM's authors fine-tune "
    "encoders that are already aligned. See nmodal.losses.gram and the README."
)


def loss_list(text: str) -> list[dict[str, Any]]:
    """``"clip,symile:negative_sampling=n_squared"`` -> ``[{"name": "clip"}, {...}]``."""
    specs = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        name, *options = item.split(":")
        spec: dict[str, Any] = {"name": name.strip()}
        for opt in options:
            if "=" not in opt:
                raise argparse.ArgumentTypeError(f"loss option {opt!r}: expected KEY=VALUE")
            key, value = opt.split("=", 1)
            spec[key.strip().replace("-", "_")] = parse_value(value.strip())
        specs.append(spec)
    return specs


def register(sub: Any) -> None:
    p = sub.add_parser(
        "compare",
        help="compare losses under the paper's protocol (same features, splits and seeds)",
        description=(
            "For each loss: N trials of (split, training, retrieval on the held-out posts), the "
            "same splits and seeds for every loss; retrieval uses the loss's scoring rule "
            "(symile: multilinear score, gram: volume, others: the paper's sum of cosines). "
            "With --missing-rate, every loss is also trained with that rate of training "
            "artifacts dropped at random (test posts untouched, --missing mask) and the change "
            "in recall is reported. The closed-form baselines gcca (generalised CCA) and ridge "
            "are fitted on the same training posts and shown as rows beside the trained models. "
            "Writes OUT/results.json and OUT/table.md. Loss options go "
            "after a colon: --losses clip,symile:negative_sampling=n_squared,anchor:anchor=text"
        ),
    )
    add_examples(
        p,
        "nmodal compare data/features --out runs/cmp --losses clip,symile,gram --trials 5 "
        "--epochs 20 --missing-rate 0.3",
        "nmodal compare data/features --out runs/cmp2 --losses clip,anchor:anchor=text",
    )
    p.add_argument("store", type=Path, help="feature store directory")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument(
        "--losses",
        type=loss_list,
        default=loss_list(DEFAULT_LOSSES),
        help=f"losses to compare, NAME[:KEY=VALUE...] comma-separated (default {DEFAULT_LOSSES})",
    )
    p.add_argument("--trials", type=int, default=5, help="trials per loss (default 5)")
    p.add_argument(
        "--missing-rate",
        type=float,
        default=0.0,
        help="also train with this fraction of training artifacts dropped, e.g. 0.3",
    )
    add_retrieval_arguments(p)
    add_train_arguments(p)
    p.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> CompareConfig:
    """The comparison the command line describes (loss options go in ``--losses``)."""
    from nmodal.evaluation.compare import CompareConfig  # lazy: --help start-up

    if args.loss_option:
        raise InputError("compare takes loss options in --losses, e.g. symile:negative_sampling=n")
    return CompareConfig(
        protocol_config_from_args(args), losses=args.losses, missing_rate=args.missing_rate
    )


def run(args: argparse.Namespace) -> int:
    from nmodal.evaluation.compare import compare_losses  # lazy: --help start-up

    check_output(args.out, args.overwrite, args.store)
    config = config_from_args(args)
    fs = read_store(args.store, config.protocol.train.modalities, verify=args.verify)
    result = compare_losses(fs, config, groups=load_groups(args, fs.post_ids))
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "results.json", result)
    md = [
        "# Loss comparison",
        "",
        f"Store: `{args.store}`; modalities {', '.join(result['modalities'])}; "
        f"{args.trials} trials per loss (same splits and seeds for every loss); test "
        f"population {args.test_size} posts; {args.epochs} epochs; cells: mean recall over "
        "trials ± std (percentage points).",
        "",
        result["table"],
        "",
    ]
    if result["missing_table"]:
        md += [
            f"## Training with {100 * args.missing_rate:.0f}% of artifacts dropped",
            "",
            "Change in mean recall against training on the full data (test posts untouched).",
            "",
            result["missing_table"],
            "",
        ]
    if any(spec["name"] == "gram" for spec in args.losses):
        md += ["## Notes", "", GRAM_NOTE, ""]
    (args.out / "table.md").write_text("\n".join(md))
    print(result["table"])
    if result["missing_table"]:
        print()
        print(result["missing_table"])
    print(f"results written to {args.out / 'results.json'} and {args.out / 'table.md'}")
    return 0
