"""The extraction as a Ray Data pipeline (``nmodal extract --ray``), for clusters and GPUs.

Two stages, both ``map_batches``:

1. **decode** (CPU tasks, one core each, ``decode_batch``): posts -> decoded artifacts, exactly as the local
   workers do (:func:`nmodal.features.decode.decode_post`);
2. **encode** (an actor pool; ``num_gpus=1`` per actor when the cluster has GPUs): each actor
   imports the modules that define the encoders (so a custom encoder's module must be
   importable on the workers, e.g. through Ray's ``runtime_env``), rebuilds the encoders
   from their provenance and turns a batch into feature rows.

The driver keeps Ray's output in input order (``preserve_order``), gathers the rows of each
shard and writes shards with the same :class:`~nmodal.features.store.StoreWriter` as a
local run: the store format, resumability and error records are the same.

Example:
    >>> extract_features("data/ds", "data/features", use_ray=True)             # local Ray  # doctest: +SKIP
    >>> extract_features("data/ds", "data/features", use_ray=True, ray_address="auto")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nmodal.encoders.base import Encoder, from_provenance
from nmodal.errors import InputError
from nmodal.features.decode import Decoded, DecodeSpec, PostJob, decode_post, init_worker
from nmodal.features.stages import ENCODE_BATCH, ExtractStats, ShardEncoder, progress_bar
from nmodal.features.store import StoreWriter

#: bytes a decode task reserves (8 posts of 16 frames of 224x224, with room for larger)
DECODE_MEMORY = 256 * 1024 * 1024
#: placeholders for an absent artifact (same number of dims as a present one)
_EMPTY = {
    "video": lambda: np.zeros((0, 0, 0, 3), np.uint8),
    "image": lambda: np.zeros((0, 0, 3), np.uint8),
    "audio": lambda: np.zeros(0, np.float32),
}


def decode_batch(batch: dict[str, np.ndarray], spec: DecodeSpec) -> dict[str, Any]:
    """Stage 1: a batch of post rows -> decoded artifacts (``<m>``, ``has_<m>``, ``errors``)."""
    init_worker()
    n = len(batch["post_id"])
    cols = ("post_id", "text", "video_path", "image_path", "audio_path")
    jobs = [PostJob(*(_none(batch[c][i]) for c in cols)) for i in range(n)]
    decoded = [decode_post(job, spec) for job in jobs]
    out: dict[str, Any] = {"post_id": batch["post_id"], "row": batch["row"]}
    out["errors"] = np.array([json.dumps(d.errors) for d in decoded], dtype=object)
    for m in spec.modalities:
        out[f"has_{m}"] = np.array([m in d.items for d in decoded], dtype=bool)
        if m == "text":
            out["text"] = np.array([d.items.get("text", "") for d in decoded], dtype=object)
        else:
            out[m] = [d.items.get(m, _EMPTY[m]()) for d in decoded]
    return out


class EncodeBatch:
    """Stage 2 (actor): decoded artifacts -> ``feat_<m>`` (n, dim), ``ok_<m>``, ``errors``."""

    def __init__(
        self,
        provenance: Mapping[str, Mapping[str, Any]],
        runtime: Mapping[str, Any],
        modules: Sequence[str] = (),
    ) -> None:
        for module in modules:  # where the encoder classes are defined (registers them here)
            importlib.import_module(module)
        self.encoders: dict[str, Encoder] = {
            m: from_provenance(p, **runtime) for m, p in provenance.items()
        }

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        ids = [str(p) for p in batch["post_id"]]
        stats = ExtractStats()
        shard = ShardEncoder(self.encoders, ids, stats, batch=max(len(ids), 1))
        for i, pid in enumerate(ids):
            items = {m: batch[m][i] for m in self.encoders if bool(batch[f"has_{m}"][i])}
            shard.add(Decoded(pid, items, json.loads(batch["errors"][i])))
        features, present, errors = shard.finish()
        per_post: dict[str, list[dict[str, Any]]] = {pid: [] for pid in ids}
        for e in errors:
            per_post[e["post_id"]].append(e)
        out: dict[str, Any] = {"row": batch["row"]}
        out["errors"] = np.array([json.dumps(per_post[pid]) for pid in ids], dtype=object)
        out["encode_seconds"] = np.full(
            len(ids), sum(stats.encode_seconds.values()) / max(len(ids), 1)
        )
        for m in self.encoders:
            out[f"feat_{m}"] = features[m]
            out[f"ok_{m}"] = present[m]
        return out


def _none(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value


def extract_with_ray(
    writer: StoreWriter,
    jobs: Sequence[PostJob],
    encs: Mapping[str, Encoder],
    spec: DecodeSpec,
    stats: ExtractStats,
    address: str | None = None,
    progress: bool = True,
    num_cpus: int | None = None,
    encode_actors: int = 1,
) -> None:
    """Write every pending shard of ``writer`` with a Ray Data decode -> encode pipeline."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise InputError("--ray needs Ray Data: pip install 'nmodal[ray]'") from exc
    started = False
    if not ray.is_initialized():
        ray.init(address=address, num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        pending = writer.pending_shards()
        stats.posts_skipped = len(jobs) - sum(len(writer.shard_post_ids(k)) for k in pending)
        rows = [
            {"row": i, "post_id": j.post_id, "text": j.text or "", "video_path": j.video_path or "",
             "image_path": j.image_path or "", "audio_path": j.audio_path or ""}
            for k in pending for i in range(*writer.shard_bounds(k)) for j in [jobs[i]]
        ]  # fmt: skip
        if not rows:
            return
        gpus = float(ray.cluster_resources().get("GPU", 0))
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False  # nmodal shows its own
        runtime = {"device": "cuda"} if gpus else {"device": "cpu"}
        ds: Any = ray.data.from_items(rows, override_num_blocks=max(1, len(rows) // ENCODE_BATCH))
        # decode tasks reserve memory for their frames; the encoders run in their own actors
        # (the different resource requests also keep Ray from fusing the two stages)
        ds = ds.map_batches(
            decode_batch, fn_kwargs={"spec": spec}, batch_size=8, num_cpus=1, memory=DECODE_MEMORY
        )
        ds = ds.map_batches(
            EncodeBatch,
            fn_constructor_kwargs={
                "provenance": {m: e.provenance() for m, e in encs.items()},
                "runtime": runtime,
                "modules": sorted({type(e).__module__ for e in encs.values()}),
            },
            batch_size=ENCODE_BATCH, compute=ray.data.ActorPoolStrategy(size=encode_actors),
            num_gpus=1 if gpus else 0,
        )  # fmt: skip
        _collect(writer, pending, ds, list(encs), stats, progress)
    finally:
        if started:
            ray.shutdown()


def _collect(
    writer: StoreWriter,
    pending: Sequence[int],
    ds: Any,
    mods: list[str],
    stats: ExtractStats,
    progress: bool,
) -> None:
    """Gather the pipeline's rows (in order) into shards and write each shard when full."""
    bounds = {k: writer.shard_bounds(k) for k in pending}
    shard_of = {i: k for k, (lo, hi) in bounds.items() for i in range(lo, hi)}
    buffers: dict[int, dict[str, Any]] = {}
    with progress_bar(writer, progress) as bar:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for j, row in enumerate(batch["row"].tolist()):
                k = shard_of[row]
                lo, hi = bounds[k]
                buf = buffers.setdefault(k, _new_buffer(writer, k, mods, hi - lo))
                r = row - lo
                for m in mods:
                    buf["features"][m][r] = batch[f"feat_{m}"][j]
                    buf["present"][m][r] = bool(batch[f"ok_{m}"][j])
                buf["errors"].extend(json.loads(batch["errors"][j]))
                buf["filled"] += 1
                stats.encode_seconds["all"] = stats.encode_seconds.get("all", 0.0) + float(
                    batch["encode_seconds"][j]
                )
                bar.update(1)
                if buf["filled"] == hi - lo:
                    t0 = time.perf_counter()
                    writer.write_shard(k, buf["features"], buf["present"], buf["errors"])
                    stats.write_seconds += time.perf_counter() - t0
                    stats.shards_written += 1
                    stats.posts += hi - lo
                    del buffers[k]
    if buffers:
        raise InputError(f"the Ray pipeline lost rows of shards {sorted(buffers)}")


def _new_buffer(writer: StoreWriter, k: int, mods: list[str], n: int) -> dict[str, Any]:
    dims = {m: int(writer.manifest["modalities"][m]["dim"]) for m in mods}
    return {
        "features": {m: np.zeros((n, dims[m]), np.float32) for m in mods},
        "present": {m: np.zeros(n, bool) for m in mods},
        "errors": [],
        "filled": 0,
    }
