"""Running a per-file function in worker processes, bounded: one bad file costs one file.

:func:`run_bounded` maps ``fn`` over ``jobs`` in a process pool. A job that runs longer than
``timeout`` seconds, or whose worker dies (a decoder crash, the kernel's OOM killer), gets
``on_failure(job, reason)`` as its result instead; its pool is replaced and the other jobs go
on. Workers die with the process that started them (:mod:`nmodal.lifeline`).

Example:
    >>> run_bounded(probe_one, jobs, workers=4, timeout=60.0,
    ...             on_failure=lambda job, why: {"error": why})  # doctest: +SKIP
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from nmodal.lifeline import die_with_parent

J = TypeVar("J")
R = TypeVar("R")


def _new_pool(workers: int) -> ProcessPoolExecutor:
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=die_with_parent)


def _kill(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now, hung workers included."""
    processes: dict[int, Any] = dict(getattr(pool, "_processes", None) or {})
    for proc in processes.values():
        if proc.is_alive():
            proc.kill()
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes.values():
        proc.join(timeout=5)


def run_bounded(
    fn: Callable[[J], R],
    jobs: Sequence[J],
    workers: int,
    timeout: float,
    on_failure: Callable[[J, str], R],
    ahead: int | None = None,
) -> Iterator[R]:
    """``fn(job)`` for every job, in order; see the module docstring. ``fn`` must be
    importable (it runs in another process). ``ahead`` jobs are in flight (default
    ``2 * workers``); the timeout of a job counts from when its result is awaited, after the
    previous job's result, so it is at least ``timeout`` of its own running time."""
    ahead = ahead or 2 * workers
    pool = _new_pool(workers)
    queue: deque[tuple[J, Future[R]]] = deque()
    todo = iter(jobs)

    def top_up() -> None:
        while len(queue) < ahead:
            try:
                job = next(todo)
            except StopIteration:
                return
            queue.append((job, pool.submit(fn, job)))

    try:
        top_up()
        while queue:
            job, fut = queue.popleft()
            try:
                result = fut.result(timeout=timeout)
            except FutureTimeout:
                _kill(pool)
                result = on_failure(job, f"timed out after {timeout:g} s")
                pool = _new_pool(workers)
                queue = deque((j, pool.submit(fn, j)) for j, _ in queue)
            except BrokenProcessPool:
                _kill(pool)
                result = _alone(fn, job, timeout, on_failure)
                pool = _new_pool(workers)
                queue = deque((j, pool.submit(fn, j)) for j, _ in queue)
            top_up()
            yield result
    finally:
        _kill(pool)


def _alone(fn: Callable[[J], R], job: J, timeout: float, on_failure: Callable[[J, str], R]) -> R:
    """Retry ``job`` in a pool of its own: it, or a neighbour, killed the shared one."""
    pool = _new_pool(1)
    try:
        return pool.submit(fn, job).result(timeout=timeout)
    except FutureTimeout:
        return on_failure(job, f"timed out after {timeout:g} s")
    except BrokenProcessPool:
        return on_failure(job, "the probing worker process died (crash or out of memory)")
    finally:
        _kill(pool)
