"""The Milvus backend of a post index: candidates from a Milvus collection instead of FAISS.

FAISS is the embedded default. With ``nmodal index build ... --backend milvus --uri URI`` the
candidate search of every modality runs in Milvus (a cluster by ``http://host:19530``, or
Milvus Lite in-process by a local ``*.db`` file); everything else stays as with FAISS: the
index folder keeps the post table and the float32 embeddings, which score the candidates
exactly, so the post-level scores are the same functions of the same vectors.

One collection per modality, named ``<collection>_<modality>``, ``<collection>`` recorded in
the manifest (``backend: {name, uri, collection, index_type}``). Its rows: ``id`` (INT64,
the post number, primary key), ``v`` (the embedding, FLOAT_VECTOR), and the filterable post
fields: ``account``, ``date_ns`` with ``has_date``, ``fwd`` (is a forward), ``fwd_from``
and ``fwd_from_id`` (empty when absent), so that :class:`nmodal.index.post_index.Filters`
run inside Milvus as a boolean expression (:func:`filter_expression`).

Milvus index types: ``FLAT`` (exact; searches are certified as with FAISS ``Flat``),
``HNSW`` (per-search ``efSearch``, Milvus's ``ef``), ``IVF_FLAT`` (``nprobe``). The
build-time recall tuning of the FAISS backend is not run on Milvus.

A cluster that needs credentials reads them from the environment, never from the manifest:
``NMODAL_MILVUS_TOKEN`` (``user:password`` or an API key).

Consistency: a build writes new collections (a fresh name) and drops the previous build's
only once the new folder is in place; ``index add`` first deletes ids at or above the
folder's post count (the leftovers of an interrupted add), then inserts.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nmodal.errors import InputError

INDEX_TYPES = ("FLAT", "HNSW", "IVF_FLAT")
#: the per-search parameter of each Milvus index type (nmodal's name)
KNOB_OF = {"FLAT": None, "HNSW": "efSearch", "IVF_FLAT": "nprobe"}
#: Milvus's largest ``limit`` of one search
MAX_LIMIT = 16_384
INSERT_BATCH = 4_096
HNSW_BUILD = {"M": 16, "efConstruction": 200}
DEFAULT_EF = 128


def check_index_type(index_type: str | None) -> str:
    """``index_type`` upper-cased (default ``FLAT``); InputError for one nmodal does not run."""
    kind = (index_type or "FLAT").upper()
    if kind not in INDEX_TYPES:
        raise InputError(f"Milvus index type {index_type!r} is not one of {INDEX_TYPES}")
    return kind


def resolve_uri(uri: str) -> str:
    """A server URI as given; a Milvus Lite file path made absolute (the manifest outlives
    the working directory)."""
    if re.match(r"^[a-z][a-z0-9+.-]*://", uri):
        return uri
    if not uri.endswith(".db"):
        raise InputError(
            f"Milvus URI {uri!r}: give a server (http://host:19530) or a Milvus Lite file (*.db)"
        )
    return str(Path(uri).expanduser().resolve())


def new_collection_name(stem: str) -> str:
    """A fresh collection prefix from ``stem`` (letters, digits and underscores only)."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", stem).strip("_") or "index"
    return f"nmodal_{base[:40]}_{secrets.token_hex(4)}"


def _literal(value: str) -> str:
    return json.dumps(str(value))


def filter_expression(filters: Any, excluded: Sequence[int] = (), parse_date: Any = None) -> str:
    """A Milvus boolean expression selecting what ``filters`` (a ``Filters``) allows, minus
    the post numbers ``excluded``; ``""`` when nothing is filtered. ``parse_date`` is
    :func:`nmodal.index.post_index.parse_date` (passed in: this module sits below it)."""
    parts: list[str] = []
    if filters is not None and not filters.is_empty():
        if filters.accounts:
            names = [a for a in filters.accounts if str(a) != ""]
            parts.append(f"account in [{', '.join(_literal(a) for a in names)}]")
        if filters.forwards == "only":
            parts.append("fwd == true")
        elif filters.forwards == "none":
            parts.append("fwd == false")
        if filters.forwarded_from:
            wanted = ", ".join(_literal(o) for o in filters.forwarded_from if str(o) != "")
            parts.append(f"(fwd_from in [{wanted}] or fwd_from_id in [{wanted}])")
        since = parse_date(filters.since)
        until = parse_date(filters.until, end=True)
        if since is not None:
            parts.append(f"(has_date == true and date_ns >= {int(since.value)})")
        if until is not None:
            parts.append(f"(has_date == true and date_ns <= {int(until.value)})")
    if len(excluded):
        parts.append(f"id not in [{', '.join(str(int(r)) for r in excluded)}]")
    return " and ".join(parts)


def _client(uri: str, token: str | None = None) -> Any:
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:
        raise InputError(
            "the Milvus backend needs pymilvus (and milvus-lite for a local *.db file): "
            "pip install 'nmodal[milvus]'"
        ) from exc
    token = token if token is not None else os.environ.get("NMODAL_MILVUS_TOKEN", "")
    try:
        return MilvusClient(uri=uri, token=token)
    except Exception as exc:  # pymilvus raises its own and grpc errors
        raise InputError(f"cannot connect to Milvus at {uri}: {exc}") from exc


def _text(values: np.ndarray | None, n: int) -> list[str]:
    if values is None:
        return [""] * n
    return ["" if v is None else str(v) for v in values]


class MilvusVectors:
    """The Milvus collections of one post index: create, fill, search, count."""

    def __init__(self, uri: str, collection: str, index_type: str, token: str | None = None):
        self.uri = uri
        self.collection = collection
        self.index_type = check_index_type(index_type)
        self.client = _client(uri, token)
        self.defaults: dict[str, dict[str, Any]] = {}

    @classmethod
    def from_manifest(cls, backend: Mapping[str, Any], token: str | None = None) -> MilvusVectors:
        try:
            return cls(str(backend["uri"]), str(backend["collection"]), str(backend["index_type"]))
        except KeyError as exc:
            raise InputError(f"index manifest: Milvus backend entry lacks {exc}") from exc

    def describe(self) -> dict[str, Any]:
        """The manifest's ``backend`` entry."""
        return {
            "name": "milvus",
            "uri": self.uri,
            "collection": self.collection,
            "index_type": self.index_type,
        }

    def name(self, modality: str) -> str:
        return f"{self.collection}_{re.sub(r'[^A-Za-z0-9_]', '_', modality)}"

    # ------------------------------------------------------------------------------ writing

    def create(self, modality: str, dim: int, count: int) -> None:
        """An empty collection for ``modality`` (``dim``-d vectors, about ``count`` rows)."""
        from pymilvus import DataType

        name = self.name(modality)
        if self.client.has_collection(name):
            self.client.drop_collection(name)
        schema = self.client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("account", DataType.VARCHAR, max_length=1024)
        schema.add_field("has_date", DataType.BOOL)
        schema.add_field("date_ns", DataType.INT64)
        schema.add_field("fwd", DataType.BOOL)
        schema.add_field("fwd_from", DataType.VARCHAR, max_length=1024)
        schema.add_field("fwd_from_id", DataType.VARCHAR, max_length=1024)
        params = self.client.prepare_index_params()
        build: dict[str, Any] = {}
        if self.index_type == "HNSW":
            build = dict(HNSW_BUILD)
        elif self.index_type == "IVF_FLAT":
            build = {"nlist": int(max(1, min(65_536, 4 * np.sqrt(max(count, 1)))))}
        params.add_index("v", index_type=self.index_type, metric_type="IP", params=build)
        self.client.create_collection(name, schema=schema, index_params=params)

    def insert(
        self,
        modality: str,
        emb: np.ndarray,
        rows: np.ndarray,
        meta: Mapping[str, np.ndarray | None],
    ) -> None:
        """Insert post numbers ``rows`` (vectors ``emb[rows]``); ``meta``: post-aligned
        ``account``, ``dates`` (datetime64[ns]), ``forwarded_from``, ``forwarded_from_id``."""
        name = self.name(modality)
        dates = meta["dates"]
        for start in range(0, len(rows), INSERT_BATCH):
            chunk = rows[start : start + INSERT_BATCH]
            vectors = np.asarray(emb[chunk], dtype=np.float32)
            day = dates[chunk] if dates is not None else np.full(len(chunk), np.datetime64("NaT"))
            nat = np.isnat(day)
            ns = np.where(nat, 0, day.astype("datetime64[ns]").astype(np.int64))
            account = _text(_at(meta["account"], chunk), len(chunk))
            origin = _text(_at(meta["forwarded_from"], chunk), len(chunk))
            origin_id = _text(_at(meta["forwarded_from_id"], chunk), len(chunk))
            is_fwd = [
                _present(meta["forwarded_from"], r) or _present(meta["forwarded_from_id"], r)
                for r in chunk.tolist()
            ]
            records = [
                {
                    "id": int(r),
                    "v": vectors[i].tolist(),
                    "account": account[i],
                    "has_date": not bool(nat[i]),
                    "date_ns": int(ns[i]),
                    "fwd": bool(is_fwd[i]),
                    "fwd_from": origin[i],
                    "fwd_from_id": origin_id[i],
                }
                for i, r in enumerate(chunk.tolist())
            ]
            self.client.insert(name, records)
        self.client.flush(name)

    def delete_from(self, modality: str, first: int) -> None:
        """Delete the rows with post number ``first`` or above (an interrupted add's)."""
        self.client.delete(self.name(modality), filter=f"id >= {int(first)}")

    def drop(self, modalities: Sequence[str]) -> None:
        for m in modalities:
            if self.client.has_collection(self.name(m)):
                self.client.drop_collection(self.name(m))

    # ------------------------------------------------------------------------------ reading

    def load(self, modalities: Sequence[str]) -> None:
        for m in modalities:
            if not self.client.has_collection(self.name(m)):
                raise InputError(
                    f"Milvus at {self.uri} has no collection {self.name(m)!r} (dropped, or "
                    "another server?); rebuild the index"
                )
            self.client.load_collection(self.name(m))

    def count(self, modality: str) -> int:
        rows = self.client.query(self.name(modality), filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def knobs(self) -> tuple[str, ...]:
        knob = KNOB_OF[self.index_type]
        return () if knob is None else (knob,)

    def exact(self) -> bool:
        return self.index_type == "FLAT"

    def search(
        self,
        modality: str,
        vectors: np.ndarray,
        k: int,
        knobs: Mapping[str, Any],
        expression: str = "",
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(similarities, post numbers)``, each ``(len(vectors), k)``, best first; short
        lists are padded with ``-inf`` / ``-1`` as FAISS does."""
        limit = max(1, min(int(k), MAX_LIMIT))
        params: dict[str, Any] = {}
        if self.index_type == "HNSW":
            params["ef"] = max(int(knobs.get("efSearch", DEFAULT_EF)), limit)
        elif self.index_type == "IVF_FLAT" and knobs.get("nprobe") is not None:
            params["nprobe"] = int(knobs["nprobe"])
        result = self.client.search(
            self.name(modality),
            data=[q.tolist() for q in np.asarray(vectors, dtype=np.float32)],
            limit=limit,
            anns_field="v",
            search_params={"metric_type": "IP", "params": params},
            filter=expression,
            output_fields=["id"],
        )
        dist = np.full((len(vectors), limit), -np.inf, dtype=np.float32)
        ids = np.full((len(vectors), limit), -1, dtype=np.int64)
        for i, hits in enumerate(result):
            for j, hit in enumerate(list(hits)[:limit]):
                dist[i, j] = float(hit["distance"])
                ids[i, j] = int(hit["id"])
        return dist, ids


def _at(values: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    return None if values is None else values[rows]


def _present(values: np.ndarray | None, row: int) -> bool:
    return values is not None and values[row] is not None
