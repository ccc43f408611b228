"""Run every benchmark in bench/ and print its figures (ratios are measured in one run).

    .venv/bin/python bench/run.py            # all benchmarks, full sizes
    .venv/bin/python bench/run.py --quick    # small sizes
    .venv/bin/python bench/run.py losses train --json out.json

Each ``bench/bench_<name>.py`` exposes ``run(quick) -> dict`` and optionally
``report(dict) -> str``; it can also be run alone.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "names", nargs="*", help=f"benchmarks to run (default all: {', '.join(available())})"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--json", type=Path, default=None, help="also write all results here")
    args = parser.parse_args()
    names = args.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {available()}")
    results = {}
    for name in names:
        module = importlib.import_module(f"bench_{name}")
        print(f"== {name} ==", flush=True)
        start = time.perf_counter()
        result = module.run(quick=args.quick)
        results[name] = result
        text = (
            module.report(result)
            if hasattr(module, "report")
            else json.dumps(result, indent=2, default=float)
        )
        print(text)
        print(f"({time.perf_counter() - start:.0f} s)\n", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
