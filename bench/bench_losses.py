"""Step time (forward + backward) of the N-modal losses, B=128, D=256, M=3 and 4.

Compares, in one run on this machine: ``NModalCLIPLoss`` (identity targets, learnable
temperature), ``NModalTripletLoss`` with the published settings (soft margin, Euclidean,
cyclic negatives, sum, alpha 0.001), and the published Python loop (M^3 * B scalar
calls, from ``tests/losses/reference.py``). Targets from issue 2: the loop is at least
100x slower than the vectorised triplet loss, and the vectorised triplet loss is within
3x of the CLIP loss. The three are timed in interleaved rounds (a warm-up round, then
the median of several), so the ratios hold on a machine shared with other jobs.

Usage::

    .venv/bin/python bench/bench_losses.py            # full run, prints the table
    .venv/bin/python bench/bench_losses.py --quick    # fewer repeats

From Python: ``run(quick=True)`` returns the measurements as a dict, ``report(result)``
formats them as a table (``bench/run.py`` calls both).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "src"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from tests.losses.reference import published_triplet_loop  # noqa: E402

from nmodal.losses import NModalCLIPLoss, NModalTripletLoss  # noqa: E402

BATCH = 128
DIM = 256
MODALITY_COUNTS = (3, 4)
LOOP_OVER_VECTORISED_MIN = 100.0
TRIPLET_OVER_CLIP_MAX = 3.0

LossFn = Callable[[Sequence[torch.Tensor]], torch.Tensor]


def available_threads() -> int:
    """CPU cores this process may use (the affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def idle_threads() -> int:
    """Cores not busy with other jobs (1-minute load average), at least 1.

    On a shared machine more intra-op threads than idle cores make every small op wait
    for a descheduled thread at its barrier, which swamps the step times.
    """
    cores = available_threads()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(cores, cores - int(load)))


def _step(loss_fn: LossFn, embeddings: list[torch.Tensor]) -> float:
    """Seconds for one forward + backward pass."""
    for z in embeddings:
        z.grad = None
    start = time.perf_counter()
    loss_fn(embeddings).backward()
    return time.perf_counter() - start


def interleaved_step_times_ms(
    fast: dict[str, LossFn],
    slow: dict[str, LossFn],
    embeddings: list[torch.Tensor],
    rounds: int,
    fast_per_round: int,
) -> dict[str, float]:
    """Median step time in ms of each loss, measured in interleaved rounds.

    Each round runs every slow loss once and every fast loss ``fast_per_round`` times,
    alternating, so that load from other processes hits all of them alike and the ratios
    stay meaningful on a shared machine. One untimed warm-up round comes first.
    """
    samples: dict[str, list[float]] = {name: [] for name in (*fast, *slow)}
    for round_index in range(rounds + 1):
        timed = round_index > 0
        for _ in range(fast_per_round if timed else 3):
            for name, fn in fast.items():
                elapsed = _step(fn, embeddings)
                if timed:
                    samples[name].append(elapsed)
        for name, fn in slow.items():
            elapsed = _step(fn, embeddings)
            if timed:
                samples[name].append(elapsed)
    return {name: 1000 * statistics.median(times) for name, times in samples.items()}


def run(quick: bool = False, threads: int | None = None) -> dict[str, Any]:
    """Time the three losses for M=3 and M=4; returns rows, ratios and whether targets hold.

    ``threads`` defaults to the cores that are idle now (see :func:`idle_threads`).
    """
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    torch.set_num_threads(threads or idle_threads())
    rounds, fast_per_round = (2, 10) if quick else (7, 20)
    gen = torch.Generator().manual_seed(0)
    fast: dict[str, LossFn] = {
        "clip": NModalCLIPLoss(),
        "triplet": NModalTripletLoss(),  # the published settings
    }
    slow: dict[str, LossFn] = {"triplet_loop": published_triplet_loop}
    rows = []
    for num in MODALITY_COUNTS:
        z = [torch.randn(BATCH, DIM, generator=gen).requires_grad_() for _ in range(num)]
        ms = interleaved_step_times_ms(fast, slow, z, rounds, fast_per_round)
        rows.append(
            {
                "modalities": num,
                "clip_ms": ms["clip"],
                "triplet_ms": ms["triplet"],
                "triplet_loop_ms": ms["triplet_loop"],
                "loop_over_triplet": ms["triplet_loop"] / ms["triplet"],
                "triplet_over_clip": ms["triplet"] / ms["clip"],
            }
        )
    targets_met = all(
        r["loop_over_triplet"] >= LOOP_OVER_VECTORISED_MIN
        and r["triplet_over_clip"] <= TRIPLET_OVER_CLIP_MAX
        for r in rows
    )
    return {
        "benchmark": "losses",
        "batch": BATCH,
        "dim": DIM,
        "threads": torch.get_num_threads(),
        "cores": available_threads(),
        "load_average_1min": load,
        "torch": torch.__version__,
        "quick": quick,
        "rounds": rounds,
        "rows": rows,
        "targets": {
            "loop_over_triplet_min": LOOP_OVER_VECTORISED_MIN,
            "triplet_over_clip_max": TRIPLET_OVER_CLIP_MAX,
        },
        "targets_met": targets_met,
    }


def report(result: dict[str, Any]) -> str:
    """The measurements as a Markdown table."""
    lines = [
        f"Loss step time (forward + backward), B={result['batch']}, D={result['dim']}, "
        f"{result['threads']} of {result['cores']} core(s) "
        f"(1-min load {result['load_average_1min'] or 0:.1f}), torch {result['torch']}, "
        f"median of {result['rounds']} interleaved rounds",
        "",
        "| M | CLIP ms | triplet ms | triplet loop ms | loop / triplet | triplet / CLIP |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['modalities']} | {r['clip_ms']:.3f} | {r['triplet_ms']:.3f} | "
            f"{r['triplet_loop_ms']:.1f} | {r['loop_over_triplet']:.0f}x | "
            f"{r['triplet_over_clip']:.2f}x |"
        )
    t = result["targets"]
    verdict = "met" if result["targets_met"] else "NOT met"
    lines += [
        "",
        f"targets (loop / triplet >= {t['loop_over_triplet_min']:g}x, "
        f"triplet / CLIP <= {t['triplet_over_clip_max']:g}x): {verdict}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--threads", type=int, help="intra-op threads (default: idle cores)")
    parser.add_argument("--json", type=Path, help="also write the measurements to this file")
    args = parser.parse_args(argv)
    result = run(quick=args.quick, threads=args.threads)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0 if result["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
