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
from collections.abc import Mapping
from typing import Any

import numpy as np

from nmodal.errors import InputError

FLAT_MAX_ARTIFACTS = 1_000_000
SQ8_MAX_VECTORS = 20_000_000
#: training sample per IVF list (FAISS wants at least 39; more gives better centroids, and
#: the build-time recall measurement says whether they are good enough)
TRAIN_PER_LIST = 40
#: at most this many training vectors (k-means cost grows with sample x lists)
TRAIN_MAX = 262_144
#: k-means iterations of IVF training (FAISS's default is 25). Measured at 1M posts (latent-32
#: bench data, 4096 lists, 40 vectors a list): after 12 iterations the lists still split
#: neighbourhoods (recall 0.975 at nprobe 8, 0.99 only at 256), after 20 they do not (0.997 at
#: nprobe 4; 25 gave the same at 1.3x the training time)
KMEANS_ITERATIONS = 20
#: per-search parameters, and the index component each one applies to
KNOBS = {"nprobe": "IVF", "efSearch": "HNSW", "k_factor": "refine (RFlat)"}


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
    """An empty inner-product FAISS index for ``factory`` that accepts ``add_with_ids``.

    An IVF index (alone or under a pre-transform) stores the ids itself; anything else,
    a refined index (``...,RFlat``) included, is wrapped in ``IndexIDMap``.
    """
    import faiss

    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise InputError(
            f"FAISS factory string {factory!r} is not valid for dim {dim}: {exc}"
        ) from exc
    _no_polysemous_training(index)
    if not _stores_ids(index):
        index = faiss.IndexIDMap(index)
    return index


def _no_polysemous_training(index: Any) -> None:
    """Switch off FAISS's polysemous training of PQ codes (an annealing over code orders for
    Hamming-distance filtering, which nmodal never uses): minutes on a busy machine."""
    import faiss

    node = faiss.downcast_index(index)
    while True:
        if isinstance(node, (faiss.IndexIVFPQ, faiss.IndexPQ)):
            setattr(node, "do_polysemous_training", False)  # noqa: B010 (not in the stubs)
        if isinstance(node, (faiss.IndexIDMap, faiss.IndexPreTransform)):
            node = faiss.downcast_index(node.index)
        elif isinstance(node, faiss.IndexRefine):
            node = faiss.downcast_index(node.base_index)
        else:
            return


def _stores_ids(index: Any) -> bool:
    """Whether ``add_with_ids`` works on ``index`` itself: an IVF, maybe under pre-transforms."""
    import faiss

    node = faiss.downcast_index(index)
    while isinstance(node, faiss.IndexPreTransform):
        node = faiss.downcast_index(node.index)
    return isinstance(node, (faiss.IndexIVF, faiss.IndexIDMap))


def training_rows(index: Any, rows: np.ndarray, seed: int = 0) -> np.ndarray:
    """The rows (a sorted random sample of ``rows``) ``index`` is trained on: ``TRAIN_PER_LIST``
    per IVF list (256 lists' worth for other trained types), at most ``TRAIN_MAX``."""
    ivf = ivf_of(index)
    per = TRAIN_PER_LIST * (ivf.nlist if ivf is not None else 256)
    size = min(len(rows), per, TRAIN_MAX)
    rng = np.random.default_rng(seed)
    return rows if size == len(rows) else np.sort(rng.choice(rows, size, replace=False))


def training_needs(index: Any) -> list[tuple[str, int]]:
    """``(part, vectors)``: each trained part of ``index`` and the fewest training vectors
    its k-means needs (one per centroid): IVF lists, PQ codebooks (``2**nbits`` per
    sub-quantizer, OPQ's rotation included), through ``IndexIDMap``, pre-transforms,
    refinement and HNSW storage."""
    import faiss

    needs: list[tuple[str, int]] = []
    todo = [faiss.downcast_index(index)]
    while todo:
        node = todo.pop()
        if isinstance(node, faiss.IndexIDMap):
            todo.append(faiss.downcast_index(node.index))
            continue
        if isinstance(node, faiss.IndexPreTransform):
            chain: Any = node.chain  # a SWIG vector (the stubs say list)
            for j in range(chain.size()):
                vt = faiss.downcast_VectorTransform(chain.at(j))
                if isinstance(vt, faiss.OPQMatrix):
                    needs.append(("OPQ rotation's codebooks", 256))
            todo.append(faiss.downcast_index(node.index))
            continue
        if isinstance(node, faiss.IndexRefine):
            todo.extend(faiss.downcast_index(part) for part in (node.base_index, node.refine_index))
            continue
        if isinstance(node, faiss.IndexHNSW):
            todo.append(faiss.downcast_index(node.storage))
            continue
        if isinstance(node, faiss.IndexIVF):
            needs.append((f"{node.nlist} IVF lists", int(node.nlist)))
        pq = getattr(node, "pq", None)
        if isinstance(pq, faiss.ProductQuantizer):
            needs.append((f"PQ{pq.M}x{pq.nbits} codebooks", int(pq.ksub)))
    return needs


def train_index(
    index: Any, emb: np.ndarray, rows: np.ndarray, seed: int = 0, factory: str | None = None
) -> np.ndarray:
    """Train ``index`` (a no-op for Flat) on a random sample of ``emb[rows]``; returns the
    sample (empty when nothing was trained).

    Only the sample is copied: ``emb`` may be a memory map far larger than memory. Too few
    vectors for a part of the index (:func:`training_needs`) is an InputError naming
    ``factory``, the part, the vectors needed and those available, before FAISS runs.
    """
    if index.is_trained:
        return np.zeros(0, np.int64)
    name = f"FAISS index {factory!r}" if factory else "the FAISS index"
    short = [(part, need) for part, need in training_needs(index) if len(rows) < need]
    if short:
        part, need = max(short, key=lambda item: item[1])
        raise InputError(
            f"{name} cannot be trained: its {part} need at least {need} training vectors, "
            f"only {len(rows)} are available (choose a smaller factory with --factory)"
        )
    ivf = ivf_of(index)
    if ivf is not None:
        ivf.cp.niter = KMEANS_ITERATIONS
    sample = training_rows(index, rows, seed)
    try:
        index.train(np.ascontiguousarray(emb[sample], dtype=np.float32))
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise InputError(f"{name} cannot be trained on {len(sample)} vectors: {reason}") from exc
    return sample


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


def components(index: Any) -> dict[str, Any]:
    """The parts of ``index`` that per-search parameters reach: ``{"ivf": ..., "hnsw": ...,
    "refine": ...}`` (each present only when the index has it), through ``IndexIDMap`` and
    pre-transforms."""
    import faiss

    found: dict[str, Any] = {}
    node = faiss.downcast_index(index)
    while True:
        if isinstance(node, (faiss.IndexIDMap, faiss.IndexPreTransform)):
            node = faiss.downcast_index(node.index)
        elif isinstance(node, faiss.IndexRefine):
            found.setdefault("refine", node)
            node = faiss.downcast_index(node.base_index)
        else:
            break
    if isinstance(node, faiss.IndexIVF):
        found["ivf"] = node
    elif isinstance(node, faiss.IndexHNSW):
        found["hnsw"] = node
    elif isinstance(node, (faiss.IndexPQ, faiss.IndexLSH)):
        found["no_params"] = node  # its search() rejects any parameters (and id selectors)
    return found


def takes_selectors(index: Any) -> bool:
    """Whether ``index`` can be searched restricted to some ids (plain PQ / LSH cannot)."""
    return "no_params" not in components(index)


def knobs_of(index: Any) -> tuple[str, ...]:
    """The per-search parameters ``index`` accepts (a subset of ``KNOBS``)."""
    parts = components(index)
    return tuple(
        knob
        for knob, part in (("nprobe", "ivf"), ("efSearch", "hnsw"), ("k_factor", "refine"))
        if part in parts
    )


def check_knobs(knobs: Mapping[str, Any]) -> dict[str, Any]:
    """``knobs`` without None values, each checked: InputError for an unknown name or a bad
    value (nprobe, efSearch: positive integers; k_factor: a number >= 1)."""
    out: dict[str, Any] = {}
    for name, value in knobs.items():
        if value is None:
            continue
        if name not in KNOBS:
            raise InputError(f"unknown search parameter {name!r}; known: {sorted(KNOBS)}")
        if name == "k_factor":
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise InputError(f"k_factor must be a number >= 1, got {value!r}")
            if not value >= 1:
                raise InputError(f"k_factor must be a number >= 1, got {value!r}")
            out[name] = float(value)
        else:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
            out[name] = int(value)
    return out


def set_knobs(index: Any, knobs: Mapping[str, Any]) -> None:
    """Set ``index``'s own defaults for the given per-search parameters (those it has)."""
    parts = components(index)
    if knobs.get("nprobe") is not None and "ivf" in parts:
        set_nprobe(index, knobs["nprobe"])
    if knobs.get("efSearch") is not None and "hnsw" in parts:
        parts["hnsw"].hnsw.efSearch = int(knobs["efSearch"])
    if knobs.get("k_factor") is not None and "refine" in parts:
        parts["refine"].k_factor = float(knobs["k_factor"])


def knob_values(index: Any) -> dict[str, Any]:
    """``index``'s current defaults of the per-search parameters it has."""
    parts = components(index)
    out: dict[str, Any] = {}
    if "ivf" in parts:
        out["nprobe"] = int(parts["ivf"].nprobe)
    if "hnsw" in parts:
        out["efSearch"] = int(parts["hnsw"].hnsw.efSearch)
    if "refine" in parts:
        out["k_factor"] = float(parts["refine"].k_factor)
    return out


def search_parameters(
    index: Any,
    knobs: Mapping[str, Any],
    bitmap: np.ndarray | None = None,
    id_map: np.ndarray | None = None,
) -> tuple[Any, list[Any]]:
    """FAISS search parameters of one call on ``index``: its defaults overridden by ``knobs``
    (nprobe capped at the number of lists), restricted to the ids whose bit is set in the
    packed ``bitmap`` (None: all).

    ``id_map`` (``IndexIDMap``'s internal position -> id) is needed to filter a refined index:
    its base index sees internal positions. Returns ``(params, keep)``; ``keep`` holds the
    objects the parameters point to and must outlive the search.
    """
    import faiss

    lib: Any = faiss  # the Python wrappers take numpy arrays; the stubs do not
    parts = components(index)
    if "no_params" in parts:
        if bitmap is not None:
            raise InputError("this index type cannot be searched with an id filter")
        return None, []
    values = {**knob_values(index), **{k: v for k, v in knobs.items() if v is not None}}
    keep: list[Any] = []
    core: Any
    if "ivf" in parts:
        core = lib.SearchParametersIVF()
        core.nprobe = max(1, min(int(values["nprobe"]), int(parts["ivf"].nlist)))
    elif "hnsw" in parts:
        core = lib.SearchParametersHNSW()
        core.efSearch = int(values["efSearch"])
    else:
        core = lib.SearchParameters()
    keep.append(core)
    if "refine" not in parts:
        if bitmap is not None:
            selector = lib.IDSelectorBitmap(bitmap)
            keep.append(selector)
            core.sel = selector
        return core, keep
    if bitmap is not None:
        if id_map is not None:  # the base index sees IndexIDMap's internal positions
            allowed = np.unpackbits(bitmap, bitorder="little").astype(bool)
            inner = np.zeros(len(id_map), dtype=bool)
            inside = id_map < len(allowed)
            inner[inside] = allowed[id_map[inside]]
            bitmap = np.packbits(inner, bitorder="little")
        selector = lib.IDSelectorBitmap(bitmap)
        keep.extend([bitmap, selector])
        core.sel = selector
    params = faiss.IndexRefineSearchParameters()
    params.k_factor = float(values["k_factor"])
    params.base_index_params = core
    keep.append(params)
    return params, keep


def id_map_of(index: Any) -> np.ndarray | None:
    """``IndexIDMap``'s internal position -> id array (None when ``index`` stores ids itself)."""
    import faiss

    node = faiss.downcast_index(index)
    if isinstance(node, faiss.IndexIDMap):
        return np.asarray(faiss.vector_to_array(node.id_map), dtype=np.int64)
    return None
