"""Every classifier fits separable data, speaks the scikit-learn interface, and the MLP
early-stops on training data only."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import torch
from imblearn.pipeline import make_pipeline as imb_pipeline
from sklearn.base import clone
from sklearn.model_selection import train_test_split

from nmodal.classify import (
    CLASSIFIERS,
    FoldSMOTE,
    SVMClassifier,
    TorchMLPClassifier,
    cross_validate,
    make_classifier,
)
from nmodal.classify.mlp import validation_split
from nmodal.errors import InputError

from .toydata import FAST_PARAMS, blobs, near_duplicate_posts


@pytest.mark.parametrize("num_classes", [2, 4])
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_separable_toy_data_above_90_percent(name, num_classes):
    X, y = blobs(40, num_classes, spread=0.8, seed=num_classes)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    clf = make_classifier(name, seed=0, **FAST_PARAMS.get(name, {})).fit(Xtr, ytr)
    assert (clf.predict(Xte) == yte).mean() > 0.9
    proba = clf.predict_proba(Xte)
    assert proba.shape == (len(Xte), num_classes)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert list(clf.classes_) == sorted(set(y))


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_drops_into_an_imblearn_pipeline_and_clones(name):
    X, y = blobs(30, 3, spread=0.8)
    est = make_classifier(name, seed=0, **FAST_PARAMS.get(name, {}))
    pipe = imb_pipeline(FoldSMOTE(random_state=0), clone(est)).fit(X[:70], y[:70])
    assert (pipe.predict(X[70:]) == y[70:]).mean() > 0.9
    assert clone(est).get_params() == est.get_params()


def test_unknown_classifier_is_a_clear_error():
    with pytest.raises(InputError, match="unknown classifier 'xgb'"):
        make_classifier("xgb")


def test_svm_labels_agree_with_its_probabilities():
    X, y = blobs(25, 3, spread=2.0)
    clf = SVMClassifier(seed=0).fit(X, y)
    assert np.array_equal(clf.predict(X), clf.classes_[clf.predict_proba(X).argmax(axis=1)])
    assert "out-of-fold" in clf.calibration_


def test_svm_with_a_single_sample_class_still_fits():
    X, y = blobs(10, 2)
    X = np.vstack([X, np.full((1, X.shape[1]), 9.0)])
    y = np.append(y, "lonely")
    clf = SVMClassifier(seed=0).fit(X, y)
    assert "in-sample" in clf.calibration_ and clf.predict_proba(X).shape == (21, 3)


def test_mlp_is_seeded_and_deterministic():
    X, y = blobs(30, 2, spread=2.0)
    a = TorchMLPClassifier(hidden_sizes=(16,), max_epochs=20, seed=3).fit(X, y)
    b = TorchMLPClassifier(hidden_sizes=(16,), max_epochs=20, seed=3).fit(X, y)
    c = TorchMLPClassifier(hidden_sizes=(16,), max_epochs=20, seed=4).fit(X, y)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))
    # fitting leaves the global torch RNG and thread count alone
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    expected = torch.rand(1)
    torch.manual_seed(0)
    TorchMLPClassifier(hidden_sizes=(8,), max_epochs=2).fit(X, y)
    assert torch.equal(torch.rand(1), expected)
    assert torch.get_num_threads() == threads


def test_mlp_restores_the_epoch_with_the_lowest_validation_loss():
    X, y = blobs(60, 2, spread=4.0, seed=1)  # overlapping classes: validation loss turns up
    clf = TorchMLPClassifier(hidden_sizes=(64,), lr=1e-2, max_epochs=300, patience=15, seed=0)
    clf.fit(X, y)
    val = clf.history_["val_loss"]
    assert len(val) < 300  # stopped early
    assert clf.best_epoch_ == int(np.argmin(val)) + 1
    # the kept weights are the best epoch's: recompute its validation loss independently
    vi = clf.validation_indices_
    proba = clf.predict_proba(X[vi])
    y_idx = np.searchsorted(clf.classes_, y[vi])
    nll = -np.log(proba[np.arange(len(vi)), y_idx]).mean()
    assert nll == pytest.approx(min(val), rel=1e-4)


def test_validation_split_is_stratified_and_disjoint():
    y = np.array([0] * 50 + [1] * 9 + [2] * 1)
    tr, va = validation_split(y, 0.2, np.random.default_rng(0))
    assert not set(tr) & set(va) and len(tr) + len(va) == len(y)
    assert np.bincount(y[va], minlength=3).tolist() == [10, 2, 0]  # the lone sample trains


class RecordingMLP(TorchMLPClassifier):
    """Records the rows its early stopping validated on (class-level: CV clones it)."""

    validated: ClassVar[list[np.ndarray]] = []

    def fit(self, X, y):
        super().fit(X, y)
        RecordingMLP.validated.append(np.asarray(X)[self.validation_indices_].copy())
        return self


def test_mlp_early_stopping_uses_training_fold_rows_only():
    X, y, groups = near_duplicate_posts(40, artifacts=2)
    RecordingMLP.validated = []
    est = RecordingMLP(hidden_sizes=(16,), max_epochs=15, patience=3, validation_fraction=0.25)
    res = cross_validate(X, y, groups, classifier=est, folds=4, return_splits=True)
    assert res["classifier"] == "RecordingMLP"
    index = {row.tobytes(): i for i, row in enumerate(X)}
    assert len(RecordingMLP.validated) == 4
    for rows, split in zip(RecordingMLP.validated, res["splits"], strict=True):
        ids = {index[r.tobytes()] for r in rows}
        assert ids and ids <= set(split["train"])
        assert not ids & set(split["test"])
