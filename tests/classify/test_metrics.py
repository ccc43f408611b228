"""nmodal's metrics agree with scikit-learn computed independently."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    auc,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from nmodal.classify import classification_metrics, cross_validate, roc_curves
from nmodal.classify.metrics import exact_roc, per_class_auc, summarize

from .toydata import blobs


def _random_predictions(n: int, k: int, seed: int, ties: bool):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    proba = rng.dirichlet(np.ones(k), size=n)
    if ties:
        proba = np.round(proba, 1)  # many tied scores
        proba /= proba.sum(axis=1, keepdims=True)
    pred = np.where(rng.random(n) < 0.6, y, rng.integers(0, k, size=n))
    return y, pred, proba


@pytest.mark.parametrize("k", [2, 3, 6])
@pytest.mark.parametrize("ties", [False, True])
def test_scalar_metrics_match_sklearn(k, ties):
    y, pred, proba = _random_predictions(200, k, seed=k, ties=ties)
    m = classification_metrics(y, pred, proba, [f"c{i}" for i in range(k)])
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    ref_auc = (
        roc_auc_score(y, proba[:, 1])
        if k == 2
        else roc_auc_score(y, proba, multi_class="ovr", average="macro")
    )
    assert m["roc_auc"] == pytest.approx(ref_auc)
    assert m["confusion_matrix"] == confusion_matrix(y, pred, labels=range(k)).tolist()
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=range(k), zero_division=0)
    for i in range(k):
        row = m["per_class"][f"c{i}"]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
            (p[i], r[i], f[i], s[i])
        )


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_classes_missing_from_a_fold_follow_sklearn_conventions():
    y = np.array([0, 0, 1, 1, 0, 1])  # class 2 absent from y_true ...
    pred = np.array([0, 2, 1, 1, 0, 0])  # ... but predicted once
    proba = np.eye(3)[pred] * 0.8 + 0.2 / 3
    m = classification_metrics(y, pred, proba, ["a", "b", "c"])
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    # OvR AUC over the classes with positives and negatives (a and b)
    aucs = [roc_auc_score(y == c, proba[:, c]) for c in (0, 1)]
    assert m["roc_auc"] == pytest.approx(np.mean(aucs))
    assert m["per_class"]["c"]["roc_auc"] is None
    assert np.isnan(per_class_auc(y, proba)[2])


def test_cross_validate_fold_metrics_match_sklearn_on_one_fold():
    X, y = blobs(40, 3, spread=2.5, seed=5)
    groups = np.arange(len(y)) // 2
    res = cross_validate(X, y, groups, classifier="logreg", folds=4, return_splits=True)
    split = res["splits"][1]
    tr, te = np.asarray(split["train"]), np.asarray(split["test"])
    # independent: sklearn's own estimator on the raw string labels
    clf = LogisticRegression(max_iter=1000, random_state=0).fit(X[tr], y[tr])
    pred, proba = clf.predict(X[te]), clf.predict_proba(X[te])
    assert res["accuracy"]["values"][1] == pytest.approx(accuracy_score(y[te], pred))
    assert res["balanced_accuracy"]["values"][1] == pytest.approx(
        balanced_accuracy_score(y[te], pred)
    )
    assert res["macro_f1"]["values"][1] == pytest.approx(f1_score(y[te], pred, average="macro"))
    assert res["roc_auc"]["values"][1] == pytest.approx(
        roc_auc_score(y[te], proba, multi_class="ovr", labels=clf.classes_), rel=1e-6
    )
    values = np.array(res["accuracy"]["values"])
    assert res["accuracy"]["mean"] == pytest.approx(values.mean())
    assert res["accuracy"]["std"] == pytest.approx(values.std())
    # the pooled confusion matrix adds up the folds' test rows
    assert np.sum(res["confusion_matrix"]) == len(y)
    assert res["classes"] == ["c0", "c1", "c2"]


def test_baselines():
    rng = np.random.default_rng(0)
    y = np.array(["a"] * 70 + ["b"] * 30)
    X = rng.standard_normal((100, 3))
    res = cross_validate(X, y, np.arange(100), classifier="nb", folds=5, return_splits=True)
    base = res["baselines"]
    for i, s in enumerate(res["splits"]):
        # the training fold's majority class ("a") predicted for every test row
        assert base["majority"]["accuracy"]["values"][i] == pytest.approx(
            np.mean(y[s["test"]] == "a")
        )
        assert base["majority"]["balanced_accuracy"]["values"][i] == pytest.approx(0.5)
    assert base["majority"]["roc_auc"]["mean"] == pytest.approx(0.5)
    assert base["chance_accuracy"] == 0.5
    # stratified random guesses: expected accuracy .7*.7 + .3*.3 = .58
    assert abs(base["stratified_random"]["accuracy"]["mean"] - 0.58) < 0.12


def test_summarize_skips_undefined_folds():
    s = summarize([0.5, float("nan"), 0.7])
    assert s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(0.1)
    assert s["values"][1] is None


@pytest.mark.parametrize("ties", [False, True])
def test_exact_roc_matches_sklearn(ties):
    y, _, proba = _random_predictions(300, 2, seed=7, ties=ties)
    fpr, tpr = exact_roc(y == 1, proba[:, 1])
    ref_fpr, ref_tpr, _ = roc_curve(y, proba[:, 1], drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    assert auc(fpr, tpr) == pytest.approx(roc_auc_score(y, proba[:, 1]))


def test_roc_curves_binary_and_multiclass():
    y, _, proba = _random_predictions(300, 2, seed=1, ties=False)
    curves = roc_curves(y, proba, ["neg", "pos"])
    c = curves["binary"]
    assert curves["positive_class"] == "pos"
    assert c["fpr"][0] == 0 and c["tpr"][-1] == 1
    assert np.all(np.diff(c["tpr"]) >= 0)
    # the interpolated curve's area is close to the exact AUC
    assert auc(c["fpr"], c["tpr"]) == pytest.approx(roc_auc_score(y, proba[:, 1]), abs=0.01)
    y3, _, p3 = _random_predictions(300, 4, seed=2, ties=False)
    curves = roc_curves(y3, p3, list("abcd"))
    onehot = np.eye(4)[y3]
    assert auc(curves["micro"]["fpr"], curves["micro"]["tpr"]) == pytest.approx(
        roc_auc_score(onehot, p3, average="micro"), abs=0.01
    )
    assert auc(curves["macro"]["fpr"], curves["macro"]["tpr"]) == pytest.approx(
        roc_auc_score(onehot, p3, average="macro"), abs=0.01
    )
