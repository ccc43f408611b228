"""Filling the Milvus collections of a post index (see :mod:`nmodal.index.milvus`).

Example:
    >>> remote = MilvusVectors("/data/milvus.db", new_collection_name("i1"), "HNSW")  # doctest: +SKIP
    >>> info = fill_collections(remote, emb, present, posts)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nmodal.index import layout
from nmodal.index.milvus import DEFAULT_EF, KNOB_OF, MilvusVectors
from nmodal.index.post_index import PostIndex, filter_fields


def modality_info(remote: MilvusVectors, count: int, knobs: Mapping[str, Any]) -> dict[str, Any]:
    """A modality's manifest entry with the Milvus backend (its per-search defaults:
    ``efSearch`` for HNSW, ``nprobe`` for IVF_FLAT, from ``knobs`` where given)."""
    knob = KNOB_OF[remote.index_type]
    params: dict[str, Any] = {}
    nprobe = None
    if knob == "efSearch":
        params["efSearch"] = int(knobs.get("efSearch") or DEFAULT_EF)
    elif knob == "nprobe":
        nprobe = int(knobs.get("nprobe") or 16)
    return {
        "factory": f"milvus:{remote.index_type}",
        "exact": remote.exact(),
        "count": count,
        "trained_on": count,
        "auto": False,
        "nprobe": nprobe,
        "params": params,
    }


def fill_collections(
    remote: MilvusVectors,
    emb: Mapping[str, np.ndarray],
    present: Mapping[str, np.ndarray],
    posts: pd.DataFrame,
    knobs: Mapping[str, Any] | None = None,
    first: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Insert the present rows of every modality (post numbers = rows of ``posts``) into
    ``remote``'s collections: new collections when ``first`` is None, else (``index add``)
    the rows from post number ``first`` on, after deleting any the collections already hold
    there. Returns the modalities' manifest entries."""
    fields = filter_fields(posts)
    info: dict[str, dict[str, Any]] = {}
    for m, vectors in emb.items():
        rows = np.flatnonzero(present[m])
        if first is None:
            remote.create(m, int(vectors.shape[1]), len(rows))
        else:
            remote.delete_from(m, first)
            rows = rows[rows >= first]
        remote.insert(m, vectors, rows, fields)
        info[m] = modality_info(remote, int(present[m].sum()), knobs or {})
    remote.load(list(emb))
    return info


def milvus_index_from_embeddings(
    remote: MilvusVectors,
    emb: Mapping[str, np.ndarray],
    present: Mapping[str, np.ndarray] | None = None,
    posts: pd.DataFrame | None = None,
    knobs: Mapping[str, Any] | None = None,
) -> PostIndex:
    """An in-memory :class:`PostIndex` searching ``remote`` (filled here) over ready-made
    L2-normalised embeddings: the Milvus twin of ``index_from_embeddings``."""
    mods = list(emb)
    n = len(emb[mods[0]])
    pres = {m: np.ones(n, bool) if present is None else np.asarray(present[m], bool) for m in mods}
    table = (
        posts.copy() if posts is not None else pd.DataFrame({"post_id": [str(i) for i in range(n)]})
    )
    info = fill_collections(remote, emb, pres, table, knobs)
    for entry in info.values():
        entry["encoder"] = {}
    manifest = {
        "format": layout.FORMAT, "version": layout.VERSION, "model": None, "dataset_dir": None,
        "projection_dim": int(emb[mods[0]].shape[1]), "num_posts": n,
        "num_artifacts": sum(int(p.sum()) for p in pres.values()), "modalities": info,
        "backend": remote.describe(),
    }  # fmt: skip
    return PostIndex(Path("<memory>"), manifest, table, dict(emb), pres, {}, milvus=remote)
