"""Choosing an approximate index's settings from the data: recall measured against exact search.

At build time, for each modality above the exact-index threshold, candidate IVF sizes are
built in turn (``IVF<nlist>,<codec>``, nlist from about ``4 sqrt(n)`` upward, each trained on
a bounded sample); for each, ``nprobe`` doubles until the measured recall reaches the target.
The cheapest setting that reaches it (vectors scanned per query: ``nlist + nprobe n / nlist``)
is kept, and every measured point is recorded: the manifest's ``tuning`` entry, shown by
``nmodal index info``. A factory given by the user keeps its type; only its search knob
(``nprobe`` for IVF, ``efSearch`` for HNSW) is tuned, or just measured when it is given too.

What is measured: queries are the collection's own vectors, from held-out posts (never in the
training sample) and, as in a search, from the *other* modalities where the post has them
(a single-modality index uses its own vectors). For each query the exact top ``k`` (10) of
the modality, by brute force over the float32 vectors, is compared with the ``candidates``
(100) the index returns: the fraction found is the recall. ``PostIndex.search`` re-scores
its ``max(4k, 100)`` candidates per list exactly, so this is the recall its exact re-scoring
can reach.

Example:
    >>> target = RecallTarget(recall=0.99)
    >>> auto_nlists(1_000_000, TRAIN_PER_LIST)[:2]
    [4096, 8192]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from nmodal.index.factory import (
    FLAT_MAX_ARTIFACTS,
    TRAIN_PER_LIST,
    choose_factory,
    components,
    id_map_of,
    search_parameters,
)

#: knob values tried, in this order, until the target is reached
EF_SEARCH_GRID = (16, 32, 64, 128, 256, 512, 1024)
MAX_NLIST = 65_536


@dataclass(frozen=True)
class RecallTarget:
    """What the build-time measurement aims for, and how much it measures."""

    #: mean recall of the exact top ``k`` among the index's ``candidates``
    recall: float = 0.99
    k: int = 10
    candidates: int = 100
    #: held-out queries per modality
    queries: int = 300
    #: at most this many candidate IVF sizes are built per modality
    max_builds: int = 3
    seed: int = 0


DEFAULT_TARGET = RecallTarget()


def recorded_target(report: Mapping[str, Any]) -> RecallTarget:
    """The target a manifest's ``tuning`` entry was measured against."""
    names = RecallTarget.__dataclass_fields__
    return RecallTarget(**{name: report[name] for name in names if name in report})


def auto_nlists(n: int, per_list: int = TRAIN_PER_LIST) -> list[int]:
    """Candidate IVF list counts for ``n`` vectors, smallest first: powers of two from about
    ``4 sqrt(n)``, never more than ``n // per_list`` (each list needs training vectors)."""
    top = min(MAX_NLIST, max(1, n // per_list))
    start = 2 ** round(math.log2(4 * math.sqrt(max(n, 1))))
    out: list[int] = []
    nlist = min(start, top)
    while nlist <= top and len(out) < 8:
        out.append(int(nlist))
        nlist *= 2
    return out or [max(1, top)]


def auto_factories(n: int, dim: int) -> list[str]:
    """Candidate approximate factories for a modality of ``n`` vectors, cheapest first: the
    codec :func:`nmodal.index.factory.choose_factory` picks by size, the sizes of
    :func:`auto_nlists`."""
    codec = choose_factory(n, total_artifacts=FLAT_MAX_ARTIFACTS + 1, dim=dim).split(",", 1)[1]
    return [f"IVF{nlist},{codec}" for nlist in auto_nlists(n, TRAIN_PER_LIST)]


def held_out_queries(
    emb: Mapping[str, np.ndarray],
    present: Mapping[str, np.ndarray],
    modality: str,
    count: int,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, vectors)``: ``count`` random posts (at most a quarter of them: the rest train
    the index) that have ``modality`` and, for each, the vector of another modality it has
    (picked at random; its own when it has no other)."""
    rng = np.random.default_rng([seed, sum(map(ord, modality))])
    candidates = np.flatnonzero(present[modality])
    size = min(count, max(1, len(candidates) // 4))
    rows = np.sort(rng.choice(candidates, size, replace=False))
    others = [m for m in emb if m != modality]
    vectors = np.empty((len(rows), emb[modality].shape[1]), dtype=np.float32)
    for i, row in enumerate(rows.tolist()):
        have = [m for m in others if present[m][row]]
        source = have[int(rng.integers(len(have)))] if have else modality
        vectors[i] = emb[source][row]
    return rows, vectors


def exact_neighbours(
    emb: np.ndarray, rows: np.ndarray, queries: np.ndarray, k: int, chunk: int = 65_536
) -> np.ndarray:
    """``(Q, k)`` post numbers of the ``k`` rows (of ``rows``) with the largest inner product
    with each query, by brute force over ``emb`` in chunks (``emb`` may be a memory map)."""
    q = np.ascontiguousarray(queries, dtype=np.float32)
    best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), 0), dtype=np.int64)
    for start in range(0, len(rows), chunk):
        ids = rows[start : start + chunk]
        sims = q @ np.asarray(emb[ids], dtype=np.float32).T
        s = np.concatenate([best_s, sims], axis=1)
        i = np.concatenate([best_i, np.broadcast_to(ids, sims.shape)], axis=1)
        keep = np.argpartition(-s, min(k, s.shape[1]) - 1, axis=1)[:, :k]
        best_s = np.take_along_axis(s, keep, axis=1)
        best_i = np.take_along_axis(i, keep, axis=1)
    return best_i


def measured_recall(
    index: Any, queries: np.ndarray, truth: np.ndarray, knobs: Mapping[str, Any], candidates: int
) -> float:
    """Mean fraction of each row of ``truth`` among the index's top ``candidates``."""
    params, _keep = search_parameters(index, knobs, None, id_map_of(index))
    kk = min(candidates, int(index.ntotal))
    _, found = index.search(np.ascontiguousarray(queries), kk, params=params)
    hits = [len(set(t.tolist()) & set(f.tolist())) for t, f in zip(truth, found, strict=True)]
    return float(np.mean(hits) / truth.shape[1]) if len(hits) else 1.0


def _cost(index: Any, knob: str | None, value: int | None) -> float:
    """Vectors compared per query (IVF: centroids + the visited lists' share; HNSW: efSearch)."""
    parts = components(index)
    if knob == "nprobe" and value is not None:
        nlist = int(parts["ivf"].nlist)
        return float(nlist + min(value, nlist) * index.ntotal / nlist)
    if knob == "efSearch" and value is not None:
        return float(value)
    return float(index.ntotal)


def knob_curve(
    index: Any,
    queries: np.ndarray,
    truth: np.ndarray,
    target: RecallTarget,
    fixed: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(chosen knobs, curve)``: the smallest value of ``index``'s search knob (IVF nprobe
    doubling from 1, HNSW efSearch over ``EF_SEARCH_GRID``) whose recall reaches the target,
    or the last one tried. ``fixed`` knobs are not tuned, only measured."""
    fixed = dict(fixed or {})
    parts = components(index)
    knob = "nprobe" if "ivf" in parts else "efSearch" if "hnsw" in parts else None
    if knob is None or knob in fixed:
        r = measured_recall(index, queries, truth, fixed, target.candidates)
        value = fixed.get(knob) if knob else None
        point = {knob: value} if knob else {}
        return dict(fixed), [{**point, "recall": round(r, 4), "cost": _cost(index, knob, value)}]
    if knob == "nprobe":
        nlist = int(parts["ivf"].nlist)
        grid = [2**i for i in range(int(math.log2(nlist)) + 1)]
        if grid[-1] != nlist:
            grid.append(nlist)
    else:
        grid = list(EF_SEARCH_GRID)
    curve: list[dict[str, Any]] = []
    for value in grid:
        r = measured_recall(index, queries, truth, {**fixed, knob: value}, target.candidates)
        curve.append({knob: value, "recall": round(r, 4), "cost": _cost(index, knob, value)})
        if r >= target.recall:
            break
    return {**fixed, knob: curve[-1][knob]}, curve


@dataclass
class Tuned:
    """The index chosen for one modality, its search defaults and the measurement."""

    index: Any
    factory: str
    knobs: dict[str, Any]
    report: dict[str, Any]


def tune(
    factories: Sequence[str],
    build: Callable[[str], Any],
    queries: np.ndarray,
    truth: np.ndarray,
    target: RecallTarget,
    fixed: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Tuned:
    """Build the candidate ``factories`` in turn (``build(factory)`` -> a filled index), tune
    each one's knob, keep the cheapest that reaches the target (else the best recall).

    A larger candidate is built only while the last one missed the target or needed more
    than 1/32 of its lists, and at most ``target.max_builds`` are built.
    """
    best: Tuned | None = None
    curve: list[dict[str, Any]] = []
    for built, factory in enumerate(factories):
        if built >= target.max_builds:
            break
        index = build(factory)
        knobs, points = knob_curve(index, queries, truth, target, fixed)
        curve.extend({"factory": factory, **p} for p in points)
        last = points[-1]
        if progress is not None:
            progress(f"{factory}: recall {last['recall']} at {knobs}")
        met = last["recall"] >= target.recall
        candidate = Tuned(index, factory, knobs, {"recall": last["recall"], "cost": last["cost"]})
        if best is None or _better(candidate.report, best.report, target.recall):
            best = candidate
        ivf = components(index).get("ivf")
        if met and (ivf is None or knobs.get("nprobe", 1) <= max(1, int(ivf.nlist) // 32)):
            break
    assert best is not None, "no factory to build"
    report = {
        **asdict(target),
        "metric": f"recall of the exact top {target.k} among {target.candidates} candidates",
        "chosen": {"factory": best.factory, **best.knobs, **best.report},
        "met": best.report["recall"] >= target.recall,
        "curve": curve,
    }
    best.report = report
    return best


def _better(a: Mapping[str, Any], b: Mapping[str, Any], goal: float) -> bool:
    """Whether measurement ``a`` beats ``b``: reaching the goal first, then cost, then recall."""
    a_met, b_met = a["recall"] >= goal, b["recall"] >= goal
    if a_met != b_met:
        return a_met
    if a_met:
        return bool(a["cost"] < b["cost"])
    return bool(a["recall"] > b["recall"])
