"""The feature store on disk: sharded, atomic, resumable, readable without running code.

Layout of a store directory::

    manifest.json                 what the store holds and which shards are done (below)
    shard-00000.safetensors       per modality "<m>" (n, dim) float16/float32 and
                                  "<m>.present" (n,) uint8 (0 = the post lacks it; row is 0)
    shard-00000.ids.json          the shard's post ids, in row order
    shard-00000.errors.jsonl      one JSON record per failed artifact of the shard's posts
    ...
    errors.jsonl                  all error records in post order (written when complete)
    .lock                         held (flock) while a writer is at work

``manifest.json``::

    {"format": "nmodal-feature-store", "version": 2,
     "num_posts": P, "shard_size": S, "num_shards": ceil(P / S), "dtype": "float32",
     "posts_sha256": "<hash of the ordered post ids>",
     "modalities": {"text": {"dim": 384, "dtype": "float32", "encoder": {provenance}}, ...},
     "shards": [{"name": "shard-00000", "index": 0, "num_posts": S, "num_errors": 0,
                 "sha256": "<of the .safetensors file>"}, ...],
     "num_errors": E, "complete": true}

Shard ``k`` holds posts ``k*S .. (k+1)*S - 1`` of the post order. Writing a shard is: its
files go to temporary names, are renamed into place, then the manifest (also written to a
temporary name and renamed) lists the shard. A run killed at any point leaves either a
listed, complete shard or nothing that counts; the next run redoes only unlisted shards,
and a complete store is left untouched. Nothing in the store depends on timing, so an
interrupted-and-resumed run gives the same bytes as an uninterrupted one.

Error records: ``{"post_id", "modality", "stage", "reason", "path"}`` (``stage`` is where
it failed: ``decode``, ``audio``, ``image``, ``encode``).

Everything is safetensors and JSON: reading a store never executes code.

Example:
    >>> _ = write_featureset(tmp / "store", make_synthetic(10, dim=8))
    >>> from nmodal.features import read_featureset
    >>> read_featureset(tmp / "store").num_posts
    10
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from nmodal import atomic
from nmodal.errors import InputError, OutputExistsError
from nmodal.features.featureset import FeatureSet
from nmodal.integrity import sha256_file
from nmodal.jsonfile import read_format_json

FORMAT = "nmodal-feature-store"
VERSION = 2
MANIFEST = "manifest.json"
ERRORS = "errors.jsonl"
LOCK = ".lock"
DEFAULT_SHARD_SIZE = 1024
STORE_DTYPES = ("float32", "float16")
FLOAT16_MAX = float(np.finfo(np.float16).max)


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def posts_hash(post_ids: Sequence[str]) -> str:
    """SHA-256 of the ordered post ids (identifies what a store was made from)."""
    h = hashlib.sha256()
    for pid in post_ids:
        h.update(str(pid).encode())
        h.update(b"\n")
    return h.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and a rename."""
    atomic.write_bytes(path, data)


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode()


def _errors_bytes(records: Sequence[Mapping[str, Any]]) -> bytes:
    return "".join(
        json.dumps(dict(r), ensure_ascii=False, sort_keys=True) + "\n" for r in records
    ).encode()


class StoreWriter:
    """Writes a store shard by shard; reopening an existing store resumes it.

    ``post_ids`` fixes the post order, ``modalities`` maps each modality to
    ``{"dim": d, "encoder": provenance}``. An existing store at ``path`` must have been
    started with the same posts, modalities, encoders, shard size and dtype (else
    :class:`InputError`), unless ``overwrite`` is given, which starts afresh.

    Example:
        >>> w = StoreWriter(tmp / "s", ["a", "b", "c"], {"text": {"dim": 4, "encoder": {}}}, shard_size=2)
        >>> for k in w.pending_shards():
        ...     lo, hi = w.shard_bounds(k)
        ...     w.write_shard(k, {"text": np.ones((hi - lo, 4))}, {"text": np.ones(hi - lo, bool)})
        >>> w.finish().complete
        True
    """

    def __init__(
        self,
        path: str | Path,
        post_ids: Sequence[str],
        modalities: Mapping[str, Mapping[str, Any]],
        shard_size: int = DEFAULT_SHARD_SIZE,
        dtype: str = "float32",
        overwrite: bool = False,
    ) -> None:
        if shard_size < 1:
            raise InputError(f"shard size must be >= 1, got {shard_size}")
        if dtype not in STORE_DTYPES:
            raise InputError(f"store dtype must be one of {STORE_DTYPES}, got {dtype!r}")
        if not modalities:
            raise InputError("a feature store needs at least one modality")
        ids = [str(p) for p in post_ids]
        if len(set(ids)) != len(ids):
            uniq, counts = np.unique(np.array(ids, dtype=str), return_counts=True)
            raise InputError(f"post ids are not unique (e.g. {uniq[counts > 1][0]!r})")
        self.path = Path(path)
        self.post_ids = ids
        self.shard_size = int(shard_size)
        self.dtype = dtype
        self.num_shards = math.ceil(len(ids) / self.shard_size)
        plan = {
            "format": FORMAT,
            "version": VERSION,
            "num_posts": len(ids),
            "shard_size": self.shard_size,
            "num_shards": self.num_shards,
            "dtype": dtype,
            "posts_sha256": posts_hash(ids),
            "modalities": {
                m: {
                    "dim": int(info["dim"]),
                    "dtype": dtype,
                    "encoder": dict(info.get("encoder", {})),
                }
                for m, info in modalities.items()
            },
        }
        self.manifest = self._open(plan, overwrite)

    # ------------------------------------------------------------------ opening / resuming

    def _open(self, plan: dict[str, Any], overwrite: bool) -> dict[str, Any]:
        path = atomic.recover_dir(self.path)
        if path.exists() and not path.is_dir():
            raise OutputExistsError(f"{path}: exists and is not a directory")
        if (path / MANIFEST).is_file() and not overwrite:
            manifest = read_store_manifest(path)
            keys = ("version", "num_posts", "shard_size", "dtype", "posts_sha256", "modalities")
            # JSON round trip so tuples and lists compare equal
            plan_json = json.loads(json.dumps(plan))
            diff = [k for k in keys if manifest.get(k) != plan_json.get(k)]
            if diff:
                said = {
                    "num_posts": "number of posts", "posts_sha256": "posts (another dataset, or "
                    "the dataset changed since)", "shard_size": "--shard-size", "dtype": "--dtype",
                    "modalities": "--modalities", "version": "store version",
                }  # fmt: skip
                raise InputError(
                    f"{path}: a feature store made with different "
                    f"{', '.join(said.get(k, k) for k in diff)} is there (manifest fields "
                    f"{', '.join(diff)}); rerun with the same settings to resume it, pass "
                    "--overwrite to replace it, or choose another --out"
                )
            for leftover in path.glob(".*.tmp"):  # from a run killed while writing
                leftover.unlink(missing_ok=True)
            return manifest
        if path.exists() and any(path.iterdir()):
            if not overwrite:
                raise OutputExistsError(
                    f"{path}: exists and is not an empty feature store (pass --overwrite)"
                )
            atomic.check_replaceable(path, "feature store", MANIFEST, FORMAT)
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        manifest = {**plan, "shards": [], "num_errors": 0, "complete": plan["num_posts"] == 0}
        _write_atomic(path / MANIFEST, _json_bytes(manifest))
        if manifest["complete"]:
            _write_atomic(path / ERRORS, b"")
        return manifest

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's lock: a second writer on the same store fails at once."""
        with (self.path / LOCK).open("a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise InputError(
                    f"{self.path}: another process is writing this feature store"
                ) from exc
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # ------------------------------------------------------------------------ properties

    @property
    def complete(self) -> bool:
        return bool(self.manifest["complete"])

    def done_shards(self) -> set[int]:
        return {int(s["index"]) for s in self.manifest["shards"]}

    def pending_shards(self) -> list[int]:
        done = self.done_shards()
        return [k for k in range(self.num_shards) if k not in done]

    def shard_bounds(self, index: int) -> tuple[int, int]:
        lo = index * self.shard_size
        return lo, min(lo + self.shard_size, len(self.post_ids))

    def shard_post_ids(self, index: int) -> list[str]:
        lo, hi = self.shard_bounds(index)
        return self.post_ids[lo:hi]

    # --------------------------------------------------------------------------- writing

    def write_shard(
        self,
        index: int,
        features: Mapping[str, np.ndarray],
        present: Mapping[str, np.ndarray],
        errors: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Write shard ``index`` (rows = its posts, in order) and record it as done."""
        if not 0 <= index < self.num_shards:
            raise InputError(f"shard {index} out of range (0..{self.num_shards - 1})")
        ids = self.shard_post_ids(index)
        n = len(ids)
        mods = self.manifest["modalities"]
        if set(features) != set(mods) or set(present) != set(mods):
            raise InputError(
                f"shard {index}: modalities {sorted(features)} != store's {sorted(mods)}"
            )
        tensors: dict[str, np.ndarray] = {}
        for m, info in mods.items():
            x = np.asarray(features[m])
            p = np.asarray(present[m], dtype=bool)
            if x.shape != (n, info["dim"]) or p.shape != (n,):
                raise InputError(
                    f"shard {index}, {m}: features {x.shape} / presence {p.shape}, "
                    f"expected ({n}, {info['dim']}) / ({n},)"
                )
            x = np.where(p[:, None], x, 0).astype(np.float32)
            if not np.isfinite(x).all():
                bad = ids[int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])]
                raise InputError(f"shard {index}, {m}: non-finite features (post {bad!r})")
            if self.dtype == "float16" and np.abs(x).max(initial=0.0) > FLOAT16_MAX:
                raise InputError(f"{m}: features exceed the float16 range; use dtype float32")
            tensors[m] = np.ascontiguousarray(x.astype(self.dtype))
            tensors[f"{m}.present"] = p.astype(np.uint8)
        name = shard_name(index)
        with atomic.writing_file(self.path / f"{name}.safetensors") as tmp:
            save_file(tensors, str(tmp))
        _write_atomic(self.path / f"{name}.ids.json", _json_bytes(ids))
        records = [_error_record(e) for e in errors]
        _write_atomic(self.path / f"{name}.errors.jsonl", _errors_bytes(records))
        entry = {
            "name": name,
            "index": index,
            "num_posts": n,
            "num_errors": len(records),
            "sha256": sha256_file(self.path / f"{name}.safetensors"),
        }
        shards = [s for s in self.manifest["shards"] if s["index"] != index] + [entry]
        self.manifest["shards"] = sorted(shards, key=lambda s: s["index"])
        self.manifest["num_errors"] = sum(s["num_errors"] for s in self.manifest["shards"])
        _write_atomic(self.path / MANIFEST, _json_bytes(self.manifest))

    def finish(self) -> StoreWriter:
        """Mark the store complete (all shards written) and gather ``errors.jsonl``."""
        pending = self.pending_shards()
        if pending:
            raise InputError(f"{self.path}: shards {pending[:5]} are not written yet")
        if not self.complete:
            parts = [
                (self.path / f"{shard_name(k)}.errors.jsonl").read_bytes()
                for k in range(self.num_shards)
            ]
            _write_atomic(self.path / ERRORS, b"".join(parts))
            self.manifest["complete"] = True
            _write_atomic(self.path / MANIFEST, _json_bytes(self.manifest))
        return self


def _error_record(e: Mapping[str, Any]) -> dict[str, Any]:
    missing = {"post_id", "modality", "stage", "reason"} - set(e)
    if missing:
        raise InputError(f"error record {dict(e)!r} lacks {sorted(missing)}")
    return {
        "post_id": str(e["post_id"]),
        "modality": str(e["modality"]),
        "stage": str(e["stage"]),
        "reason": str(e["reason"]),
        "path": None if e.get("path") is None else str(e["path"]),
    }


# ------------------------------------------------------------------------------- reading


def read_store_manifest(path: str | Path) -> dict[str, Any]:
    """The parsed ``manifest.json`` of the store at ``path`` (:class:`InputError` if none).

    A store left mid-swap by a killed :func:`write_featureset` is first brought back to its
    old or its new complete version (:func:`nmodal.atomic.recover_dir`), as every loader does."""
    return read_format_json(
        atomic.recover_dir(Path(path)),
        MANIFEST,
        format=FORMAT,
        versions=(1, VERSION),
        what="a feature store",
        missing_hint="; make one with `nmodal extract`",
    )


def read_errors(path: str | Path) -> list[dict[str, Any]]:
    """The store's per-artifact error records, in post order (written shards only)."""
    path = Path(path)
    manifest = read_store_manifest(path)
    records: list[dict[str, Any]] = []
    for shard in sorted(manifest["shards"], key=lambda s: s.get("index", 0)):
        f = path / f"{shard['name']}.errors.jsonl"
        if f.is_file():
            records.extend(json.loads(line) for line in f.read_text().splitlines() if line.strip())
    return records


def write_featureset(
    path: str | Path,
    fs: FeatureSet,
    overwrite: bool = False,
    shard_size: int = DEFAULT_SHARD_SIZE,
    dtype: str | None = None,
) -> Path:
    """Write ``fs`` as a complete store at ``path``, atomically (temp dir + rename).

    ``dtype`` (``float32``/``float16``) defaults to float16 when every modality of ``fs``
    is float16, else float32.
    """
    path = atomic.recover_dir(Path(path))
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: exists (pass overwrite=True / --overwrite)")
    atomic.check_replaceable(path, "feature store", MANIFEST, FORMAT)
    if dtype is None:
        dtype = "float16" if all(x.dtype == np.float16 for x in fs.features.values()) else "float32"
    with atomic.replacing_dir(path) as tmp:
        writer = StoreWriter(
            tmp,
            fs.post_ids.tolist(),
            {m: {"dim": d, "encoder": fs.encoders.get(m, {})} for m, d in fs.dims().items()},
            shard_size=shard_size,
            dtype=dtype,
            overwrite=True,
        )
        for k in range(writer.num_shards):
            lo, hi = writer.shard_bounds(k)
            writer.write_shard(
                k,
                {m: x[lo:hi] for m, x in fs.features.items()},
                {m: p[lo:hi] for m, p in fs.present.items()},
            )
        writer.finish()
    return path
