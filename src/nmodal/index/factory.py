"""Choosing, building and tuning the FAISS index of one modality.

Vectors are L2-normalised, so inner product = cosine similarity. Up to ``FLAT_MAX_ARTIFACTS``
artifacts in the whole index (all modalities together: a query scans every other-modality
index) each modality gets an exact ``Flat`` index. Above that each modality gets an inverted
file index sized to its own count: ``IVF<nlist>,SQ8`` (1 byte per dimension) up to
``SQ8_MAX_VECTORS`` vectors, ``IVF<nlist>,PQ<m>`` beyond.

FAISS ids are post numbers (rows of the index's ``posts.parquet``): IVF indexes store ids
natively, every other index type is wrapped in ``IndexIDMap``.

Example:
    >>> choose_factory(5_000, total_artifacts=15_000, dim=256)
    'Flat'
    >>> choose_factory(1_000_000, total_artifacts=3_000_000, dim=256)
    'IVF1024,SQ8'
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from nmodal.errors import InputError

FLAT_MAX_ARTIFACTS = 1_000_000
SQ8_MAX_VECTORS = 20_000_000
#: training sample per IVF list (FAISS wants at least 39; more gives better centroids)
TRAIN_PER_LIST = 64
TRAIN_MAX = 500_000


def nlist_for(n: int) -> int:
    """A power of two near ``sqrt(n)``, clipped to [64, 65536] and to at most ``n // 39``."""
    nlist = 2 ** round(math.log2(math.sqrt(max(n, 1))))
    nlist = min(max(nlist, 64), 65536)
    return int(max(1, min(nlist, n // 39)))


def choose_factory(n: int, total_artifacts: int, dim: int) -> str:
    """The FAISS factory string for a modality holding ``n`` vectors of ``dim`` dimensions."""
    if total_artifacts <= FLAT_MAX_ARTIFACTS:
        return "Flat"
    nlist = nlist_for(n)
    if n <= SQ8_MAX_VECTORS:
        return f"IVF{nlist},SQ8"
    m = max(x for x in range(1, dim + 1) if dim % x == 0 and x <= max(dim // 8, 1))
    return f"IVF{nlist},PQ{m}"


def is_exact(factory: str) -> bool:
    """Whether ``factory`` scores every vector exactly (brute-force float32)."""
    return factory.replace("IDMap,", "").strip() in ("Flat", "FlatIP")


def new_index(dim: int, factory: str) -> Any:
    """An empty inner-product FAISS index for ``factory`` that accepts ``add_with_ids``."""
    import faiss

    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise InputError(
            f"FAISS factory string {factory!r} is not valid for dim {dim}: {exc}"
        ) from exc
    if faiss.try_extract_index_ivf(index) is None and not isinstance(index, faiss.IndexIDMap):
        index = faiss.IndexIDMap(index)
    return index


def train_index(index: Any, emb: np.ndarray, rows: np.ndarray, seed: int = 0) -> None:
    """Train ``index`` (a no-op for Flat) on a random sample of ``emb[rows]``.

    Only the sample is copied: ``emb`` may be a memory map far larger than memory.
    """
    if index.is_trained:
        return
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None and len(rows) < ivf.nlist:
        raise InputError(
            f"index with {ivf.nlist} IVF lists needs at least that many vectors to train; "
            f"got {len(rows)} (choose a smaller nlist with --factory)"
        )
    per = TRAIN_PER_LIST * (ivf.nlist if ivf is not None else 256)
    size = min(len(rows), per, TRAIN_MAX)
    rng = np.random.default_rng(seed)
    sample = rows if size == len(rows) else np.sort(rng.choice(rows, size, replace=False))
    index.train(np.ascontiguousarray(emb[sample], dtype=np.float32))


def default_nprobe(factory: str) -> int | None:
    """A starting ``nprobe`` for IVF factories: about 1/64 of the lists, at least 8."""
    match = re.search(r"IVF(\d+)", factory)
    if not match:
        return None
    nlist = int(match.group(1))
    return int(min(nlist, max(8, nlist // 64)))


def ivf_of(index: Any) -> Any | None:
    """The inverted-file index inside ``index`` (itself, or under a pre-transform), or None."""
    import faiss

    return faiss.try_extract_index_ivf(index)


def is_flat_ivf(index: Any) -> bool:
    """Whether ``index`` is an ``IVF...,Flat`` index over raw vectors with a flat quantizer:
    visiting all its lists then scores every vector exactly, like ``Flat``."""
    import faiss

    if not isinstance(index, faiss.IndexIVFFlat):
        return False
    return isinstance(faiss.downcast_index(index.quantizer), faiss.IndexFlat)


def set_nprobe(index: Any, nprobe: int | None) -> None:
    """The IVF lists ``index`` visits by default (capped at its number of lists)."""
    if nprobe is None:
        return
    ivf = ivf_of(index)
    if ivf is not None:
        ivf.nprobe = max(1, min(int(nprobe), int(ivf.nlist)))
