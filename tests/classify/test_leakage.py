"""A post's artifacts must never straddle a split: random labels score at chance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from nmodal.classify import cross_validate, group_kfold, time_splits
from nmodal.errors import InputError

from .toydata import near_duplicate_posts


@pytest.mark.parametrize("classifier", ["knn", "rf"])
def test_random_labels_at_chance_when_grouped_by_post(classifier):
    X, y, groups = near_duplicate_posts(150, artifacts=3)
    params = {"n_neighbors": 1} if classifier == "knn" else {"n_estimators": 20}
    res = cross_validate(X, y, groups, classifier=classifier, folds=5, classifier_params=params)
    # labels are random per post: nothing generalises to unseen posts
    assert abs(res["accuracy"]["mean"] - 0.5) < 0.1
    assert abs(res["roc_auc"]["mean"] - 0.5) < 0.1
    # the same evaluation with one group per row (a row-wise split) is fooled by siblings
    leaky = cross_validate(
        X, y, np.arange(len(y)), classifier=classifier, folds=5, classifier_params=params
    )
    assert leaky["accuracy"]["mean"] > 0.85


def test_rowwise_stratified_kfold_is_far_above_chance():
    """The published code's row split, computed with scikit-learn alone."""
    X, y, _ = near_duplicate_posts(150, artifacts=3)
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    scores = cross_val_score(KNeighborsClassifier(n_neighbors=1), X, y, cv=cv)
    assert scores.mean() > 0.9


def test_group_kfold_keeps_groups_whole_and_tests_every_row_once():
    X, y, groups = near_duplicate_posts(60, artifacts=3)
    res = cross_validate(X, y, groups, classifier="nb", folds=4, return_splits=True)
    tested = np.concatenate([np.asarray(s["test"]) for s in res["splits"]])
    assert np.array_equal(np.sort(tested), np.arange(len(y)))
    for s in res["splits"]:
        assert not set(groups[s["train"]]) & set(groups[s["test"]])
        assert len(s["train"]) + len(s["test"]) == len(y)


def test_group_kfold_by_account_keeps_accounts_whole():
    rng = np.random.default_rng(1)
    accounts = rng.integers(0, 12, size=200).astype(str)
    y = (accounts.astype(int) % 2).astype(str)
    for tr, te in group_kfold(y, accounts, folds=3, seed=0):
        assert not set(accounts[tr]) & set(accounts[te])


def test_time_splits_train_on_earlier_groups():
    rng = np.random.default_rng(2)
    post = np.repeat(np.arange(50), 2)
    day = rng.permutation(50)
    times = (pd.Timestamp("2024-01-01") + pd.to_timedelta(day[post], unit="D")).to_numpy()
    groups = np.array([f"p{i}" for i in post])
    splits = time_splits(groups, times, folds=4)
    assert len(splits) == 4
    for i, (tr, te) in enumerate(splits):
        assert times[tr].max() < times[te].min()
        assert not set(groups[tr]) & set(groups[te])
        if i:
            assert set(splits[i - 1][0]) < set(tr)  # expanding window
    # every group but the first block is tested exactly once
    tested = np.concatenate([te for _, te in splits])
    assert len(tested) == len(set(tested.tolist()))


def test_time_split_through_cross_validate():
    X, y, groups = near_duplicate_posts(60, artifacts=2)
    post_num = np.array([int(g[1:]) for g in groups])
    times = (pd.Timestamp("2024-01-01") + pd.to_timedelta(post_num, unit="h")).to_numpy()
    res = cross_validate(
        X, y, groups, classifier="logreg", folds=3, times=times, return_splits=True
    )
    assert res["split"] == "time" and res["folds"] == 3
    for s in res["splits"]:
        assert times[s["train"]].max() < times[s["test"]].min()


def test_too_few_groups_is_a_clear_error():
    X, y, _ = near_duplicate_posts(4, artifacts=3)
    groups = np.repeat(["a", "b", "c", "d"], 3)
    with pytest.raises(InputError, match="4 distinct groups cannot be split into 5 folds"):
        cross_validate(X, y, groups, classifier="nb", folds=5)
