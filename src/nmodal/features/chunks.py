"""Decode-and-encode workers: each process decodes *and* encodes its own chunks of posts.

On a CPU the fastest layout is N processes of one torch thread each that run the whole
per-post work (decode, resize, every encoder) on their own posts: no process waits on
another, and one thread per process avoids the synchronisation cost of intra-op threads.
The work unit is a *chunk*: ``CHUNK_POSTS`` consecutive posts of one shard (fixed
boundaries counted from the shard's first post), encoded per modality as one batch. The
chunk boundaries and the one-thread setting do not depend on the number of workers, so a
store written with 1 worker or with 8 is byte-identical, and so is one resumed after a
kill (shards are the unit of resumption, chunks never cross a shard).

The workers rebuild the encoders from their provenance (:func:`nmodal.encoders.
from_provenance`), after importing the module that defines each encoder's class and the
plugins named in ``$NMODAL_PLUGINS`` (so encoders registered by user code work too). Nothing is pickled to disk; the posts and the
features travel between processes through ``multiprocessing``'s own pipes.

Example:
    >>> recipe = encoder_recipe(encoders, runtime={"device": "cpu"})  # doctest: +SKIP
    >>> run_chunk(jobs[:16], spec, build_encoders(recipe)).features["video"].shape  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nmodal.encoders.base import MODALITIES, Encoder, from_provenance, load_plugins
from nmodal.features.decode import Decoded, DecodeSpec, PostJob, decode_post
from nmodal.features.stages import encode_items
from nmodal.lifeline import die_with_parent

#: posts per work unit (and per encoder batch) in the decode-and-encode workers
CHUNK_POSTS = 8


@dataclass(frozen=True)
class EncoderRecipe:
    """How a worker process rebuilds one encoder: its class's module and provenance."""

    modality: str
    module: str
    provenance: dict[str, Any]
    runtime: dict[str, Any]


def encoder_recipe(
    encoders: Mapping[str, Encoder], runtime: Mapping[str, Any] | None = None
) -> tuple[EncoderRecipe, ...]:
    """Recipes to rebuild ``encoders`` in another process (with ``runtime`` settings)."""
    run = {k: v for k, v in dict(runtime or {}).items() if v is not None}
    return tuple(
        EncoderRecipe(m, type(e).__module__, e.provenance(), {**e.runtime, **run})
        for m, e in encoders.items()
    )


def build_encoders(recipes: Sequence[EncoderRecipe]) -> dict[str, Encoder]:
    """The encoders of ``recipes``, built in this process."""
    out: dict[str, Encoder] = {}
    load_plugins()  # $NMODAL_PLUGINS: a plugin file's folder goes on sys.path first
    for r in recipes:
        importlib.import_module(r.module)
        out[r.modality] = from_provenance(r.provenance, **r.runtime)
    return out


@dataclass
class ChunkResult:
    """Features ``{m: (n, dim)}``, presence ``{m: (n,)}``, error records and timings of a
    chunk of ``n`` posts (rows in the chunk's post order)."""

    features: dict[str, np.ndarray]
    present: dict[str, np.ndarray]
    errors: list[dict[str, Any]] = field(default_factory=list)
    decode_seconds: float = 0.0
    encode_seconds: dict[str, float] = field(default_factory=dict)


def run_chunk(
    jobs: Sequence[PostJob],
    spec: DecodeSpec,
    encoders: Mapping[str, Encoder],
    decode: Callable[[PostJob, DecodeSpec], Decoded] = decode_post,
    decoded: Sequence[Decoded] | None = None,
) -> ChunkResult:
    """Decode ``jobs`` (unless ``decoded`` is given) and encode each modality as one batch.

    A batch the encoder rejects is retried one artifact at a time, so a bad artifact costs
    only itself; non-finite features are an error, not data."""
    t0 = time.perf_counter()
    posts = list(decoded) if decoded is not None else [decode(job, spec) for job in jobs]
    n = len(posts)
    out = ChunkResult(
        features={m: np.zeros((n, e.dim), np.float32) for m, e in encoders.items()},
        present={m: np.zeros(n, bool) for m in encoders},
        decode_seconds=time.perf_counter() - t0,
    )
    for p in posts:
        out.errors.extend(p.errors)
    for m, enc in encoders.items():
        items = [(i, p.items[m]) for i, p in enumerate(posts) if m in p.items]
        if not items:
            continue
        t0 = time.perf_counter()
        _encode_batch(m, enc, items, [p.post_id for p in posts], out)
        out.encode_seconds[m] = time.perf_counter() - t0
    order = {m: k for k, m in enumerate(MODALITIES)}
    row = {p.post_id: i for i, p in enumerate(posts)}
    out.errors.sort(key=lambda e: (row.get(e["post_id"], n), order.get(e["modality"], 99)))
    return out


def _encode_batch(
    m: str, enc: Encoder, items: list[tuple[int, Any]], post_ids: list[str], out: ChunkResult
) -> None:
    rows, x = encode_items(m, enc, items, post_ids, out.errors)
    out.features[m][rows] = x
    out.present[m][rows] = True


# ------------------------------------------------------------------ worker-process side

_WORKER_ENCODERS: dict[str, Encoder] = {}


def init_chunk_worker(recipes: Sequence[EncoderRecipe]) -> None:
    """Process-pool initialiser: one torch and one FFmpeg thread, the encoders built once
    per process; the worker dies with its parent (no encoder process outlives a killed
    ``extract``)."""

    die_with_parent()
    import torch

    from nmodal.media.video import set_decode_threads  # lazy: PyAV only in workers

    torch.set_num_threads(1)
    set_decode_threads(1)  # one FFmpeg thread too: same frames, ~30 % fewer core-seconds
    _WORKER_ENCODERS.clear()
    _WORKER_ENCODERS.update(build_encoders(recipes))


def worker_chunk(
    jobs: Sequence[PostJob],
    spec: DecodeSpec,
    decode: Callable[[PostJob, DecodeSpec], Decoded] = decode_post,
    decoded: Sequence[Decoded] | None = None,
) -> ChunkResult:
    """:func:`run_chunk` with the encoders this worker built in :func:`init_chunk_worker`."""
    return run_chunk(jobs, spec, _WORKER_ENCODERS, decode, decoded)
