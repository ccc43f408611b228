"""SMOTE is a pipeline step: it sees the training fold and nothing else."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from nmodal.classify import FoldSMOTE, cross_validate

from .toydata import blobs


class RecordingSMOTE(FoldSMOTE):
    """Records every matrix it is asked to resample (class-level: pipelines clone steps)."""

    seen: ClassVar[list[np.ndarray]] = []

    def fit_resample(self, X, y, **params):
        RecordingSMOTE.seen.append(np.array(X, copy=True))
        return super().fit_resample(X, y, **params)


def _row_index(X: np.ndarray) -> dict[bytes, int]:
    return {row.tobytes(): i for i, row in enumerate(X)}


def imbalanced(seed: int = 0):
    X, y = blobs(60, 3, seed=seed, spread=1.5)
    keep = (
        (y == "c0")
        | (np.cumsum(y == "c1") <= 20) & (y == "c1")
        | (np.cumsum(y == "c2") <= 8) & (y == "c2")
    )
    X, y = X[keep], y[keep]
    return X, y, np.array([f"p{i // 2}" for i in range(len(y))])  # two artifacts per post


@pytest.mark.parametrize("classifier", ["nb", "knn"])
def test_smote_never_sees_a_test_fold_row(classifier):
    X, y, groups = imbalanced()
    RecordingSMOTE.seen = []
    res = cross_validate(
        X, y, groups, classifier=classifier, folds=4,
        sampler=RecordingSMOTE(random_state=0), return_splits=True,
    )  # fmt: skip
    assert res["smote"] is True
    assert len(RecordingSMOTE.seen) == 4
    index = _row_index(X)
    for seen, split in zip(RecordingSMOTE.seen, res["splits"], strict=True):
        rows = {index[r.tobytes()] for r in seen}
        assert rows == set(split["train"])  # exactly the training fold ...
        assert not rows & set(split["test"])  # ... and never a test row


def test_smote_flag_balances_training_folds_only():
    X, y, groups = imbalanced()
    RecordingSMOTE.seen = []
    sampler = RecordingSMOTE(random_state=0)
    pipe_out = sampler.fit_resample(X, y)
    _, counts = np.unique(pipe_out[1], return_counts=True)
    assert counts.min() == counts.max() == np.unique(y, return_counts=True)[1].max()
    res = cross_validate(X, y, groups, classifier="nb", folds=3, smote=True)
    assert res["smote"] is True
    # the reported class counts are those of the data, not of the oversampled folds
    assert res["class_counts"] == dict(zip(*np.unique(y, return_counts=True), strict=True))
    assert sum(f["test"] for f in res["fold_sizes"]) == len(y)


def test_small_classes_lower_k_or_are_skipped_with_a_warning():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((33, 4))
    y = np.array(["big"] * 25 + ["small"] * 3 + ["tiny"] * 1 + ["mid"] * 4)
    sampler = FoldSMOTE(random_state=0, k_neighbors=5)
    Xr, yr = sampler.fit_resample(X, y)
    classes, counts = np.unique(yr, return_counts=True)
    got = dict(zip(classes.tolist(), counts.tolist(), strict=True))
    assert got == {"big": 25, "small": 25, "mid": 25, "tiny": 1}
    assert any("lowered from 5 to 2" in w for w in sampler.warnings_)
    assert any("one training sample" in w and "tiny" in w for w in sampler.warnings_)
    # the original rows come first and are untouched
    assert np.array_equal(Xr[: len(X)], X)


def test_smote_warnings_reach_the_result():
    X, y, groups = imbalanced()
    y = y.copy()
    y[:3] = "rare"  # 3 rows in 2 posts: training folds hold 1-3 of them
    res = cross_validate(X, y, groups, classifier="nb", folds=3, smote=True)
    assert any("SMOTE" in w for w in res["warnings"])


def test_no_oversampling_needed_passes_data_through():
    X, y = blobs(10, 2)
    Xr, yr = FoldSMOTE(random_state=0).fit_resample(X, y)
    assert np.array_equal(Xr, X) and np.array_equal(yr, y)
