"""Reading a feature store piecewise: only the modalities and rows asked for, shard by shard.

A :class:`StoreReader` parses each shard's safetensors header itself (no code runs, no
whole-file load) and reads tensor bytes with ``pread`` straight into preallocated arrays,
in the stored dtype unless asked otherwise. Nothing of the store is held in memory but the
post ids and, when asked, the presence masks (one byte per post and modality); a batch of
rows costs its own bytes, so training can draw random batches from a store larger than
memory (:class:`StoreView`).

Checks on load (a store may come from someone else):

- shard names in the manifest must be plain file names (``../outside`` is refused);
- each shard's file must hash to the sha256 the manifest records (checked once per shard,
  the first time it is read; ``verify=False`` / ``--no-verify`` skips it for speed);
- each tensor must have the manifest's dtype and shape and lie inside the file;
- the rows read must be finite (checked on what is read, never on a copy of a modality).

Each failure is an :class:`InputError` naming the shard file and the reason.

Example:
    >>> from nmodal.features import write_featureset
    >>> _ = write_featureset(tmp / "s", make_synthetic(10, dim=8), shard_size=4)
    >>> reader = StoreReader(tmp / "s")
    >>> reader.read(["text"], rows=np.array([1, 9])).features["text"].shape
    (2, 8)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import struct
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nmodal.errors import InputError
from nmodal.features.featureset import FeatureSet
from nmodal.features.store import read_store_manifest
from nmodal.integrity import sha256_file, verification_enabled

PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
SAFETENSORS_DTYPES = {"F16": np.dtype("<f2"), "F32": np.dtype("<f4"), "U8": np.dtype("u1")}
MAX_HEADER = 1 << 24  # a shard's header is a few hundred bytes; refuse absurd sizes
OPEN_FILES = 64  # shard files kept open at once while drawing batches
WHOLE_SHARD_FRACTION = 8  # read a shard's tensor whole when >= 1/8 of its rows are wanted


@dataclass(frozen=True)
class _Tensor:
    offset: int  # absolute byte offset of row 0 in the file
    dtype: np.dtype
    rows: int
    row_bytes: int


@dataclass
class _Shard:
    name: str
    file: Path
    start: int  # first post (store position) of the shard
    num_posts: int
    sha256: str | None
    tensors: dict[str, _Tensor] | None = None
    verified: bool = False


class StoreReader:
    """Random access to a feature store's rows without loading it.

    ``verify``: check each shard's sha256 against the manifest (once, on first read);
    ``None`` (the default): check unless ``$NMODAL_NO_VERIFY`` says not to (``nmodal
    --no-verify``). ``allow_partial``: read an unfinished store's written shards only.
    """

    def __init__(
        self, path: str | Path, verify: bool | None = None, allow_partial: bool = False
    ) -> None:
        self.path = Path(path)
        self.manifest = read_store_manifest(self.path)
        self.verify = verification_enabled(verify)  # None: on unless $NMODAL_NO_VERIFY
        m = self.manifest
        if not m.get("complete", False) and not allow_partial:
            raise InputError(
                f"{self.path}: feature store is incomplete ({len(m['shards'])} of "
                f"{m.get('num_shards', '?')} shards); rerun `nmodal extract` with the same "
                "arguments to finish it"
            )
        self.modalities: list[str] = list(m["modalities"])
        self.shards: list[_Shard] = []
        ids: list[str] = []
        for entry in sorted(m["shards"], key=lambda s: s.get("index", 0)):
            name = str(entry.get("name", ""))
            if not PLAIN_NAME.match(name):
                raise InputError(
                    f"{self.path / 'manifest.json'}: shard name {name!r} is not a plain file name"
                )
            if verify and m.get("version", 1) >= 2 and not entry.get("sha256"):
                raise InputError(
                    f"{self.path / 'manifest.json'}: shard {name} has no sha256 to verify "
                    "(pass verify=False / --no-verify to read it anyway)"
                )
            ids_file = self.path / f"{name}.ids.json"
            try:
                shard_ids = json.loads(ids_file.read_text())
            except (OSError, ValueError) as exc:
                raise InputError(f"{ids_file}: unreadable ({exc})") from exc
            if not isinstance(shard_ids, list) or (
                "num_posts" in entry and len(shard_ids) != int(entry["num_posts"])
            ):
                raise InputError(
                    f"{ids_file}: expected a list of {entry.get('num_posts')} post ids"
                )
            self.shards.append(
                _Shard(
                    name,
                    self.path / f"{name}.safetensors",
                    len(ids),
                    len(shard_ids),
                    entry.get("sha256"),
                )
            )
            ids.extend(str(p) for p in shard_ids)
        self.post_ids = np.array(ids, dtype=str)
        if len(set(ids)) != len(ids):
            raise InputError(f"{self.path}: post ids are not unique")
        self._starts = np.array([s.start for s in self.shards], dtype=np.int64)
        self._open: OrderedDict[int, int] = OrderedDict()

    # ----------------------------------------------------------------------- properties

    @property
    def num_posts(self) -> int:
        return len(self.post_ids)

    def dims(self) -> dict[str, int]:
        return {m: int(info["dim"]) for m, info in self.manifest["modalities"].items()}

    def encoders(self, modalities: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {m: dict(self.manifest["modalities"][m].get("encoder", {})) for m in modalities}

    def stored_dtype(self, modality: str) -> np.dtype:
        info = self.manifest["modalities"][modality]
        return np.dtype(info.get("dtype", self.manifest.get("dtype", "float32")))

    def check_modalities(self, modalities: Sequence[str] | None) -> list[str]:
        mods = list(modalities) if modalities is not None else list(self.modalities)
        unknown = [m for m in mods if m not in self.manifest["modalities"]]
        if unknown:
            raise InputError(
                f"{self.path}: unknown modality {unknown[0]!r}: no modality {unknown[0]!r} in "
                f"this store (it has {self.modalities})"
            )
        return mods

    def fingerprint(self, modalities: Sequence[str], rows: np.ndarray | None = None) -> str:
        """A short hash of the shards' sha256s (from the manifest), the modalities and the
        rows used: identifies training data without reading it."""
        h = hashlib.sha256()
        for s in self.shards:
            h.update(f"{s.name}:{s.sha256 or s.file.stat().st_size}\n".encode())
        h.update(",".join(modalities).encode())
        if rows is not None:
            h.update(np.ascontiguousarray(rows, dtype=np.int64).data)
        return h.hexdigest()[:16]

    # ------------------------------------------------------------------- shard access

    def _fd(self, k: int) -> int:
        fd = self._open.get(k)
        if fd is not None:
            self._open.move_to_end(k)
            return fd
        shard = self.shards[k]
        try:
            fd = os.open(shard.file, os.O_RDONLY)
        except OSError as exc:
            raise InputError(f"{shard.file}: unreadable ({exc.strerror})") from exc
        self._open[k] = fd
        if len(self._open) > OPEN_FILES:
            _, old = self._open.popitem(last=False)
            os.close(old)
        return fd

    def close(self) -> None:
        while self._open:
            os.close(self._open.popitem()[1])

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter shutdown os may be gone
            self.close()

    def _shard(self, k: int) -> _Shard:
        shard = self.shards[k]
        if shard.tensors is None:
            if self.verify and shard.sha256 and not shard.verified:
                if sha256_file(shard.file) != shard.sha256:
                    raise InputError(
                        f"{shard.file}: sha256 does not match the manifest (changed or "
                        "corrupt; pass --no-verify / verify=False to read it anyway)"
                    )
                shard.verified = True
            shard.tensors = self._header(k)
        return shard

    def _header(self, k: int) -> dict[str, _Tensor]:
        shard = self.shards[k]
        fd = self._fd(k)
        size = os.fstat(fd).st_size
        head = os.pread(fd, 8, 0)
        if len(head) < 8:
            raise InputError(f"{shard.file}: not a safetensors file (too short)")
        (n,) = struct.unpack("<Q", head)
        if n > min(MAX_HEADER, size - 8):
            raise InputError(f"{shard.file}: not a safetensors file (header size {n})")
        try:
            header = json.loads(os.pread(fd, n, 8))
        except ValueError as exc:
            raise InputError(f"{shard.file}: unreadable safetensors header ({exc})") from exc
        if not isinstance(header, dict):
            raise InputError(f"{shard.file}: unreadable safetensors header")
        base = 8 + n
        tensors: dict[str, _Tensor] = {}
        for m in self.modalities:
            dim = int(self.manifest["modalities"][m]["dim"])
            specs = (
                (m, self.stored_dtype(m), (shard.num_posts, dim)),
                (f"{m}.present", np.dtype("u1"), (shard.num_posts,)),
            )
            for key, want, shape in specs:
                info = header.get(key)
                if not isinstance(info, dict):
                    raise InputError(f"{shard.file}: no tensor {key!r}")
                dtype = SAFETENSORS_DTYPES.get(str(info.get("dtype")))
                got_shape = tuple(info.get("shape", ()))
                if dtype != want or got_shape != shape:
                    raise InputError(
                        f"{shard.file}: tensor {key!r} is {info.get('dtype')} {list(got_shape)}, "
                        f"expected {want.name} {list(shape)}"
                    )
                begin, end = (int(v) for v in info.get("data_offsets", (0, -1)))
                row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * want.itemsize
                if end - begin != row_bytes * shape[0] or begin < 0 or base + end > size:
                    raise InputError(f"{shard.file}: tensor {key!r} lies outside the file")
                tensors[key] = _Tensor(base + begin, want, shape[0], row_bytes)
        return tensors

    def _read_rows(self, k: int, key: str, local: np.ndarray, out: np.ndarray) -> None:
        """Rows ``local`` (sorted positions in shard ``k``) of tensor ``key`` into ``out``."""
        shard = self._shard(k)
        assert shard.tensors is not None
        t = shard.tensors[key]
        fd = self._fd(k)
        width = out.shape[1:] if out.ndim > 1 else ()
        if len(local) * WHOLE_SHARD_FRACTION >= t.rows:
            lo, hi = int(local[0]), int(local[-1]) + 1
            buf = os.pread(fd, (hi - lo) * t.row_bytes, t.offset + lo * t.row_bytes)
            block = np.frombuffer(buf, dtype=t.dtype).reshape(hi - lo, *width)
            out[...] = block[local - lo]
        else:
            for j, r in enumerate(local.tolist()):
                buf = os.pread(fd, t.row_bytes, t.offset + r * t.row_bytes)
                out[j] = np.frombuffer(buf, dtype=t.dtype).reshape(width)
        if key.endswith(".present"):
            return
        if not np.isfinite(out).all():
            raise InputError(f"{shard.file}: non-finite features in {key!r}")

    def _each_shard(self, rows: np.ndarray) -> Any:
        """(shard, positions in ``rows``, local rows) for the shards ``rows`` touch, in order."""
        order = np.argsort(rows, kind="stable")
        srt = rows[order]
        shard_of = np.searchsorted(self._starts, srt, side="right") - 1
        cuts = np.flatnonzero(np.diff(shard_of)) + 1
        for pos, grp in zip(np.split(order, cuts), np.split(shard_of, cuts), strict=True):
            if len(grp):
                k = int(grp[0])
                yield k, pos, rows[pos] - self.shards[k].start

    def _check_rows(self, rows: np.ndarray | Sequence[int] | None) -> np.ndarray:
        if rows is None:
            return np.arange(self.num_posts, dtype=np.int64)
        idx = np.asarray(rows)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_posts):
            raise InputError(f"{self.path}: rows out of range (0..{self.num_posts - 1})")
        return idx

    # ------------------------------------------------------------------------- reading

    def gather(
        self, modalities: Sequence[str], rows: np.ndarray, dtype: Any = None
    ) -> dict[str, np.ndarray]:
        """Features of ``rows`` (store positions, any order) per modality, stored dtype
        unless ``dtype``; one preallocated array per modality."""
        rows = self._check_rows(rows)
        out = {
            m: np.empty((len(rows), self.dims()[m]), dtype=dtype or self.stored_dtype(m))
            for m in modalities
        }
        self._fill(out, rows, suffix="")
        return out

    def presence(
        self, modalities: Sequence[str], rows: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Boolean presence masks of ``rows`` (default: every post) per modality."""
        idx = self._check_rows(rows)
        out = {m: np.empty(len(idx), dtype=np.uint8) for m in modalities}
        self._fill(out, idx, suffix=".present")
        return {m: p.astype(bool) for m, p in out.items()}

    def _fill(self, out: dict[str, np.ndarray], rows: np.ndarray, suffix: str) -> None:
        for k, pos, local in self._each_shard(rows):
            contiguous = bool(np.all(np.diff(pos) == 1))
            for m, arr in out.items():
                if contiguous:
                    lo = int(pos[0])
                    self._read_rows(k, m + suffix, local, arr[lo : lo + len(pos)])
                else:
                    part = np.empty((len(pos), *arr.shape[1:]), dtype=arr.dtype)
                    self._read_rows(k, m + suffix, local, part)
                    arr[pos] = part

    def read(
        self,
        modalities: Sequence[str] | None = None,
        rows: np.ndarray | Sequence[int] | None = None,
        dtype: Any = None,
    ) -> FeatureSet:
        """The :class:`FeatureSet` of ``rows`` (default: all) and ``modalities`` (default:
        all), in the stored dtype unless ``dtype``; filled shard by shard."""
        mods = self.check_modalities(modalities)
        idx = self._check_rows(rows)
        return FeatureSet(
            post_ids=self.post_ids[idx],
            features=self.gather(mods, idx, dtype),
            present=self.presence(mods, idx),
            encoders=self.encoders(mods),
            checked=True,
        )

    def view(
        self, modalities: Sequence[str] | None = None, rows: np.ndarray | None = None
    ) -> StoreView:
        """A lazy :class:`StoreView` of ``rows`` and ``modalities`` (reads nothing yet but
        the presence masks)."""
        mods = self.check_modalities(modalities)
        idx = self._check_rows(rows)
        return StoreView(self, mods, idx, self.presence(mods, idx))


class StoreView:
    """Some rows and modalities of a store, read on demand (the on-disk twin of a
    :class:`FeatureSet`: same ``post_ids``, ``present``, ``modalities``, ``dims()``,
    ``encoders``, ``subset``, ``select``; features come from :meth:`take`)."""

    def __init__(
        self,
        reader: StoreReader,
        modalities: list[str],
        rows: np.ndarray,
        present: dict[str, np.ndarray],
    ) -> None:
        self.reader = reader
        self.modalities = list(modalities)
        self.rows = rows
        self.present = present
        self.post_ids = reader.post_ids[rows]
        self.encoders = reader.encoders(self.modalities)

    @property
    def num_posts(self) -> int:
        return len(self.rows)

    def dims(self) -> dict[str, int]:
        dims = self.reader.dims()
        return {m: dims[m] for m in self.modalities}

    def take(
        self, index: np.ndarray, dtype: Any = None, modalities: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Features of the view's rows ``index`` (positions in the view), of
        ``modalities`` (default: the view's)."""
        mods = self.modalities if modalities is None else list(modalities)
        return self.reader.gather(mods, self.rows[np.asarray(index)], dtype)

    def subset(self, index: np.ndarray | Sequence[int]) -> StoreView:
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return StoreView(
            self.reader,
            self.modalities,
            self.rows[idx],
            {m: p[idx] for m, p in self.present.items()},
        )

    def select(self, modalities: Sequence[str]) -> StoreView:
        unknown = [m for m in modalities if m not in self.modalities]
        if unknown:
            raise InputError(
                f"unknown modality {unknown[0]!r}; this feature set has {self.modalities}"
            )
        return StoreView(
            self.reader, list(modalities), self.rows, {m: self.present[m] for m in modalities}
        )

    def complete(self, modalities: Sequence[str] | None = None) -> np.ndarray:
        mask = np.ones(self.num_posts, dtype=bool)
        for m in modalities if modalities is not None else self.modalities:
            mask &= self.present[m]
        return mask

    def load(self, dtype: Any = None) -> FeatureSet:
        """The view's rows read into memory."""
        return self.reader.read(self.modalities, self.rows, dtype)

    def fingerprint(self) -> str:
        return self.reader.fingerprint(self.modalities, self.rows)


def read_featureset(
    path: str | Path,
    dtype: Any = np.float32,
    modalities: Sequence[str] | None = None,
    allow_partial: bool = False,
    rows: np.ndarray | Sequence[int] | None = None,
    verify: bool | None = None,
) -> FeatureSet:
    """Load (part of) a store into memory, posts in store (= posts table) order.

    ``dtype=None`` keeps the stored dtype (float16 stays float16); ``modalities`` selects
    (and orders) modalities and ``rows`` posts (store positions); only those are read, shard
    by shard into preallocated arrays. An unfinished store raises :class:`InputError`
    unless ``allow_partial`` (then only its written shards are read). ``verify``: check
    the shards' sha256 (see :class:`StoreReader`).
    """
    reader = StoreReader(path, verify=verify, allow_partial=allow_partial)
    try:
        return reader.read(modalities, rows, dtype)
    finally:
        reader.close()
