"""The bounded probe pool: a hung or crashing job costs that job, never the run."""

from __future__ import annotations

import os
import time

from nmodal.sources.probe_pool import run_bounded


def _work(job: int) -> str:
    if job == 3:
        time.sleep(120)  # hangs
    if job == 5:
        os._exit(3)  # the worker dies (like a decoder segfault)
    return f"ok {job}"


def test_hang_and_crash_cost_one_job_each() -> None:
    start = time.monotonic()
    out = list(
        run_bounded(_work, list(range(8)), workers=2, timeout=20.0, on_failure=lambda j, r: r)
    )
    assert out[3] == "timed out after 20 s"
    assert out[5] == "the probing worker process died (crash or out of memory)"
    assert [out[i] for i in (0, 1, 2, 4, 6, 7)] == [f"ok {i}" for i in (0, 1, 2, 4, 6, 7)]
    assert time.monotonic() - start < 150
