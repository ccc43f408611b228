"""Train/test splits that keep every group (a post, or an account) on one side.

``group_kfold`` is stratified k-fold over groups (scikit-learn's StratifiedGroupKFold,
shuffled with the seed); ``time_splits`` is forward chaining over groups ordered by date:
the groups are cut into ``folds + 1`` consecutive blocks and fold ``i`` trains on blocks
``0..i`` and tests on block ``i + 1`` (train on earlier posts, test on later ones).

Example:
    >>> for train, test in group_kfold(y, groups, folds=5, seed=0):  # doctest: +SKIP
    ...     assert not set(groups[train]) & set(groups[test])
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from nmodal.errors import InputError

Split = tuple[np.ndarray, np.ndarray]


def _check_groups(groups: np.ndarray, folds: int, needed: int) -> np.ndarray:
    if folds < 2:
        raise InputError(f"folds must be at least 2, got {folds}")
    uniq = np.unique(groups)
    if len(uniq) < needed:
        raise InputError(
            f"{len(uniq)} distinct groups cannot be split into {folds} folds "
            f"(need at least {needed}); use fewer folds or group by post"
        )
    return uniq


def group_kfold(y: np.ndarray, groups: np.ndarray, folds: int = 5, seed: int = 0) -> list[Split]:
    """Stratified k-fold where rows sharing a group are always on the same side."""
    _check_groups(groups, folds, folds)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # "least populated class has only n members": expected for rare accounts
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        return [(tr, te) for tr, te in splitter.split(np.zeros(len(y)), y, groups)]


def time_splits(groups: np.ndarray, times: np.ndarray, folds: int = 5) -> list[Split]:
    """Forward-chaining splits over groups ordered by their earliest time."""
    _check_groups(groups, folds, folds + 1)
    uniq, inverse = np.unique(groups, return_inverse=True)
    t = np.asarray(times).astype("datetime64[ns]").astype(np.int64)
    first = np.full(len(uniq), np.iinfo(np.int64).max)
    np.minimum.at(first, inverse, t)
    # order groups by time, ties by group name (np.unique sorted them by name already)
    order = np.lexsort((np.arange(len(uniq)), first))
    block_of_group = np.empty(len(uniq), dtype=np.int64)
    for b, members in enumerate(np.array_split(order, folds + 1)):
        block_of_group[members] = b
    block = block_of_group[inverse]
    return [(np.flatnonzero(block <= i), np.flatnonzero(block == i + 1)) for i in range(folds)]


def iter_splits(
    y: np.ndarray,
    groups: np.ndarray,
    folds: int,
    seed: int,
    times: np.ndarray | None = None,
) -> Iterator[Split]:
    """Group k-fold, or time splits when ``times`` is given."""
    if times is None:
        yield from group_kfold(y, groups, folds, seed)
    else:
        yield from time_splits(groups, times, folds)
