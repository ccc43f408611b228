"""The stages the local and the Ray extraction pipelines share: run statistics, the
shard encoder (a shard's decoded posts encoded per modality in fixed batches) and the
progress bar. Both :mod:`nmodal.features.extract` and :mod:`nmodal.features.ray_extract`
import them from here, so neither imports the other at module level."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nmodal.encoders.base import MODALITIES, Encoder
from nmodal.features.decode import Decoded
from nmodal.features.store import StoreWriter

ENCODE_BATCH = 32
#: posts per encoder call, per modality: small for heavy media so the encoders start
#: early and decoding overlaps them from the first batch on
ENCODE_BATCHES = {"text": 64, "image": 32, "video": 8, "audio": 8}


@dataclass
class ExtractStats:
    """Where the time went.

    ``setup_seconds``: loading the encoders and opening the store. ``seconds``: the
    extraction itself, of which ``startup_seconds`` is the wait for the very first decoded
    post (worker processes starting). ``outside_share`` is the share of the steady-state
    time (``seconds - startup_seconds``) spent outside the encoders: waiting for decoded
    media, writing shards, bookkeeping.

    With decode-and-encode workers (``cores`` processes doing both), the time is counted in
    core-seconds: ``encode_seconds`` and ``decode_seconds`` are summed over the workers,
    ``startup_seconds`` is the wait for the first chunk less that chunk's own work
    (workers starting and loading their encoders), and ``outside_share`` is the share of
    the ``cores * steady_seconds`` core-seconds not spent inside an encoder (decoding,
    resizing, idling, the pipes).
    """

    posts: int = 0
    posts_skipped: int = 0
    shards_written: int = 0
    errors: int = 0
    setup_seconds: float = 0.0
    seconds: float = 0.0
    startup_seconds: float = 0.0
    encode_seconds: dict[str, float] = field(default_factory=dict)
    wait_seconds: float = 0.0
    write_seconds: float = 0.0
    decode_seconds: float = 0.0
    cores: int = 1

    @property
    def posts_per_second(self) -> float:
        return self.posts / self.seconds if self.seconds > 0 else 0.0

    @property
    def steady_seconds(self) -> float:
        return max(0.0, self.seconds - self.startup_seconds)

    @property
    def outside_seconds(self) -> float:
        return max(0.0, self.cores * self.steady_seconds - sum(self.encode_seconds.values()))

    @property
    def outside_share(self) -> float:
        total = self.cores * self.steady_seconds
        return self.outside_seconds / total if total > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "posts": self.posts,
            "posts_skipped": self.posts_skipped,
            "shards_written": self.shards_written,
            "errors": self.errors,
            "setup_seconds": self.setup_seconds,
            "seconds": self.seconds,
            "startup_seconds": self.startup_seconds,
            "posts_per_second": self.posts_per_second,
            "encode_seconds": dict(self.encode_seconds),
            "wait_seconds": self.wait_seconds,
            "write_seconds": self.write_seconds,
            "decode_seconds": self.decode_seconds,
            "cores": self.cores,
            "outside_share": self.outside_share,
        }


class ShardEncoder:
    """Collects one shard's decoded posts, encodes them per modality in fixed batches."""

    def __init__(
        self,
        encoders: Mapping[str, Encoder],
        post_ids: Sequence[str],
        stats: ExtractStats,
        batch: int | None = None,
    ) -> None:
        self.encoders = encoders
        self.post_ids = list(post_ids)
        self.row = {pid: i for i, pid in enumerate(self.post_ids)}
        self.stats = stats
        self.batch = {m: batch or ENCODE_BATCHES.get(m, ENCODE_BATCH) for m in encoders}
        n = len(self.post_ids)
        self.features = {m: np.zeros((n, e.dim), np.float32) for m, e in encoders.items()}
        self.present = {m: np.zeros(n, bool) for m in encoders}
        self.errors: list[dict[str, Any]] = []
        self.pending: dict[str, list[tuple[int, Any]]] = {m: [] for m in encoders}

    def add(self, decoded: Decoded) -> None:
        i = self.row[decoded.post_id]
        self.errors.extend(decoded.errors)
        for m, item in decoded.items.items():
            if m in self.pending:
                self.pending[m].append((i, item))
                if len(self.pending[m]) >= self.batch[m]:
                    self._flush(m)

    def finish(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[dict[str, Any]]]:
        for m in self.pending:
            self._flush(m)
        order = {m: k for k, m in enumerate(MODALITIES)}
        errors = sorted(
            self.errors, key=lambda e: (self.row[e["post_id"]], order.get(e["modality"], 99))
        )
        return self.features, self.present, errors

    def _flush(self, m: str) -> None:
        items = self.pending[m]
        if not items:
            return
        self.pending[m] = []
        t0 = time.perf_counter()
        rows, x = encode_items(m, self.encoders[m], items, self.post_ids, self.errors)
        self.stats.encode_seconds[m] = (
            self.stats.encode_seconds.get(m, 0.0) + time.perf_counter() - t0
        )
        self.features[m][rows] = x
        self.present[m][rows] = True


def encode_items(
    m: str,
    enc: Encoder,
    items: Sequence[tuple[int, Any]],
    post_ids: Sequence[str],
    errors: list[dict[str, Any]],
) -> tuple[np.ndarray, np.ndarray]:
    """Encode ``(row, input)`` items of modality ``m`` as one batch; when the batch fails,
    one at a time to find the culprits. Returns the rows and float32 features of the items
    that encoded to finite features, and appends an error record for each that did not."""
    rows = np.array([i for i, _ in items])
    try:
        x = np.asarray(enc.encode([a for _, a in items]), dtype=np.float32)
        ok = np.ones(len(items), bool)
    except Exception:  # find the culprit(s): one at a time
        x = np.zeros((len(items), enc.dim), np.float32)
        ok = np.zeros(len(items), bool)
        for k, (i, a) in enumerate(items):
            try:
                x[k] = np.asarray(enc.encode([a]), dtype=np.float32)[0]
                ok[k] = True
            except Exception as exc:
                errors.append(
                    {"post_id": post_ids[i], "modality": m, "stage": "encode",
                     "reason": f"{type(exc).__name__}: {exc}", "path": None}
                )  # fmt: skip
    finite = np.isfinite(x).all(axis=1)
    for bad in np.flatnonzero(ok & ~finite):
        errors.append(
            {"post_id": post_ids[rows[bad]], "modality": m, "stage": "encode",
             "reason": "the encoder returned non-finite features", "path": None}
        )  # fmt: skip
    good = ok & finite
    return rows[good], x[good]


def progress_bar(writer: StoreWriter, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    done = sum(hi - lo for lo, hi in map(writer.shard_bounds, writer.done_shards()))
    return tqdm(
        total=len(writer.post_ids), initial=done, unit="post", desc="extract", disable=not enabled,
        file=sys.stderr, dynamic_ncols=True, smoothing=0.1,
    )  # fmt: skip
