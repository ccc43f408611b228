"""Post-level cross-modal retrieval, as in the paper (Fig. 2, Tables 2-5).

A query is one artifact (post ``i``, modality ``q``). Every post ``j`` of the population is
scored by the **sum of cosine similarities between the query and post j's artifacts in the
other modalities**; the query's own modality is never a candidate. A hit@K is when post
``i`` is among the K best-scoring posts. Because the sum of dot products equals the dot
product with the sum, a query modality costs one ``(Q, D) x (D, P)`` product against
``sum_{m != q} E_m``. Posts lacking an artifact are scored over the artifacts they have
(absent rows count zero); absent artifacts are never queries.

Missing artifacts: posts are scored over the artifacts they have, as above; a query is
only ever a present artifact. (``evaluate_model`` evaluates the posts having at least two of
the modalities; the search index, :mod:`nmodal.index.scoring`, follows the same rule.)

Other scoring rules (``scoring=``), to match losses beyond the paper:

* ``"sum"`` (default, the paper's): the sum of cosine similarities, as above;
* ``"symile"``: Symile's multilinear inner product of the query with the post's artifacts
  in the candidate modalities, ``MIP(q, e_b[j], e_c[j], ...) = sum_d q_d e_b[j]_d e_c[j]_d``
  (for three modalities one product; with one candidate modality, the cosine). An absent
  artifact is left out of the product; a post with none scores 0;
* ``"gram"``: GRAM's negative volume ``-sqrt(det G)`` of the parallelotope spanned by the
  query and the post's artifacts in the candidate modalities (``G`` their Gram matrix,
  unit vectors): a smaller volume ranks higher. Absent artifacts are left out of the
  tuple; a post with none scores ``-1`` (the volume of the query alone).

:func:`matched_scoring` gives the rule that matches a loss name.

Ranks are pessimistic about ties: ``rank = 1 + #(posts scoring strictly higher)`` plus
the number of *other* posts scoring exactly the same, so degenerate embeddings cannot
score a hit by luck of ordering.

Example:
    >>> z = np.random.default_rng(0).normal(size=(100, 32))
    >>> post_retrieval_recall([z, z, z])  # a post's artifacts coincide: perfect retrieval
    {1: 1.0, 5: 1.0, 10: 1.0, 25: 1.0}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from nmodal.errors import InputError

DEFAULT_KS = (1, 5, 10, 25)
SCORINGS = ("sum", "symile", "gram")
ArrayLike = np.ndarray | torch.Tensor
GRAM_CHUNK_ELEMENTS = 1 << 24  # bound on (queries x posts x k x k) Gram entries per chunk
SCORE_CHUNK_ELEMENTS = 1 << 24  # bound on (queries x posts) scores per chunk (64 MB float32)


def matched_scoring(loss: str) -> str:
    """The scoring rule matching a loss: ``"symile"`` and ``"gram"`` for those losses,
    ``"sum"`` for the pairwise ones (clip, triplet, anchor, siglip)."""
    return loss if loss in ("symile", "gram") else "sum"


def _scorer(
    mats: list[np.ndarray], masks: list[np.ndarray], others: list[int], scoring: str
) -> Callable[[np.ndarray], np.ndarray]:
    """``(Q, D)`` unit query vectors -> ``(Q, P)`` scores of every post (higher is better)."""
    if scoring == "sum":
        target = np.sum([mats[c] for c in others], axis=0)  # (P, D)
        return lambda q: q @ target.T
    if scoring == "symile":
        ones = np.ones((), dtype=mats[0].dtype)
        product = np.prod([np.where(masks[c][:, None], mats[c], ones) for c in others], axis=0)
        has_any = np.any([masks[c] for c in others], axis=0)
        product[~has_any] = 0
        return lambda q: q @ product.T
    # gram: G = [[q.q, q.e_c], [e_c.q, e_c.e_d]]; an absent e_c gets a unit row/column
    # orthogonal to the rest, which leaves the determinant unchanged.
    k = len(others) + 1
    cand = np.stack([mats[c] for c in others])  # (R, P, D), absent rows zero
    absent = ~np.stack([masks[c] for c in others])  # (R, P)
    inner = np.einsum("rpd,spd->prs", cand, cand)  # (P, R, R)
    inner[:, np.arange(k - 1), np.arange(k - 1)] += absent.T  # absent: e.e = 1

    def gram_scores(q: np.ndarray) -> np.ndarray:
        cross = np.einsum("qd,rpd->qpr", q, cand)  # (Q, P, R), 0 for absent
        g = np.empty((len(q), cand.shape[1], k, k), dtype=q.dtype)
        g[..., 0, 0] = 1.0
        g[..., 0, 1:] = cross
        g[..., 1:, 0] = cross
        g[..., 1:, 1:] = inner[None]
        return -np.sqrt(np.clip(np.linalg.det(g), 0.0, None))

    return gram_scores


def _as_matrix(x: ArrayLike, name: str) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim != 2:
        raise InputError(f"{name}: expected a (P, D) matrix, got shape {a.shape}")
    return a.astype(np.float64 if a.dtype == np.float64 else np.float32, copy=False)


def _prepare(
    embeddings: Sequence[ArrayLike],
    present: Sequence[np.ndarray] | None,
    names: Sequence[str] | None,
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    if len(embeddings) < 2:
        raise InputError(f"retrieval needs at least two modalities, got {len(embeddings)}")
    names = list(names) if names is not None else [f"m{i}" for i in range(len(embeddings))]
    if len(names) != len(embeddings):
        raise InputError("names must have one entry per modality")
    mats = [_as_matrix(e, n) for e, n in zip(embeddings, names, strict=True)]
    p, d = mats[0].shape
    for m, n in zip(mats, names, strict=True):
        if m.shape != (p, d):
            raise InputError(
                f"modality {n!r} has shape {m.shape}, modality {names[0]!r} has {(p, d)}: "
                "row i of every modality must belong to post i"
            )
    masks = (
        [np.ones(p, dtype=bool) for _ in mats]
        if present is None
        else [np.asarray(x, dtype=bool) for x in present]
    )
    if len(masks) != len(mats) or any(x.shape != (p,) for x in masks):
        raise InputError("present must hold one (P,) boolean mask per modality")
    normed = []
    for m, mask, n in zip(mats, masks, names, strict=True):
        rows = m[mask]
        if not np.isfinite(rows).all():
            raise InputError(f"modality {n!r}: embeddings contain NaN or inf")
        norms = np.linalg.norm(m, axis=1, keepdims=True)
        if (norms[mask] == 0).any():
            raise InputError(f"modality {n!r}: a present embedding has zero norm")
        out = np.where(mask[:, None], m / np.where(norms == 0, 1, norms), 0).astype(m.dtype)
        normed.append(out)
    return normed, masks, names


def _ranks(scores: np.ndarray, true_cols: np.ndarray) -> np.ndarray:
    """1-based pessimistic ranks of ``scores[r, true_cols[r]]`` within each row."""
    true = scores[np.arange(len(true_cols)), true_cols][:, None]
    higher_or_tied = (scores >= true).sum(axis=1)
    return higher_or_tied.astype(np.int64)  # counts the true post itself once


def _select_queries(masks: list[np.ndarray], queries: str | int, seed: int) -> list[np.ndarray]:
    """Per modality, the post indices used as queries."""
    all_q = [np.flatnonzero(m) for m in masks]
    if queries == "all":
        return all_q
    if not isinstance(queries, int) or queries < 1:
        raise InputError(f"queries must be 'all' or a positive int, got {queries!r}")
    pool = np.concatenate([np.stack([np.full(len(q), i), q], 1) for i, q in enumerate(all_q)])
    rng = np.random.default_rng(seed)
    pick = pool[rng.choice(len(pool), size=queries, replace=queries > len(pool))]
    return [np.sort(pick[pick[:, 0] == i, 1]) for i in range(len(masks))]


def retrieval_ranks(
    embeddings: Sequence[ArrayLike],
    present: Sequence[np.ndarray] | None = None,
    queries: str | int = "all",
    seed: int = 0,
    chunk_size: int = 4096,
    names: Sequence[str] | None = None,
    candidates: Sequence[int] | None = None,
    scoring: str = "sum",
) -> dict[str, Any]:
    """Rank of the true post for every query, grouped by query modality.

    ``candidates`` restricts the modalities a query is compared with (default: all others);
    the query's own modality is always excluded. ``scoring``: ``"sum"``, ``"symile"`` or
    ``"gram"`` (see the module doc). Returns ``{"ranks": {name: (Q,) ints},
    "posts": {name: (Q,) query post indices}, "population": P}``.
    """
    if scoring not in SCORINGS:
        raise InputError(f"unknown scoring {scoring!r}; use one of {list(SCORINGS)}")
    mats, masks, names = _prepare(embeddings, present, names)
    cand = list(range(len(mats))) if candidates is None else list(candidates)
    query_posts = _select_queries(masks, queries, seed)
    ranks: dict[str, np.ndarray] = {}
    posts: dict[str, np.ndarray] = {}
    for q, name in enumerate(names):
        others = [c for c in cand if c != q]
        qp = query_posts[q]
        posts[name] = qp
        if not others or len(qp) == 0:
            ranks[name] = np.zeros(0, dtype=np.int64)
            continue
        score = _scorer(mats, masks, others, scoring)
        # queries per chunk: at most chunk_size, and a (chunk, P) score matrix of bounded
        # size however large the population (the ranks do not depend on the chunking)
        step = max(1, min(chunk_size, SCORE_CHUNK_ELEMENTS // max(1, len(mats[0]))))
        if scoring == "gram":
            step = max(1, min(chunk_size, GRAM_CHUNK_ELEMENTS // (len(mats[0]) * len(mats) ** 2)))
        out = []
        for start in range(0, len(qp), step):
            rows = qp[start : start + step]
            out.append(_ranks(score(mats[q][rows]), rows))
        ranks[name] = np.concatenate(out)
    return {"ranks": ranks, "posts": posts, "population": len(mats[0])}


def _recall(ranks: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
    if len(ranks) == 0:
        return {k: float("nan") for k in ks}
    return {k: float((ranks <= k).mean()) for k in ks}


def post_retrieval_recall(
    embeddings: Sequence[ArrayLike],
    ks: Sequence[int] = DEFAULT_KS,
    queries: str | int = "all",
    seed: int = 0,
    present: Sequence[np.ndarray] | None = None,
    scoring: str = "sum",
) -> dict[int, float]:
    """Recall@K of post-level cross-modal retrieval (the paper's protocol).

    ``embeddings``: one ``(P, D)`` array or tensor per modality; row ``i`` of every modality
    belongs to post ``i``. ``queries="all"`` queries every artifact once; an int draws that
    many random artifacts (the paper: 300). ``scoring``: see the module doc. Returns
    ``{K: recall}`` as fractions.
    """
    result = retrieval_ranks(
        embeddings, present=present, queries=queries, seed=seed, scoring=scoring
    )
    all_ranks = np.concatenate(list(result["ranks"].values()))
    return _recall(all_ranks, ks)


def retrieval_report(
    embeddings: Sequence[ArrayLike],
    names: Sequence[str],
    ks: Sequence[int] = DEFAULT_KS,
    queries: str | int = "all",
    seed: int = 0,
    present: Sequence[np.ndarray] | None = None,
    scoring: str = "sum",
) -> dict[str, Any]:
    """Recall@K overall, by query modality and by (query -> candidate) modality pair,
    plus mean and median rank. Keys of recall dicts are strings of K (JSON-ready)."""
    names = list(names)
    base = retrieval_ranks(
        embeddings, present=present, queries=queries, seed=seed, names=names, scoring=scoring
    )
    all_ranks = np.concatenate(list(base["ranks"].values()))

    def fmt(r: dict[int, float]) -> dict[str, float]:
        return {str(k): v for k, v in r.items()}

    by_pair: dict[str, dict[str, float]] = {}
    for c, cname in enumerate(names):
        pair = retrieval_ranks(
            embeddings,
            present=present,
            queries=queries,
            seed=seed,
            names=names,
            candidates=[c],
            scoring=scoring,
        )
        for qname, r in pair["ranks"].items():
            if qname != cname:
                by_pair[f"{qname}->{cname}"] = fmt(_recall(r, ks))
    return {
        "recall": fmt(_recall(all_ranks, ks)),
        "by_query_modality": {n: fmt(_recall(r, ks)) for n, r in base["ranks"].items()},
        "by_pair": by_pair,
        "mean_rank": float(all_ranks.mean()) if len(all_ranks) else float("nan"),
        "median_rank": float(np.median(all_ranks)) if len(all_ranks) else float("nan"),
        "num_queries": len(all_ranks),
        "population": base["population"],
        "chance": {str(k): min(1.0, k / base["population"]) for k in ks},
        "scoring": scoring,
    }
