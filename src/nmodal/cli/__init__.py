"""The ``nmodal`` command: a thin argparse front over the library.

Each sub-command lives in its own module under ``nmodal.cli`` exposing
``register(subparsers)``; modules import their heavy dependencies inside the handler so that
``nmodal --help`` stays fast. A handler returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# Before torch is imported: idle OpenMP threads sleep instead of spinning. On a shared or
# oversubscribed CPU spinning threads made encoders and training 10x slower; an explicit
# setting in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from nmodal import __version__
from nmodal.errors import NModalError

# Order is the order shown in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "ingest",
    "collect",
    "extract",
    "train",
    "evaluate",
    "protocol",
    "compare",
    "classify",
    "predict",
    "index",
    "search",
    "serve",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nmodal",
        description=(
            "Train and use N-modal CLIP models on social-media posts. Typical flow: "
            "ingest -> extract -> train -> evaluate / classify / index + search."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"nmodal {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"nmodal.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"nmodal.cli.{name}":
                continue  # sub-command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except NModalError as exc:
        print(f"nmodal {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"nmodal {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
