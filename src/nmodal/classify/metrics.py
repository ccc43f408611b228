"""Classification metrics in vectorised numpy (tests check them against scikit-learn).

Labels are integer class indices ``0..K-1``; probabilities are ``(n, K)`` with column ``k``
for class ``k``. Conventions follow scikit-learn: balanced accuracy averages recall over
the classes present in ``y_true``; macro-F1 averages F1 over the classes present in
``y_true`` or ``y_pred``; ROC AUC is the positive class's AUC for two classes and the
unweighted mean of one-vs-rest AUCs otherwise (classes absent from a fold, or making up
all of it, are left out of that fold's mean).

Example:
    >>> m = classification_metrics(np.array([0, 1, 1]), np.array([0, 1, 0]),
    ...                            np.array([[.9, .1], [.2, .8], [.6, .4]]), ["a", "b"])
    >>> round(m["accuracy"], 3), m["roc_auc"]
    (0.667, 1.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

SCALAR_METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc")


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``C[i, j]`` = number of samples of class ``i`` predicted as ``j``."""
    flat = np.asarray(y_true) * num_classes + np.asarray(y_pred)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros_like(a, dtype=np.float64)
    np.divide(a, b, out=out, where=b > 0)
    return out


def per_class_auc(y_true: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """One-vs-rest AUC of every class (Mann-Whitney rank statistic, ties count half).

    NaN for a class with no positive or no negative sample.
    """
    n, k = proba.shape
    onehot = np.zeros((n, k), dtype=bool)
    onehot[np.arange(n), y_true] = True
    ranks = rankdata(proba, axis=0)  # average ranks for ties, column by column
    pos = onehot.sum(axis=0).astype(np.float64)
    neg = n - pos
    rank_sum = (ranks * onehot).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - pos * (pos + 1) / 2) / (pos * neg)
    auc[(pos == 0) | (neg == 0)] = np.nan
    return np.asarray(auc, dtype=np.float64)


def roc_auc(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Binary: AUC of class 1's score; multiclass: macro one-vs-rest AUC (NaN if undefined)."""
    aucs = per_class_auc(y_true, proba)
    if proba.shape[1] == 2:
        return float(aucs[1])
    defined = aucs[~np.isnan(aucs)]
    return float(defined.mean()) if defined.size else float("nan")


def classification_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray,
    classes: Sequence[Any] | np.ndarray,
) -> dict[str, Any]:
    """Scalar metrics, the confusion matrix and a per-class report for one set of predictions."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    k = len(classes)
    cm = confusion(y_true, y_pred, k)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    tp = np.diag(cm).astype(np.float64)
    recall = _safe_div(tp, support)
    precision = _safe_div(tp, predicted)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    in_true = support > 0
    in_either = in_true | (predicted > 0)
    aucs = per_class_auc(y_true, proba)
    return {
        "accuracy": float(tp.sum() / max(len(y_true), 1)),
        "balanced_accuracy": float(recall[in_true].mean()) if in_true.any() else float("nan"),
        "macro_f1": float(f1[in_either].mean()) if in_either.any() else float("nan"),
        "roc_auc": roc_auc(y_true, proba),
        "confusion_matrix": cm.tolist(),
        "per_class": {
            str(c): {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
                "roc_auc": None if np.isnan(aucs[i]) else float(aucs[i]),
            }
            for i, c in enumerate(classes)
        },
    }


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "std", "values"}`` over folds; NaN folds are left out of mean and std.

    ``std`` is the population standard deviation (``ddof=0``), as in scikit-learn examples.
    """
    arr = np.asarray(values, dtype=np.float64)
    ok = arr[~np.isnan(arr)]
    return {
        "mean": float(ok.mean()) if ok.size else None,
        "std": float(ok.std()) if ok.size else None,
        "values": [None if np.isnan(v) else float(v) for v in arr],
    }


def summarize_folds(
    fold_metrics: Sequence[Mapping[str, Any]], keys: Sequence[str] = SCALAR_METRICS
) -> dict[str, dict[str, Any]]:
    """Mean ± std of each scalar metric over a list of per-fold metric dicts."""
    return {key: summarize([m[key] for m in fold_metrics]) for key in keys}


def roc_points(
    positive: np.ndarray, scores: np.ndarray, grid: np.ndarray | None = None
) -> dict[str, list[float]]:
    """A ROC curve as ``{"fpr", "tpr"}``, interpolated onto ``grid`` (default 201 points).

    ``positive`` is a boolean array, ``scores`` the classifier's score for the positive
    class; the exact curve steps at every distinct score.
    """
    grid = np.linspace(0.0, 1.0, 201) if grid is None else grid
    fpr, tpr = exact_roc(positive, scores)
    return {"fpr": grid.tolist(), "tpr": _interp_step(grid, fpr, tpr).tolist()}


def exact_roc(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    positive = np.asarray(positive, dtype=bool)
    order = np.argsort(-np.asarray(scores), kind="stable")
    s = np.asarray(scores)[order]
    p = positive[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tps = np.cumsum(p)[last].astype(np.float64)
    fps = (last + 1) - tps
    n_pos, n_neg = max(p.sum(), 1), max((~p).sum(), 1)
    return np.r_[0.0, fps / n_neg], np.r_[0.0, tps / n_pos]


def _interp_step(grid: np.ndarray, fpr: np.ndarray, tpr: np.ndarray) -> np.ndarray:
    # at a vertical segment (repeated fpr) take the highest tpr reached at that fpr
    uniq, first = np.unique(fpr, return_index=True)
    last = np.r_[first[1:] - 1, len(fpr) - 1]
    return np.interp(grid, np.r_[uniq[0], uniq], np.r_[tpr[first[0]], tpr[last]])


def roc_curves(
    y_true: np.ndarray, proba: np.ndarray, classes: Sequence[Any] | np.ndarray
) -> dict[str, Any]:
    """Curves for plotting: binary -> the positive class; multiclass -> micro and macro OvR.

    Macro averages the per-class curves (classes with positives and negatives) on one grid;
    micro pools every (sample, class) decision.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    n, k = proba.shape
    onehot = np.zeros((n, k), dtype=bool)
    onehot[np.arange(n), y_true] = True
    if k == 2:
        return {"binary": roc_points(onehot[:, 1], proba[:, 1]), "positive_class": str(classes[1])}
    grid = np.linspace(0.0, 1.0, 201)
    usable = [c for c in range(k) if 0 < onehot[:, c].sum() < n]
    per_class = np.stack(
        [np.asarray(roc_points(onehot[:, c], proba[:, c], grid)["tpr"]) for c in usable]
    )
    return {
        "micro": roc_points(onehot.ravel(), proba.ravel(), grid),
        "macro": {"fpr": grid.tolist(), "tpr": per_class.mean(axis=0).tolist()},
    }
