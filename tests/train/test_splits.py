from __future__ import annotations

import numpy as np
import pytest

from nmodal.errors import InputError
from nmodal.train import split_posts


def test_split_partitions_posts():
    s = split_posts(1000, test_size=100, val_fraction=0.1, seed=0)
    parts = [s.train, s.val, s.test]
    assert len(s.test) == 100 and len(s.val) == 90 and len(s.train) == 810
    assert len(np.unique(np.concatenate(parts))) == 1000
    again = split_posts(1000, test_size=100, val_fraction=0.1, seed=0)
    np.testing.assert_array_equal(s.test, again.test)
    other = split_posts(1000, test_size=100, val_fraction=0.1, seed=1)
    assert not np.array_equal(s.test, other.test)


def test_fractional_test_size():
    assert len(split_posts(200, test_size=0.25, val_fraction=0.0).test) == 50


def test_groups_never_straddle():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 120, size=1500)
    s = split_posts(1500, test_size=100, val_fraction=0.1, seed=3, groups=groups)
    g = [set(groups[p]) for p in (s.train, s.val, s.test)]
    assert not (g[0] & g[1]) and not (g[0] & g[2]) and not (g[1] & g[2])
    assert len(s.test) == 100 and len(s.train) > 1000
    assert not set(s.train) & set(s.test)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"test_size": 100}, "no training posts"),
        ({"test_size": 10, "val_fraction": 1.0}, "val_fraction"),
    ],
)
def test_bad_split_arguments(kwargs, match):
    with pytest.raises(InputError, match=match):
        split_posts(100, **kwargs)


def test_groups_shape_checked():
    with pytest.raises(InputError, match="groups has shape"):
        split_posts(100, test_size=10, groups=np.zeros(50))
