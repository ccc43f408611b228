"""Slow, loop-based reference implementations of the N-modal losses.

Written independently of ``nmodal.losses``: explicit Python loops over modality pairs,
rows, triples and candidate tuples, one scalar at a time, straight from the formulas (the
paper, DESIGN.md, and for the losses beyond the paper their authors' papers: Symile,
GRAM, SigLIP, ImageBind). The tests under ``tests/losses/`` compare the vectorised losses
with them; ``bench/bench_losses.py`` times :func:`published_triplet_loop` (the authors'
27·B scalar calls per batch); ``tests.helpers.reference`` reuses the masked loops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import product

import torch


def rows(z: torch.Tensor) -> list[list[float]]:
    return [[float(v) for v in row] for row in z.detach().double()]


def dot(x: Sequence[float], y: Sequence[float]) -> float:
    return sum(a * b for a, b in zip(x, y, strict=True))


def unit(x: Sequence[float]) -> list[float]:
    n = math.sqrt(dot(x, x))
    return [v / n for v in x]


def log_softmax_at(values: Sequence[float], k: int) -> float:
    top = max(values)
    return values[k] - top - math.log(sum(math.exp(v - top) for v in values))


def mip(*vectors: Sequence[float]) -> float:
    """Multilinear inner product sum_d prod_m v_m[d]."""
    total = 0.0
    for d in range(len(vectors[0])):
        p = 1.0
        for v in vectors:
            p *= v[d]
        total += p
    return total


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


def volume(vectors: Sequence[Sequence[float]], eps: float = 1e-8) -> float:
    """sqrt(max(det G, eps)) of the vectors' Gram matrix G (the parallelotope's volume)."""
    gram = [[dot(u, v) for v in vectors] for u in vectors]
    return math.sqrt(max(determinant(gram), eps))


def _prepare(embeddings, normalize):
    mats = [rows(z) for z in embeddings]
    return [[unit(r) for r in m] for m in mats] if normalize else mats


def _masks(masks, num, batch):
    if masks is None:
        return [[True] * batch for _ in range(num)]
    return [[bool(v) for v in m] for m in masks]


def _complete(mats, pres):
    items = [i for i in range(len(mats[0])) if all(p[i] for p in pres)]
    return [[m[i] for i in items] for m in mats]


def smoothed_ce(logits: Sequence[float], k: int, smoothing: float = 0.0) -> float:
    """Cross-entropy of one row against target k with label smoothing: the target is
    (1 - smoothing) on k plus smoothing / C spread over all C classes."""
    c = len(logits)
    logp = [log_softmax_at(logits, n) for n in range(c)]
    return -(1 - smoothing) * logp[k] - smoothing / c * sum(logp)


# ---------------------------------------------------------------- clip


def clip_identity_loop(
    embeddings: Sequence[torch.Tensor], temperature: float, normalize: bool = True
) -> float:
    """Mean over pairs a < b of (CE(rows) + CE(cols)) / 2 with identity targets, as loops."""
    mats = [rows(z) for z in embeddings]
    if normalize:
        mats = [[unit(r) for r in m] for m in mats]
    batch = len(mats[0])
    pair_losses = []
    for a in range(len(mats)):
        for b in range(a + 1, len(mats)):
            logits = [
                [dot(mats[a][i], mats[b][j]) / temperature for j in range(batch)]
                for i in range(batch)
            ]
            row_ce = -sum(log_softmax_at(logits[i], i) for i in range(batch)) / batch
            col_ce = (
                -sum(log_softmax_at([logits[k][j] for k in range(batch)], j) for j in range(batch))
                / batch
            )
            pair_losses.append((row_ce + col_ce) / 2)
    return sum(pair_losses) / len(pair_losses)


def clip_soft_loop(
    embeddings: Sequence[torch.Tensor], temperature: float = 1.0, normalize: bool = False
) -> float:
    """The published code's soft-target N-modal CLIP loss, written out as loops.

    Per pair ``a < b``: ``logits = Z_a Z_b^T / tau``; ``targets = softmax((S_a + S_b) / 2 * tau)``
    row-wise with ``S_m = Z_m Z_m^T``; ``rows_i = -sum_j T[i][j] log_softmax(logits[i])[j]``;
    ``cols_i = -sum_j T[j][i] log_softmax(logits[:, i])[j]`` (transposed targets, not
    renormalised). Result: the mean over the ``2 * pairs`` directional terms and the batch.
    """
    mats = [rows(z) for z in embeddings]
    if normalize:
        mats = [[unit(r) for r in m] for m in mats]
    batch = len(mats[0])
    total, directional_terms = 0.0, 0
    for a in range(len(mats)):
        for b in range(a + 1, len(mats)):
            logits = [
                [dot(mats[a][i], mats[b][j]) / temperature for j in range(batch)]
                for i in range(batch)
            ]
            targets = []
            for i in range(batch):
                sims = [
                    (dot(mats[a][i], mats[a][j]) + dot(mats[b][i], mats[b][j])) / 2 * temperature
                    for j in range(batch)
                ]
                targets.append([math.exp(log_softmax_at(sims, j)) for j in range(batch)])
            row_ce = 0.0
            for i in range(batch):
                row_ce -= sum(targets[i][j] * log_softmax_at(logits[i], j) for j in range(batch))
            col_ce = 0.0
            for i in range(batch):
                column = [logits[k][i] for k in range(batch)]
                col_ce -= sum(targets[j][i] * log_softmax_at(column, j) for j in range(batch))
            total += row_ce / batch + col_ce / batch
            directional_terms += 2
    return total / directional_terms


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


# ---------------------------------------------------------------- triplet


def published_triplet_loop(
    embeddings: Sequence[torch.Tensor], alpha: float = 0.001
) -> torch.Tensor:
    """The authors' N-modal triplet loss: M^3 * B scalar soft-margin calls, Euclidean, cyclic.

    Differentiable (torch scalar ops), so the benchmark can time forward + backward;
    ``torch.dist`` has gradient 0 at distance 0 (anchor modality == positive modality).
    """
    batch = embeddings[0].shape[0]
    total = embeddings[0].new_zeros(())
    for i in range(batch):
        for anchor in embeddings:
            for positive in embeddings:
                for negative in embeddings:
                    d_ap = torch.dist(anchor[i], positive[i])
                    d_an = torch.dist(anchor[i], negative[(i + 1) % batch])
                    total = total + torch.log(1 + torch.exp(d_ap - d_an))
    return alpha * total


def _distance(x: torch.Tensor, y: torch.Tensor, distance: str) -> torch.Tensor:
    if distance == "cosine":
        return 1 - torch.dot(x, y) / (torch.linalg.vector_norm(x) * torch.linalg.vector_norm(y))
    return torch.linalg.vector_norm(x - y)


def triplet_loop(
    embeddings: Sequence[torch.Tensor],
    margin: float | None = None,
    distance: str = "euclidean",
    negatives: str = "cyclic",
    alpha: float = 0.001,
    reduction: str = "sum",
    include_same_modality: bool = True,
) -> torch.Tensor:
    """Every option of the N-modal triplet loss, one (i, a, p, q[, j]) term at a time.

    Negatives: cyclic ``j = i + 1 mod B``; hardest = smallest ``d(a_i, q_j)``, ``j != i``;
    semihard = smallest ``d_an`` with ``d_an > d_ap``, else the largest ``d_an``; all = every
    ``j != i`` as its own term. Not meant for gradients (no safe sqrt at 0).
    """
    batch = embeddings[0].shape[0]
    num = len(embeddings)
    terms: list[torch.Tensor] = []
    for i in range(batch):
        others = [j for j in range(batch) if j != i]
        for a in range(num):
            for p in range(num):
                if a == p and not include_same_modality:
                    continue
                d_ap = _distance(embeddings[a][i], embeddings[p][i], distance)
                for q in range(num):
                    cand = {
                        j: _distance(embeddings[a][i], embeddings[q][j], distance) for j in others
                    }
                    if negatives == "cyclic":
                        chosen = [cand[(i + 1) % batch]]
                    elif negatives == "hardest":
                        chosen = [min(cand.values(), key=torch.Tensor.item)]
                    elif negatives == "semihard":
                        farther = [d for d in cand.values() if d.item() > d_ap.item()]
                        if farther:
                            chosen = [min(farther, key=torch.Tensor.item)]
                        else:
                            chosen = [max(cand.values(), key=torch.Tensor.item)]
                    elif negatives == "all":
                        chosen = list(cand.values())
                    else:
                        raise ValueError(negatives)
                    for d_an in chosen:
                        x = d_ap - d_an
                        if margin is None:
                            terms.append(torch.log1p(torch.exp(x)))
                        else:
                            terms.append(torch.clamp(x + margin, min=0))
    total = torch.stack(terms).sum()
    if reduction == "mean":
        total = total / len(terms)
    return alpha * total


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


# ---------------------------------------------------------------- siglip


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


# ---------------------------------------------------------------- symile


def symile_candidates(batch, num, anchor, i, negative_sampling):
    """Candidate tuples for anchor item i, as lists of (modality, item) pairs, and the
    index of the positive among them (Symile paper / package and nmodal's extra modes)."""
    others = [m for m in range(num) if m != anchor]
    if negative_sampling == "n" or num == 2:
        # nmodal's fixed shifts: k-th non-anchor modality of candidate j is item j + k
        cands = [
            [(m, i if j == i else (j + k) % batch) for k, m in enumerate(others)]
            for j in range(batch)
        ]
        return [cands], [i]
    if negative_sampling == "n_squared":  # every combination of the non-anchor items
        cands = [
            list(zip(others, combo, strict=True))
            for combo in product(range(batch), repeat=len(others))
        ]
        return [cands], [cands.index([(m, i) for m in others])]
    # n_squared_tied: one free modality s at item j, the others tied at item k
    splits = others if num > 3 else others[:1]
    groups, positives = [], []
    for s in splits:
        cands = [
            [(m, j if m == s else k) for m in others] for j in range(batch) for k in range(batch)
        ]
        groups.append(cands)
        positives.append(i * batch + i)
    return groups, positives


def symile_loop(embeddings, temperature, negative_sampling="n", masks=None, normalize=True):
    """Mean over anchors (and complete items) of the cross-entropy of MIP logits over the
    candidate tuples of :func:`symile_candidates` (averaged over the candidate groups)."""
    mats = _prepare(embeddings, normalize)
    mats = _complete(mats, _masks(masks, len(mats), len(mats[0])))
    num, batch = len(mats), len(mats[0])
    if batch < 2:
        return 0.0
    per_anchor = []
    for a in range(num):
        ce = 0.0
        for i in range(batch):
            groups, positives = symile_candidates(batch, num, a, i, negative_sampling)
            for cands, pos in zip(groups, positives, strict=True):
                logits = [
                    mip(mats[a][i], *[mats[m][j] for m, j in cand]) / temperature for cand in cands
                ]
                ce -= log_softmax_at(logits, pos) / len(groups)
        per_anchor.append(ce / batch)
    return sum(per_anchor) / num


# ---------------------------------------------------------------- gram


def gram_volumes(mats, anchor=0):
    """V[i][j] = Vol(anchor item i, every other modality's item j)."""
    batch = len(mats[0])
    others = [m for m in range(len(mats)) if m != anchor]
    return [
        [volume([mats[anchor][i], *[mats[m][j] for m in others]]) for j in range(batch)]
        for i in range(batch)
    ]


def gram_loop(
    embeddings, temperature, anchor=0, masks=None, normalize=True, label_smoothing=0.0
) -> float:
    """GRAM's contrastive loss (Cicchetti et al., 2025): (L_D2A + L_A2D) / 2 with logits
    -Vol(anchor_i, others_j) / tau, over the complete items; L_D2A: each anchor item picks
    its tuple (rows), L_A2D: each tuple its anchor item (columns)."""
    mats = _prepare(embeddings, normalize)
    mats = _complete(mats, _masks(masks, len(mats), len(mats[0])))
    batch = len(mats[0])
    if batch < 2:
        return 0.0
    vol = gram_volumes(mats, anchor)
    logits = [[-vol[i][j] / temperature for j in range(batch)] for i in range(batch)]
    d2a = sum(smoothed_ce(logits[i], i, label_smoothing) for i in range(batch)) / batch
    a2d = (
        sum(
            smoothed_ce([logits[k][j] for k in range(batch)], j, label_smoothing)
            for j in range(batch)
        )
        / batch
    )
    return (d2a + a2d) / 2


# ---------------------------------------------------------------- fixed peer inputs

PEER_BASE = [[1.0, 0.0, 0.5], [0.0, 1.0, -0.5], [0.6, 0.8, 0.0], [0.3, -0.2, 0.9]]


def peer_inputs(num: int) -> list[torch.Tensor]:
    """Fixed float64 inputs the peers' values were computed on: modality m's row i is
    PEER_BASE[i] + 0.3 m PEER_BASE[i + 1 mod 4]."""
    base = torch.tensor(PEER_BASE, dtype=torch.float64)
    return [base + 0.3 * m * base.roll(-1, dims=0) for m in range(num)]
