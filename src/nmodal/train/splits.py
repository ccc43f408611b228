"""Train / validation / test splits by post (optionally by group, e.g. concept or account).

The test population is a fixed number of held-out posts (the paper's 100). With
``groups`` no group straddles two parts: test posts share no concept (or account) with
training posts, so retrieval measures generalisation rather than memorisation.

Example:
    >>> s = split_posts(1000, test_size=100, val_fraction=0.1, seed=0)
    >>> len(s.test), len(s.train) + len(s.val) + len(s.test)
    (100, 1000)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from nmodal.errors import InputError


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def to_dict(self) -> dict[str, list[int]]:
        return {k: getattr(self, k).tolist() for k in ("train", "val", "test")}


def _take_groups(order: np.ndarray, sizes: np.ndarray, want: int) -> tuple[np.ndarray, np.ndarray]:
    """Take whole groups in ``order`` until ``want`` rows are covered.

    Returns (chosen group ids, remaining group ids in order).
    """
    cum = np.cumsum(sizes[order])
    n_groups = int(np.searchsorted(cum, want) + 1) if want > 0 else 0
    n_groups = min(n_groups, len(order))
    return order[:n_groups], order[n_groups:]


def split_posts(
    num_posts: int,
    test_size: int | float = 100,
    val_fraction: float = 0.1,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> Split:
    """Random split of ``num_posts`` post positions.

    ``test_size``: a count (>= 1) or a fraction (< 1). ``val_fraction`` of the rest goes to
    validation. With ``groups`` (one id per post), whole groups go to each part; the test
    part then holds exactly ``test_size`` posts drawn from the test groups (the leftover posts
    of those groups are dropped, never trained on).
    """
    n_test = round(test_size * num_posts) if 0 < test_size < 1 else int(test_size)
    if n_test < 0 or n_test >= num_posts:
        raise InputError(f"test_size {test_size} leaves no training posts out of {num_posts}")
    if not 0 <= val_fraction < 1:
        raise InputError(f"val_fraction must be in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    if groups is None:
        perm = rng.permutation(num_posts)
        test, rest = perm[:n_test], perm[n_test:]
        n_val = round(val_fraction * len(rest))
        val, train = rest[:n_val], rest[n_val:]
    else:
        groups = np.asarray(groups)
        if groups.shape != (num_posts,):
            raise InputError(f"groups has shape {groups.shape}, expected ({num_posts},)")
        uniq, group_of = np.unique(groups, return_inverse=True)
        sizes = np.bincount(group_of, minlength=len(uniq))
        order = rng.permutation(len(uniq))
        test_groups, rest_groups = _take_groups(order, sizes, n_test)
        in_test = np.isin(group_of, test_groups)
        test_pool = rng.permutation(np.flatnonzero(in_test))
        if len(test_pool) < n_test:
            raise InputError(f"not enough posts for a test population of {n_test}")
        test = test_pool[:n_test]
        n_rest = int(sizes[rest_groups].sum())
        val_groups, train_groups = _take_groups(rest_groups, sizes, round(val_fraction * n_rest))
        val = rng.permutation(np.flatnonzero(np.isin(group_of, val_groups)))
        train = rng.permutation(np.flatnonzero(np.isin(group_of, train_groups)))
        if len(train) == 0:
            raise InputError("grouped split left no training posts; lower test_size/val_fraction")
    return Split(train=np.sort(train), val=np.sort(val), test=np.sort(test))


def trainable_mask(
    present: Mapping[str, np.ndarray], modalities: Sequence[str], missing: str = "mask"
) -> np.ndarray:
    """Mask of the posts a model of ``modalities`` can train and be evaluated on: those
    with at least two of them (``missing="mask"``) or all of them (``"drop"``)."""
    have = np.stack([np.asarray(present[m], dtype=bool) for m in modalities])
    return np.asarray(have.all(axis=0) if missing == "drop" else have.sum(axis=0) >= 2)


def trainable_posts(
    present: Mapping[str, np.ndarray], modalities: Sequence[str], missing: str = "mask"
) -> np.ndarray:
    """Positions of the :func:`trainable_mask` posts."""
    return np.flatnonzero(trainable_mask(present, modalities, missing))


def requirement(missing: str) -> str:
    """How many of the modalities a trainable post has, in words (for messages)."""
    return "all" if missing == "drop" else "at least two"


def split_trainable(
    present: Mapping[str, np.ndarray],
    modalities: Sequence[str],
    missing: str = "mask",
    test_size: int | float = 100,
    val_fraction: float = 0.1,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> tuple[Split, np.ndarray]:
    """:func:`split_posts` among the :func:`trainable_posts` only (positions into the whole
    collection), and those posts. A post without two artifacts can neither be trained on
    nor be a retrieval query, so it is never counted in a part; on a collection where every
    post qualifies the split is :func:`split_posts`'s own."""
    rows = trainable_posts(present, modalities, missing)
    need = requirement(missing)
    if rows.size < 2:
        raise InputError(
            f"only {rows.size} posts have {need} of the modalities {list(modalities)}: "
            "nothing to train on"
        )
    try:
        local = split_posts(
            rows.size,
            test_size,
            val_fraction,
            seed,
            None if groups is None else np.asarray(groups)[rows],
        )
    except InputError as exc:
        raise InputError(f"{exc} (the posts with {need} of {list(modalities)})") from None
    split = Split(train=rows[local.train], val=rows[local.val], test=rows[local.test])
    return split, rows
