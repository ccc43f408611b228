"""Slow, loop-based reference implementations of the N-modal losses.

Written independently of ``nmodal.losses``: explicit Python loops over modality pairs,
rows and triples, one scalar at a time, straight from the formulas in DESIGN.md and the
paper. The tests compare the vectorised losses with them; ``bench/bench_losses.py``
times :func:`published_triplet_loop` (the authors' 27·B scalar calls per batch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def _rows(z: torch.Tensor) -> list[list[float]]:
    return [[float(v) for v in row] for row in z.detach().double()]


def _dot(x: Sequence[float], y: Sequence[float]) -> float:
    return sum(a * b for a, b in zip(x, y, strict=True))


def _unit(x: Sequence[float]) -> list[float]:
    n = math.sqrt(_dot(x, x))
    return [v / n for v in x]


def _log_softmax_at(values: Sequence[float], k: int) -> float:
    top = max(values)
    return values[k] - top - math.log(sum(math.exp(v - top) for v in values))


def clip_identity_loop(
    embeddings: Sequence[torch.Tensor], temperature: float, normalize: bool = True
) -> float:
    """Mean over pairs a < b of (CE(rows) + CE(cols)) / 2 with identity targets, as loops."""
    mats = [_rows(z) for z in embeddings]
    if normalize:
        mats = [[_unit(r) for r in m] for m in mats]
    batch = len(mats[0])
    pair_losses = []
    for a in range(len(mats)):
        for b in range(a + 1, len(mats)):
            logits = [
                [_dot(mats[a][i], mats[b][j]) / temperature for j in range(batch)]
                for i in range(batch)
            ]
            rows = -sum(_log_softmax_at(logits[i], i) for i in range(batch)) / batch
            cols = (
                -sum(_log_softmax_at([logits[k][j] for k in range(batch)], j) for j in range(batch))
                / batch
            )
            pair_losses.append((rows + cols) / 2)
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
    mats = [_rows(z) for z in embeddings]
    if normalize:
        mats = [[_unit(r) for r in m] for m in mats]
    batch = len(mats[0])
    total, directional_terms = 0.0, 0
    for a in range(len(mats)):
        for b in range(a + 1, len(mats)):
            logits = [
                [_dot(mats[a][i], mats[b][j]) / temperature for j in range(batch)]
                for i in range(batch)
            ]
            targets = []
            for i in range(batch):
                sims = [
                    (_dot(mats[a][i], mats[a][j]) + _dot(mats[b][i], mats[b][j])) / 2 * temperature
                    for j in range(batch)
                ]
                targets.append([math.exp(_log_softmax_at(sims, j)) for j in range(batch)])
            rows = 0.0
            for i in range(batch):
                rows -= sum(targets[i][j] * _log_softmax_at(logits[i], j) for j in range(batch))
            cols = 0.0
            for i in range(batch):
                column = [logits[k][i] for k in range(batch)]
                cols -= sum(targets[j][i] * _log_softmax_at(column, j) for j in range(batch))
            total += rows / batch + cols / batch
            directional_terms += 2
    return total / directional_terms


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
