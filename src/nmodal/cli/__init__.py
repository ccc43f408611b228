"""The ``nmodal`` command: a thin argparse front over the library.

Each sub-command lives in its own module under ``nmodal.cli`` exposing
``register(subparsers)``; modules import their heavy dependencies inside the handler so that
``nmodal --help`` stays fast. A handler returns an exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import multiprocessing
import os
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from types import FrameType
from typing import Any

# Before torch is imported: idle OpenMP threads sleep instead of spinning. On a shared or
# oversubscribed CPU spinning threads made encoders and training 10x slower; an explicit
# setting in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from nmodal import __version__
from nmodal.cli._help import add_examples
from nmodal.errors import NModalError
from nmodal.integrity import NO_VERIFY_ENV
from nmodal.lifeline import preload_in_forkserver

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
    )
    add_examples(
        parser,
        "nmodal demo --out demo-out          # the whole pipeline on generated posts",
        "nmodal serve demo-out/index         # then search them at http://127.0.0.1:8000",
        "nmodal ingest manifest posts.jsonl --out data/ds   # or step by step: ingest, extract, ...",
    )
    parser.add_argument("--version", action="version", version=f"nmodal {__version__}")
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="skip checking the SHA-256 recorded in models, indexes, classifiers and "
        "feature stores (faster loads of large trusted folders; file names are still "
        "checked)",
    )
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="import this Python module (a dotted name, or a .py file) first: your own "
        "encoders and encoder sets (repeatable; also $NMODAL_PLUGINS, comma-separated). "
        "Stores name the encoders they used, so later commands on them need it too",
    )
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


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM: stop the worker processes, then unwind like Ctrl-C (which reaches the
    workers by itself, the terminal signalling the whole process group)."""
    for child in multiprocessing.active_children():
        child.terminate()
    raise KeyboardInterrupt


def _one_line_warning(command: str) -> Any:
    """Warnings as ``nmodal <command>: warning: ...`` (not Python's file:line form)."""

    def format_warning(message: Warning | str, *_: Any, **__: Any) -> str:
        return f"nmodal {command}: warning: {message}\n"

    return format_warning


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    if args.no_verify:
        os.environ[NO_VERIFY_ENV] = "1"
    from nmodal.encoders.base import PLUGINS_ENV, load_plugins  # lazy: --help start-up

    if args.plugin:
        # in the environment, so that decoding workers and servers import them too
        known = [x for x in os.environ.get(PLUGINS_ENV, "").split(",") if x.strip()]
        os.environ[PLUGINS_ENV] = ",".join(dict.fromkeys([*known, *args.plugin]))
    warnings.formatwarning = _one_line_warning(args.command)
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:
        preload_in_forkserver()  # decode workers and their forkserver die with this process
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        if os.environ.get(PLUGINS_ENV):
            load_plugins()  # a broken plugin is one clear error before any work starts
        return int(args.handler(args) or 0)
    except NModalError as exc:
        print(f"nmodal {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except argparse.ArgumentTypeError as exc:  # a value checked inside a handler
        print(f"nmodal {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`nmodal search ... | head`): stop quietly, as `cat` does
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print(f"nmodal {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
