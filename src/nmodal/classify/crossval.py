"""Grouped cross-validation of one classifier, with baselines, in one call.

Rows that share a group (the artifacts of one post, or the posts of one account) never
straddle a train/test split; resampling (SMOTE) is a pipeline step, so it is fitted on
training folds only; the MLP's early stopping uses a split of the training fold.

Example:
    >>> res = cross_validate(X, y, groups, classifier="rf", folds=5, smote=False, seed=0)  # doctest: +SKIP
    >>> res["accuracy"]["mean"], res["roc_auc"]["std"]  # doctest: +SKIP
    >>> res["baselines"]["majority"]["accuracy"]["mean"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.dummy import DummyClassifier
from tqdm.auto import tqdm

from nmodal.classify.estimators import classifier_name, make_pipeline
from nmodal.classify.metrics import (
    SCALAR_METRICS,
    classification_metrics,
    roc_curves,
    summarize_folds,
)
from nmodal.classify.sampling import FoldSMOTE
from nmodal.classify.splits import iter_splits
from nmodal.errors import InputError

BASELINES: dict[str, dict[str, Any]] = {
    "majority": {"strategy": "most_frequent"},
    "stratified_random": {"strategy": "stratified"},
}


def _check_inputs(X: Any, y: Any, groups: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X = np.asarray(X)
    y = np.asarray(y)
    groups = np.asarray(groups)
    if X.ndim != 2:
        raise InputError(f"X must be 2-D (n, d), got shape {X.shape}")
    if y.shape != (len(X),) or groups.shape != (len(X),):
        raise InputError(
            f"y {y.shape} and groups {groups.shape} must have shape ({len(X)},) like X's rows"
        )
    if not np.isfinite(X).all():
        raise InputError(f"X has {int((~np.isfinite(X)).any(axis=1).sum())} rows with NaN/inf")
    return X, y, groups


def _columns(classes: np.ndarray, fitted: Any) -> np.ndarray:
    """Positions of a fitted estimator's ``classes_`` among all ``classes``."""
    return np.searchsorted(classes, np.asarray(fitted))


def _fold_predict(est: Any, X: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class indices and probabilities over all classes (a class missing from
    the training fold gets probability 0)."""
    proba = np.zeros((len(X), len(classes)))
    proba[:, _columns(classes, est.classes_)] = est.predict_proba(X)
    return _columns(classes, est.predict(X)), proba


def cross_validate(
    X: Any,
    y: Any,
    groups: Any,
    classifier: str | BaseEstimator = "rf",
    folds: int = 5,
    smote: bool = False,
    seed: int = 0,
    *,
    times: Any = None,
    sampler: BaseEstimator | None = None,
    classifier_params: Mapping[str, Any] | None = None,
    return_splits: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Cross-validate ``classifier`` on ``(X, y)`` with folds grouped by ``groups``.

    Args:
        X: ``(n, d)`` features (embeddings).
        y: ``(n,)`` labels of any type (classes are ``np.unique(y)``).
        groups: ``(n,)`` group ids; rows of one group are never split.
        classifier: ``nb, rf, svm, knn, logreg, mlp`` or an unfitted estimator.
        folds: number of folds (stratified group k-fold; with ``times``: forward-chaining
            time splits, ``folds`` test blocks).
        smote: oversample training folds with :class:`FoldSMOTE`.
        seed: seeds the split, the resampler and the classifier.
        times: ``(n,)`` datetimes: split by time (train on earlier groups, test on later).
        sampler: a resampler to use instead of the default SMOTE (implies resampling).
        classifier_params: overrides of the classifier's defaults.
        return_splits: add ``"splits"`` (train/test row indices of every fold).

    Returns:
        ``{"accuracy": {"mean", "std", "values"}, "balanced_accuracy", "macro_f1",
        "roc_auc", "confusion_matrix", "per_class", "roc_curve", "baselines", "folds",
        "fold_sizes", "warnings", ...}``; the confusion matrix, per-class report and ROC
        curve pool the out-of-fold predictions of all folds.
    """
    X, y, groups = _check_inputs(X, y, groups)
    classes, y_idx = np.unique(y, return_inverse=True)
    k = len(classes)
    if k < 2:
        raise InputError(f"need at least two classes, got {classes.tolist()}")
    if times is not None:
        times = np.asarray(times)
        if times.shape != (len(X),):
            raise InputError(f"times must have shape ({len(X)},), got {times.shape}")
    if sampler is None and smote:
        sampler = FoldSMOTE(random_state=seed)
    splits = list(iter_splits(y_idx, groups, folds, seed, times))
    params = dict(classifier_params or {})
    warnings_: list[str] = []
    fold_metrics: list[dict[str, Any]] = []
    base_metrics: dict[str, list[dict[str, Any]]] = {b: [] for b in BASELINES}
    fold_sizes: list[dict[str, int]] = []
    tested = np.zeros(len(X), dtype=bool)
    oof_proba = np.zeros((len(X), k))
    oof_pred = np.zeros(len(X), dtype=np.int64)
    name = classifier_name(classifier)
    for i, (tr, te) in enumerate(tqdm(splits, desc=f"cv {name}", disable=not progress)):
        train_classes = np.unique(y_idx[tr])
        if len(train_classes) < 2:
            warnings_.append(f"fold {i}: training part has one class; fold skipped")
            continue
        if len(train_classes) < k:
            warnings_.append(
                f"fold {i}: {k - len(train_classes)} class(es) absent from the training part"
            )
        pipe = make_pipeline(classifier, seed=seed, sampler=sampler, **params)
        pipe.fit(X[tr], y[tr])
        if "sampler" in pipe.named_steps:
            warnings_ += [
                f"fold {i}: {w}" for w in getattr(pipe.named_steps["sampler"], "warnings_", [])
            ]
        pred, proba = _fold_predict(pipe, X[te], classes)
        fold_metrics.append(classification_metrics(y_idx[te], pred, proba, classes))
        oof_proba[te], oof_pred[te], tested[te] = proba, pred, True
        fold_sizes.append(
            {"train": len(tr), "test": len(te), "test_groups": len(np.unique(groups[te]))}
        )
        for b, cfg in BASELINES.items():
            dummy = DummyClassifier(random_state=seed, **cfg).fit(X[tr], y[tr])
            base_metrics[b].append(
                classification_metrics(y_idx[te], *_fold_predict(dummy, X[te], classes), classes)
            )
    if not fold_metrics:
        raise InputError("no fold could be evaluated (every training part had a single class)")
    pooled = classification_metrics(y_idx[tested], oof_pred[tested], oof_proba[tested], classes)
    result: dict[str, Any] = {
        "classifier": name,
        "classifier_params": params,
        "folds": len(splits),
        "split": "time" if times is not None else "stratified-group-kfold",
        "smote": sampler is not None,
        "seed": seed,
        "num_rows": len(X),
        "num_groups": len(np.unique(groups)),
        "classes": [str(c) for c in classes],
        "class_counts": {
            str(c): int(n) for c, n in zip(classes, np.bincount(y_idx, minlength=k), strict=True)
        },
        **summarize_folds(fold_metrics, SCALAR_METRICS),
        "confusion_matrix": pooled["confusion_matrix"],
        "per_class": pooled["per_class"],
        "pooled": {m: pooled[m] for m in SCALAR_METRICS},
        "roc_curve": roc_curves(y_idx[tested], oof_proba[tested], classes),
        "fold_sizes": fold_sizes,
        "baselines": {
            **{b: summarize_folds(ms, SCALAR_METRICS) for b, ms in base_metrics.items()},
            "chance_accuracy": 1.0 / k,
        },
        "warnings": warnings_,
    }
    if return_splits:
        result["splits"] = [{"train": tr.tolist(), "test": te.tolist()} for tr, te in splits]
    return result
