"""``nmodal demo``: the whole pipeline on a generated corpus, ending in a report.

Examples::

    nmodal demo --out demo-out                       # default sizes, ~10 minutes on 2 cores
    nmodal demo --out demo-out --resume              # continue an interrupted run
    nmodal demo --out big --posts 2000 --epochs 100  # larger
"""

from __future__ import annotations

import argparse
import os

from nmodal.cli._help import add_examples


def register(subparsers: argparse._SubParsersAction) -> None:
    from nmodal.demo.pipeline import DEFAULT_POSTS  # lazy: --help start-up

    p = subparsers.add_parser(
        "demo",
        help="generate a demo corpus, train triCLIP/triTRIP/quadCLIP, write a report",
        description=(
            "Generate a multilingual emoji corpus (text, H.264 video, spoken audio), ingest it "
            "through a manifest, extract features with the offline encoders, run the paper's "
            "protocol for triCLIP, triTRIP and quadCLIP (test posts share no concept with "
            "training posts), run the stance and provenance classifiers and write "
            "DIR/report.html, DIR/report.md and DIR/results.json. Each step is skipped on "
            "--resume when its output exists."
        ),
    )
    add_examples(
        p,
        "nmodal demo --out demo-out                       # default sizes, ~10 minutes on 2 cores",
        "nmodal demo --out demo-out --resume              # continue an interrupted run",
        "nmodal demo --out small --posts 200 --trials 1 --epochs 5 --no-sweeps  # a quick look",
        "nmodal serve demo-out/index                      # then search the demo's posts",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--posts",
        type=int,
        default=DEFAULT_POSTS,
        help=f"posts to generate (default {DEFAULT_POSTS})",
    )
    p.add_argument("--trials", type=int, default=5, help="protocol trials (default 5)")
    p.add_argument("--epochs", type=int, default=50, help="training epochs (default 50)")
    p.add_argument(
        "--test-size",
        type=int,
        default=None,
        help="test population per trial (default 100, or half of --posts if that is smaller)",
    )
    p.add_argument("--seed", type=int, default=0, help="corpus, split and training seed")
    p.add_argument("--workers", type=int, default=2, help="corpus generation processes (default 2)")
    p.add_argument(
        "--no-sweeps",
        action="store_true",
        help="only the three main runs (skip the 1/10-epoch and projection-dim runs of Tables 2, 4, 5)",
    )
    p.add_argument(
        "--procedural",
        action="store_true",
        help="procedural shapes and tones instead of the emoji font and espeak-ng",
    )
    p.add_argument("--resume", action="store_true", help="continue a demo in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # OpenMP threads that spin while waiting make torch 5-10x slower when other processes
    # share the cores (measured on a busy 2-core machine); passive waiting costs nothing
    # when the machine is idle. Only effective before torch is first imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from nmodal.demo.pipeline import DemoConfig, run_demo  # lazy: --help start-up

    cfg = DemoConfig(
        posts=args.posts,
        trials=args.trials,
        epochs=args.epochs,
        test_size=args.test_size,
        seed=args.seed,
        workers=args.workers,
        sweeps=not args.no_sweeps,
        real_assets=not args.procedural,
        progress=not args.no_progress,
    )
    run_demo(args.out, cfg, resume=args.resume)
    return 0
