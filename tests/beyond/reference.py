"""Slow, loop-based references for the losses and scoring rules beyond the paper.

Written from the formulas (module docs of nmodal.losses.{clip,triplet,anchor,siglip,symile,
gram} and nmodal.retrieval), one scalar at a time in Python floats, independent
of the vectorised code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def rows(z: torch.Tensor) -> list[list[float]]:
    return [[float(v) for v in row] for row in z.detach().double()]


def dot(x: Sequence[float], y: Sequence[float]) -> float:
    return sum(a * b for a, b in zip(x, y, strict=True))


def unit(x: Sequence[float]) -> list[float]:
    n = math.sqrt(dot(x, x))
    return [v / n for v in x]


def mip(*vectors: Sequence[float]) -> float:
    """Multilinear inner product sum_d prod_m v_m[d]."""
    total = 0.0
    for d in range(len(vectors[0])):
        p = 1.0
        for v in vectors:
            p *= v[d]
        total += p
    return total


def log_softmax_at(values: Sequence[float], k: int) -> float:
    top = max(values)
    return values[k] - top - math.log(sum(math.exp(v - top) for v in values))


def softmax(values: Sequence[float]) -> list[float]:
    return [math.exp(log_softmax_at(values, k)) for k in range(len(values))]


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def determinant(matrix: list[list[float]]) -> float:
    """Determinant by Gaussian elimination with partial pivoting."""
    a = [row[:] for row in matrix]
    n, det = len(a), 1.0
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(a[r][c]))
        if a[p][c] == 0:
            return 0.0
        if p != c:
            a[c], a[p] = a[p], a[c]
            det = -det
        det *= a[c][c]
        for r in range(c + 1, n):
            f = a[r][c] / a[c][c]
            for k in range(c, n):
                a[r][k] -= f * a[c][k]
    return det


def volume(vectors: Sequence[Sequence[float]]) -> float:
    gram = [[dot(u, v) for v in vectors] for u in vectors]
    return math.sqrt(max(determinant(gram), 1e-8))


def _prepare(embeddings, normalize):
    mats = [rows(z) for z in embeddings]
    return [[unit(r) for r in m] for m in mats] if normalize else mats


def _masks(masks, num, batch):
    if masks is None:
        return [[True] * batch for _ in range(num)]
    return [[bool(v) for v in m] for m in masks]


def pair_clip_loop(
    embeddings,
    pairs,
    temperature,
    masks=None,
    normalize=True,
    targets="identity",
) -> float:
    """Masked pairwise CLIP: per pair, valid items = present in both; each valid item of a
    pair with >= 2 valid items is one term (CE(row) + CE(col)) / 2; mean over all terms."""
    mats = _prepare(embeddings, normalize)
    batch = len(mats[0])
    pres = _masks(masks, len(mats), batch)
    total, count = 0.0, 0
    for a, b in pairs:
        items = [i for i in range(batch) if pres[a][i] and pres[b][i]]
        if len(items) < 2:
            continue
        logits = {(i, j): dot(mats[a][i], mats[b][j]) / temperature for i in items for j in items}
        if targets == "soft":
            soft = {}
            for i in items:
                sims = [
                    (dot(mats[a][i], mats[a][j]) + dot(mats[b][i], mats[b][j])) / 2 * temperature
                    for j in items
                ]
                for j, p in zip(items, softmax(sims), strict=True):
                    soft[i, j] = p
        for i in items:
            row = [logits[i, j] for j in items]
            col = [logits[j, i] for j in items]
            if targets == "identity":
                k = items.index(i)
                r, c = -log_softmax_at(row, k), -log_softmax_at(col, k)
            else:
                r = -sum(soft[i, j] * log_softmax_at(row, n) for n, j in enumerate(items))
                c = -sum(soft[j, i] * log_softmax_at(col, n) for n, j in enumerate(items))
            total += (r + c) / 2
            count += 1
    return total / count if count else 0.0


def all_pairs(num: int) -> list[tuple[int, int]]:
    return [(a, b) for a in range(num) for b in range(a + 1, num)]


def siglip_loop(embeddings, temperature, bias, masks=None, normalize=True) -> float:
    """Sum over pairs a < b and valid (i, j) of -log sigmoid(+-(<a_i, b_j> / tau + bias)),
    divided by the total number of valid items over pairs."""
    mats = _prepare(embeddings, normalize)
    batch = len(mats[0])
    pres = _masks(masks, len(mats), batch)
    total, count = 0.0, 0
    for a, b in all_pairs(len(mats)):
        items = [i for i in range(batch) if pres[a][i] and pres[b][i]]
        count += len(items)
        for i in items:
            for j in items:
                label = 1.0 if i == j else -1.0
                total -= log_sigmoid(label * (dot(mats[a][i], mats[b][j]) / temperature + bias))
    return total / count if count else 0.0


def _complete(mats, pres):
    items = [i for i in range(len(mats[0])) if all(p[i] for p in pres)]
    return [[m[i] for i in items] for m in mats]


def symile_loop(embeddings, temperature, negative_sampling="n", masks=None, normalize=True):
    """Mean over anchors of the cross-entropy of MIP logits (see SymileLoss's doc)."""
    mats = _prepare(embeddings, normalize)
    mats = _complete(mats, _masks(masks, len(mats), len(mats[0])))
    num, batch = len(mats), len(mats[0])
    if batch < 2:
        return 0.0
    per_anchor = []
    for a in range(num):
        others = [m for m in range(num) if m != a]
        ce = 0.0
        if negative_sampling == "n" or num == 2:
            for i in range(batch):
                logits = []
                for j in range(batch):
                    if j == i:
                        logits.append(mip(*[mats[m][i] for m in range(num)]) / temperature)
                    else:
                        tup = [mats[m][(j + k) % batch] for k, m in enumerate(others)]
                        logits.append(mip(mats[a][i], *tup) / temperature)
                ce -= log_softmax_at(logits, i)
            per_anchor.append(ce / batch)
            continue
        splits = others if num > 3 else others[:1]
        split_ce = []
        for s in splits:
            rest = [m for m in others if m != s]
            ce = 0.0
            for i in range(batch):
                logits = [
                    mip(mats[a][i], mats[s][j], *[mats[m][k] for m in rest]) / temperature
                    for j in range(batch)
                    for k in range(batch)
                ]
                ce -= log_softmax_at(logits, i * batch + i)
            split_ce.append(ce / batch)
        per_anchor.append(sum(split_ce) / len(split_ce))
    return sum(per_anchor) / num


def gram_loop(embeddings, temperature, anchor=0, masks=None, normalize=True) -> float:
    """Symmetric CE of logits -Vol(anchor_i, others_j) / tau over complete items."""
    mats = _prepare(embeddings, normalize)
    mats = _complete(mats, _masks(masks, len(mats), len(mats[0])))
    batch = len(mats[0])
    if batch < 2:
        return 0.0
    others = [m for m in range(len(mats)) if m != anchor]
    logits = [
        [
            -volume([mats[anchor][i], *[mats[m][j] for m in others]]) / temperature
            for j in range(batch)
        ]
        for i in range(batch)
    ]
    rows_ce = -sum(log_softmax_at(logits[i], i) for i in range(batch)) / batch
    cols_ce = (
        -sum(log_softmax_at([logits[k][j] for k in range(batch)], j) for j in range(batch)) / batch
    )
    return (rows_ce + cols_ce) / 2


def triplet_masked_loop(embeddings, masks, negatives="cyclic", reduction="sum", alpha=0.001):
    """Soft-margin Euclidean triplet terms whose anchor, positive and negative all exist."""
    mats = [rows(z) for z in embeddings]
    batch, num = len(mats[0]), len(mats)
    pres = _masks(masks, num, batch)

    def dist(x, y):
        return math.sqrt(sum((u - v) ** 2 for u, v in zip(x, y, strict=True)))

    terms = []
    for i in range(batch):
        for a in range(num):
            for p in range(num):
                if not (pres[a][i] and pres[p][i]):
                    continue
                d_ap = dist(mats[a][i], mats[p][i])
                for q in range(num):
                    if negatives == "cyclic":
                        js = [(i + 1) % batch] if pres[q][(i + 1) % batch] else []
                    else:
                        cands = [j for j in range(batch) if j != i and pres[q][j]]
                        if negatives == "hardest" and cands:
                            js = [min(cands, key=lambda j, q=q: dist(mats[a][i], mats[q][j]))]
                        else:
                            js = cands
                    for j in js:
                        x = d_ap - dist(mats[a][i], mats[q][j])
                        terms.append(math.log1p(math.exp(x)))
    total = sum(terms)
    if reduction == "mean":
        total /= max(len(terms), 1)
    return alpha * total


def score_loop(query, candidate_vectors, scoring):
    """Score of one post for one query from the post's present candidate artifacts
    (none: 0 for sum and symile, -1 = -Vol(query alone) for gram)."""
    if not candidate_vectors:
        return -1.0 if scoring == "gram" else 0.0
    if scoring == "sum":
        return sum(dot(query, v) for v in candidate_vectors)
    if scoring == "symile":
        return mip(query, *candidate_vectors)
    return -volume([query, *candidate_vectors])
