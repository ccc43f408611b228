"""Closed-form linear maps between modalities: regularised MAXVAR GCCA and ridge.

The maths behind the closed-form baselines (:mod:`nmodal.evaluation.baselines`) and the
GCCA initialisation of projection heads (``TrainConfig(init="gcca")``).

Every modality ``m`` has centred features ``X_m`` (``n x d_m``) with thin SVD
``X_m = U S V^T``; its regularised projection is ``P_m = X_m (X_m^T X_m + r_m I)^{-1} X_m^T
= U diag(s^2 / (s^2 + r_m)) U^T`` with ``r_m = reg * mean(s^2)`` (scale-free). GCCA's
shared coordinates ``G`` (``n x k``) are the top ``k`` eigenvectors of ``sum_m P_m``, and
``W_m = (X_m^T X_m + r_m I)^{-1} X_m^T G`` maps modality ``m`` to them. For two modalities
and ``reg -> 0`` the eigenvalues are ``1 + rho_i`` (the canonical correlations) and the
columns of ``W_m`` the canonical directions. The eigenproblem is solved in the
``sum(rank_m)``-dimensional space ``A^T A`` (``A = [U_m diag(s / sqrt(s^2 + r_m))]``), so
the cost is one SVD per modality, never an ``n x n`` matrix.

Example:
    >>> x = {"a": np.random.default_rng(0).normal(size=(50, 4))}
    >>> x["b"] = x["a"] @ np.ones((4, 3))
    >>> means, svds = centred_svds(x)
    >>> weights, evals = gcca_fit(svds, dim=2, reg=1e-6)
    >>> bool(evals[0] > 1.99)
    True
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from nmodal.model.heads import ProjectionHead

SVD = tuple[np.ndarray, np.ndarray, np.ndarray]


def thin_svd(x: np.ndarray) -> SVD:
    """``U, s, V^T`` of ``x`` without the numerically null directions."""
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    keep = s > s[0] * 1e-10 if len(s) and s[0] > 0 else np.zeros(len(s), bool)
    return u[:, keep], s[keep], vt[keep]


def centred_svds(
    features: Mapping[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], dict[str, SVD]]:
    """Per-modality means and thin SVDs of the centred features (float64)."""
    means = {m: np.asarray(x, np.float64).mean(axis=0) for m, x in features.items()}
    svds = {m: thin_svd(np.asarray(x, np.float64) - means[m]) for m, x in features.items()}
    return means, svds


def gcca_fit(
    svds: Mapping[str, SVD], dim: int, reg: float
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """MAXVAR GCCA: the maps ``W_m`` (``d_m x k``, ``k <= dim``) and the top ``k``
    eigenvalues of ``sum_m P_m``. ``W_m`` maps centred features to coordinates whose
    training columns have unit norm."""
    blocks, shrink = [], {}
    for m, (u, s, _) in svds.items():
        r = reg * float(np.mean(s**2))
        shrink[m] = s / (s**2 + r)  # (X^T X + r I)^{-1} X^T = V diag(s / (s^2 + r)) U^T
        blocks.append(u * (s / np.sqrt(s**2 + r)))
    a = np.concatenate(blocks, axis=1)  # sum_m P_m = A A^T
    evals, evecs = np.linalg.eigh(a.T @ a)
    order = np.argsort(evals)[::-1][: min(dim, a.shape[1], a.shape[0])]
    evals, evecs = evals[order], evecs[:, order]
    g = a @ evecs / np.sqrt(np.maximum(evals, 1e-12))  # (n, k), orthonormal columns
    # eigenvectors have an arbitrary sign (and the SVDs' bases too): fix each column's by
    # its third moment, so that the same posts give the same maps whatever the rounding
    g *= np.where(np.sum(g**3, axis=0) < 0, -1.0, 1.0)
    weights = {m: vt.T @ (shrink[m][:, None] * (u.T @ g)) for m, (u, _, vt) in svds.items()}
    return weights, evals


def ridge_fit(
    svds: Mapping[str, SVD], targets: np.ndarray, anchor: str, reg: float
) -> dict[str, np.ndarray]:
    """Ridge maps ``argmin ||X_m B - T||^2 + lam_m ||B||^2`` (``lam_m = reg * mean(s^2)``)
    of every modality onto the centred anchor features ``T``; the anchor maps to itself."""
    weights = {}
    for m, (u, s, vt) in svds.items():
        if m == anchor:
            weights[m] = np.eye(targets.shape[1])
            continue
        lam = reg * float(np.mean(s**2))
        weights[m] = vt.T @ ((s / (s**2 + lam))[:, None] * (u.T @ targets))
    return weights


GCCA_INIT_REG = 1.0  # relative regulariser of the GCCA initialisation (see README)


@torch.no_grad()
def init_heads_from_gcca(
    heads: Mapping[str, ProjectionHead],
    features: Mapping[str, np.ndarray],
    reg: float = GCCA_INIT_REG,
) -> int:
    """Start every projection head at the GCCA solution of ``features`` (complete training
    posts): the first linear layer becomes ``x -> sqrt(n) (x - mean) W_m`` (coordinates
    of order one), the inner blocks' last linear layer starts at zero so the residual path
    carries exactly the GCCA map; training then refines it. Heads wider than the GCCA rank
    keep their random columns scaled down to 1 %. Returns the number of GCCA components
    (0, heads untouched, when a modality is constant).
    """
    # the first layer sees the head's standardised input: fit GCCA on that input, so that
    # ``projection(standardized(x))`` is the GCCA map (and its bias centres it)
    features = {m: _as_head_input(heads[m], x) for m, x in features.items()}
    means, svds = centred_svds(features)
    if any(s.size == 0 for _, s, _ in svds.values()):  # a constant modality: nothing to fit
        return 0
    n = len(next(iter(features.values())))
    first = next(iter(heads.values())).projection
    weights, evals = gcca_fit(svds, dim=first.out_features, reg=reg)
    k = int(evals.size)
    for m, head in heads.items():
        w = torch.as_tensor(np.sqrt(n) * weights[m].T, dtype=head.projection.weight.dtype)
        head.projection.weight.mul_(0.01)
        head.projection.bias.mul_(0.01)
        head.projection.weight[:k] = w
        head.projection.bias[:k] = -(w @ torch.as_tensor(means[m], dtype=w.dtype))
        linears = [b for b in head.blocks if isinstance(b, nn.Linear)]
        if linears and head.residual:
            linears[-1].weight.zero_()
            linears[-1].bias.zero_()
    return k


def _as_head_input(head: ProjectionHead, x: np.ndarray) -> np.ndarray:
    """``x`` (float64) as ``head``'s first linear layer sees it (after its standardisation)."""
    x = np.asarray(x, np.float64)
    if not head.standardize:
        return x
    mean = head.input_mean.detach().cpu().double().numpy()
    return (x - mean) * float(head.input_scale)
