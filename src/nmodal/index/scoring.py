"""Exact post-level scores: the retrieval protocol's collation, vectorised.

A query is a set of artifacts ``(q_j, v_j)`` (one for a text/image/video/audio query, a
post's artifacts for "more like this"). Every query artifact is compared with the candidate
post's artifacts in every candidate modality, its own included (``include_same=True``, what
search does by default: a text query meets post text, a photo near-duplicate photos), or --
the paper's retrieval protocol -- in the *other* modalities only (``m != q_j``,
``include_same=False``). A post's score collates its pair similarities ``<v_j, e_m(post)>``:

- ``sum`` (the paper's rule, default): the sum over the pairs the post has. A post lacking a
  modality simply has fewer terms, so with non-negative similarities it scores lower.
- ``mean``: the mean over the pairs the post has, so posts with fewer artifacts are not
  penalised for what they lack.
- ``max``: the best pair: a post matches as well as its best-matching artifact (what
  ``nmodal search``, the API and the page use by default). A post holding an artifact
  identical to a query artifact scores 1, the most any post can, so the exact text of a post,
  or its own photo, ranks that post first whatever its other artifacts and whatever the
  other posts' scores in the other pairs (with ``sum``, a post of similar texts whose other
  artifacts happen to match better can outrank it). Same-modality cosines run higher than
  cross-modal ones, so with ``max`` a query's own modality tends to decide the ranking;
  ``sum`` weighs every artifact of a post.

A post with no pair at all (no artifact in any candidate modality) is never a result.

Example:
    >>> pairs = query_pairs(["text"], ["text", "image", "video"])
    >>> {m: js.tolist() for m, js in pairs.items()}
    {'image': [0], 'video': [0]}
    >>> {m: js.tolist() for m, js in query_pairs(["text"], ["text", "image"], True).items()}
    {'text': [0], 'image': [0]}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from nmodal.errors import InputError

COLLATIONS = ("sum", "mean", "max")


def query_pairs(
    query_modalities: Sequence[str],
    candidate_modalities: Sequence[str],
    include_same: bool = False,
) -> dict[str, np.ndarray]:
    """``{candidate modality m: indices j of the query artifacts compared with m}``."""
    qm = np.asarray(list(query_modalities), dtype=object)
    pairs: dict[str, np.ndarray] = {}
    for m in candidate_modalities:
        js = np.arange(len(qm)) if include_same else np.flatnonzero(qm != m)
        if len(js):
            pairs[m] = js
    return pairs


def pair_similarities(
    rows: np.ndarray | None,
    vectors: np.ndarray,
    pairs: Mapping[str, np.ndarray],
    emb: Mapping[str, np.ndarray],
    present: Mapping[str, np.ndarray],
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Cosine similarity of every (query artifact, candidate modality) pair for posts ``rows``.

    Returns ``(S, labels)``: ``S`` is ``(len(rows), n_pairs)`` float32 with NaN where the post
    lacks the candidate modality; ``labels[c] = (j, m)`` names column ``c``. ``rows=None``
    means every post (no gather: one matrix product per modality).
    """
    blocks: list[np.ndarray] = []
    labels: list[tuple[int, str]] = []
    for m, js in pairs.items():
        e = emb[m] if rows is None else emb[m][rows]
        p = present[m] if rows is None else present[m][rows]
        s = np.asarray(e @ vectors[js].T, dtype=np.float32)
        s[~p] = np.nan
        blocks.append(s)
        labels.extend((int(j), m) for j in js)
    n = len(present[next(iter(present))]) if rows is None else len(rows)
    sims = np.concatenate(blocks, axis=1) if blocks else np.zeros((n, 0), np.float32)
    return sims, labels


def collate(sims: np.ndarray, how: str = "sum") -> np.ndarray:
    """Post scores from pair similarities (NaN = missing pair); ``-inf`` for posts with none."""
    if how not in COLLATIONS:
        raise InputError(f"unknown collation {how!r}; choose one of {COLLATIONS}")
    valid = ~np.isnan(sims)
    count = valid.sum(axis=1)
    if how == "max":
        best = np.where(valid, sims, -np.inf).max(axis=1, initial=-np.inf)
        return best.astype(np.float64)
    total = np.where(valid, sims, 0.0).sum(axis=1, dtype=np.float64)
    if how == "mean":
        total = total / np.maximum(count, 1)
    return np.where(count > 0, total, -np.inf)


def top_k(scores: np.ndarray, k: int, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """Positions of the ``k`` best finite scores, best first; ties broken by ``tiebreak`` (asc)."""
    finite = np.flatnonzero(np.isfinite(scores))
    if len(finite) > k:
        part = np.argpartition(-scores[finite], k - 1)[:k]
        kth = scores[finite[part]].min()
        # keep every score tied with the k-th so the tie-break below is deterministic
        finite = finite[scores[finite] >= kth]
    keys = tiebreak[finite] if tiebreak is not None else finite
    order = np.lexsort((keys, -scores[finite]))
    return finite[order[:k]]


def upper_bound(thresholds: Sequence[float], how: str = "sum") -> float:
    """Best score any post outside the candidate lists can reach.

    ``thresholds`` holds, for each (query artifact, modality) pair whose candidate list was
    cut off, the similarity of its last candidate: an unlisted post's similarity in that pair
    is at most that value, or the pair is missing (no term). Pairs whose list was exhaustive
    contribute nothing (an unlisted post has no artifact there).
    """
    if not len(thresholds):
        return -np.inf
    t = np.asarray(thresholds, dtype=np.float64)
    if how == "sum":
        # best sum over any non-empty subset of the pairs (a post may lack some of them)
        positive = t[t >= 0]
        return float(positive.sum()) if len(positive) else float(t.max())
    # mean and max: every term of an unlisted post is at most the largest threshold
    return float(t.max())
